"""A local file backend whose writes are atomic."""
import contextlib
import os
import os.path as osp
import re
import uuid
from pathlib import Path
from typing import Iterator, List, Union

from mmengine.fileio import LocalBackend, register_backend

#: Name to use in ``backend_args=dict(backend=...)``.
ATOMIC_LOCAL_BACKEND = 'densevit_atomic_local'

#: Names of the temporary files :func:`atomic_write_bytes` writes:
#: ``<target>.tmp-<pid of the writer>-<8 hex digits>``.
TEMP_NAME = re.compile(r'^.+\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$')


def _fsync_dir(dirname: str) -> None:
    # Makes the rename itself durable; not every platform can open a
    # directory, and the file is already complete either way.
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(filepath: Union[str, Path]) -> Iterator[str]:
    """Yield a temporary path for the caller to write ``filepath``'s new
    content to; when the block ends, the file there is flushed to disk and
    renamed over ``filepath`` (``os.replace``, atomic on POSIX and Windows),
    so readers see the old or the new file, never a part.

    If the block raises, the temporary file is removed and ``filepath`` is
    untouched; a killed process may leave ``<name>.tmp-*`` debris (see
    :func:`remove_stale_temp_files`), never a truncated ``filepath``.
    """
    filepath = str(filepath)
    dirname = osp.dirname(osp.abspath(filepath))
    os.makedirs(dirname, exist_ok=True)
    # Named as TEMP_NAME says: the pid tells remove_stale_temp_files
    # whether the writer still runs.
    tmp_path = f'{filepath}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        yield tmp_path
        fd = os.open(tmp_path, os.O_RDWR)  # Windows fsyncs writable fds only
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, filepath)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_dir(dirname)


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so readers see the old or the new file
    (see :func:`atomic_file`)."""
    with atomic_file(filepath) as tmp_path:
        # 'xb' (not mkstemp): regular permissions from the umask.
        with open(tmp_path, 'xb') as f:
            f.write(data)


def _process_running(pid: int) -> bool:
    if os.name != 'posix':
        return True  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process; or not a pid at all: keep
    return True


def remove_stale_temp_files(dirname: Union[str, Path]) -> List[str]:
    """Delete what killed :func:`atomic_write_bytes` calls left in
    ``dirname``; return the removed paths.

    Only files named like its temporary files (:data:`TEMP_NAME`) whose
    writing process no longer runs on this machine are removed; a write in
    progress (this process's or another running one's) is left alone.
    Sub-directories are not searched.
    """
    removed = []
    if not osp.isdir(dirname):
        return removed
    for entry in os.scandir(dirname):
        match = TEMP_NAME.match(entry.name)
        if (match and entry.is_file(follow_symlinks=False)
                and not _process_running(int(match.group('pid')))):
            try:
                os.remove(entry.path)
            except FileNotFoundError:
                continue  # removed meanwhile by someone else
            removed.append(entry.path)
    return sorted(removed)


class AtomicLocalBackend(LocalBackend):
    """:class:`mmengine.fileio.LocalBackend` with atomic ``put``/``put_text``.

    MMEngine's ``save_checkpoint`` serialises to memory and calls
    ``backend.put(bytes, path)``; ``LocalBackend.put`` opens ``path`` with
    ``'wb'`` and writes in place, so a crash or a full disk mid-write leaves a
    truncated checkpoint. Registered as ``'densevit_atomic_local'``; select it
    with ``backend_args=dict(backend='densevit_atomic_local')``
    (:class:`AtomicCheckpointHook` does this for local directories).
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes atomically (see :func:`atomic_write_bytes`)."""
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text atomically (see :func:`atomic_write_bytes`)."""
        atomic_write_bytes(obj.encode(encoding), filepath)


# force=True: re-importing the module (e.g. importlib.reload) must not fail.
register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, force=True)
