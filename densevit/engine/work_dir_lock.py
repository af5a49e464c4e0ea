"""One training run per work dir: an exclusive lock on ``<work_dir>/.lock``.

Two runs writing to one work dir mix their logs and overwrite each other's
checkpoints and ``last_checkpoint``. :func:`lock_work_dir` takes an
exclusive ``fcntl.flock`` on a lock file in the work dir, so the second run
fails at once, naming the directory, the process holding it and the fix.
The operating system releases a ``flock`` when the process ends, however it
ends (``kill -9`` included), so a crashed run leaves no stale lock behind.
Only stdlib imports: the lock is taken before anything heavy is built.
"""
import errno
import fcntl
import os
import os.path as osp
import socket
import time
import warnings
from typing import Dict

LOCK_FILE = '.lock'
# Environment variable holding the global rank before the process group
# exists, for each launcher of ``tools/train.py``.
_RANK_VARIABLES = dict(
    pytorch='RANK', slurm='SLURM_PROCID', mpi='OMPI_COMM_WORLD_RANK')


class WorkDirLockedError(RuntimeError):
    """Another process is training in this work dir."""


class WorkDirLock:
    """An exclusive lock on a work dir, held by this process.

    Held until :meth:`release` or the end of the process. Processes forked
    from this one (dataloader workers) close their copy of the lock file at
    once, so the lock ends with this process, not with its last child.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_FILE)
        os.makedirs(work_dir, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                # e.g. Lustre mounted without -o flock: ENOSYS.
                os.close(self._fd)
                self._fd = None
                warnings.warn(
                    f'Cannot lock the work dir {work_dir} ({error}): make '
                    'sure no other run trains in it.')
                return
            holder = os.pread(self._fd, 512, 0).decode(errors='replace')
            os.close(self._fd)
            raise WorkDirLockedError(
                f'The work dir {work_dir} is in use by another training run '
                f'({holder.strip() or "a process"}; lock file {self.path}). '
                'Two runs in one work dir would mix their logs and '
                "overwrite each other's checkpoints. Give this run a work "
                'dir of its own with --work-dir DIR, or wait until the '
                'other run ends.') from None
        os.ftruncate(self._fd, 0)
        started = time.strftime('%Y-%m-%d %H:%M:%S')
        os.pwrite(
            self._fd, f'pid {os.getpid()} on {socket.gethostname()}, '
            f'since {started}\n'.encode(), 0)
        os.register_at_fork(after_in_child=self._close_in_child)

    def _close_in_child(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        """Unlock (the lock file stays; it is reused by the next run)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor unlocks
            self._fd = None
        _held.pop(self.work_dir, None)


# Work dirs this process holds, so that building a second Runner for the
# same work dir in one process (train, then resume in a notebook) works.
_held: Dict[str, WorkDirLock] = {}


def lock_work_dir(work_dir: str) -> WorkDirLock:
    """Lock ``work_dir`` (created if missing) for this process.

    Raises:
        WorkDirLockedError: If another process holds the lock; the message
            names the work dir, that process (pid, host, start time) and
            ``--work-dir``.
    """
    work_dir = osp.realpath(work_dir)
    if work_dir not in _held:
        _held[work_dir] = WorkDirLock(work_dir)
    return _held[work_dir]


def lock_work_dir_for_training(cfg) -> None:
    """Lock ``cfg.work_dir`` in the process of global rank 0 (the one that
    writes logs and checkpoints), read from the launcher's environment since
    the process group may not exist yet."""
    variable = _RANK_VARIABLES.get(cfg.get('launcher', 'none'))
    if variable is None or int(os.environ.get(variable, '0')) == 0:
        lock_work_dir(cfg.work_dir)
