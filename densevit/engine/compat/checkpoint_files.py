"""Read checkpoint files and the ``last_checkpoint`` pointer safely.

- :func:`load_from_local_file` loads with ``torch.load(weights_only=True)``
  and turns an empty, truncated, corrupted or unsafe file into an
  :class:`UnreadableCheckpointError` that names the file (MMEngine's
  ``load_from_local`` raises a bare ``EOFError``, or torch's advice to load
  with ``weights_only=False``). Importing this module registers it as
  MMEngine's loader of local paths, so ``load_from``, ``--resume PATH``,
  ``tools/test.py``, ``init_model`` and ``Pretrained`` use it.
- :func:`last_checkpoint_entry` / :func:`read_last_checkpoint`: the pointer
  holds the path relative to the work dir, so a moved or copied work dir
  resumes from its own checkpoints; absolute paths of older pointers are
  looked up in the current work dir first.
- :func:`find_resumable_checkpoint`: the newest checkpoint that loads, and
  the newer ones it skipped, for ``--resume`` without a path.
"""
import os
import os.path as osp
import pickle
import re
from typing import Any, List, Optional, Tuple

import torch
from mmengine.runner import CheckpointLoader

#: The pointer MMEngine's ``find_latest_checkpoint`` reads in the work dir.
LAST_CHECKPOINT = 'last_checkpoint'


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint path with no file behind it (a ``FileNotFoundError``,
    so callers that catch that keep working)."""


class UnreadableCheckpointError(RuntimeError):
    """A checkpoint file that cannot be loaded (safely).

    Attributes:
        path (str): the file.
        reason (str): what is wrong with it, without the fix.
    """

    def __init__(self, path: str, reason: str, fix: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f'Checkpoint {path} {reason}. Fix: {fix}')


_CORRUPT_FIX = ('use another checkpoint of the run (`tools/train.py CONFIG '
                '--resume` without a path skips unreadable ones), or copy '
                'the file again if it was transferred')


def _torch_detail(exc: BaseException) -> str:
    """The first sentence of torch's message that says what it found,
    leaving out its advice (which recommends unsafe loading)."""
    for line in str(exc).splitlines():
        line = line.strip()
        line = line.split('WeightsUnpickler error:')[-1].strip()
        if not line or 'weights_only' in line or 'torch.load' in line:
            continue
        return line.split('. ')[0].rstrip('.')[:200]
    return type(exc).__name__


def _unreadable(path: str, exc: Exception) -> UnreadableCheckpointError:
    """Say why ``torch.load`` failed on ``path``, in DenseViT's words."""
    if os.path.getsize(path) == 0:
        return UnreadableCheckpointError(
            path, 'is empty (0 bytes): the save that wrote it was '
            'interrupted or the disk was full', _CORRUPT_FIX)
    detail = _torch_detail(exc)
    if isinstance(exc, pickle.UnpicklingError) and 'GLOBAL' in str(exc):
        found = re.search(r'GLOBAL ([\w.]+)', str(exc))
        name = found.group(1) if found else detail
        return UnreadableCheckpointError(
            path, f'holds Python objects ({name}) that DenseViT does not '
            'load: it reads checkpoints with torch.load(weights_only=True) '
            'only, because unpickling other objects can run arbitrary code',
            'use a checkpoint written by DenseViT (tools/train.py writes '
            'only tensors and plain Python types), or re-save the weights '
            "as {'state_dict': {name: tensor}} where the file was made")
    return UnreadableCheckpointError(
        path, f'is truncated or corrupted ({os.path.getsize(path)} bytes; '
        f'torch: {detail})', _CORRUPT_FIX)


def load_from_local_file(filename: str, map_location: Any = None) -> Any:
    """``torch.load(filename, weights_only=True)`` with errors that name it.

    Args:
        filename (str): a local checkpoint path (``~`` expanded).
        map_location: as for :func:`torch.load`.

    Raises:
        CheckpointNotFoundError: no such file.
        UnreadableCheckpointError: the file is empty, truncated, corrupted,
            or holds objects that weights-only loading refuses.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(
            f'Checkpoint {filename} does not exist. Fix: give the path of '
            'a .pth file that training wrote (work_dirs/<config name>/ '
            'holds them, `last_checkpoint` names the newest).')
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except (OSError, MemoryError):
        raise  # about the file system or this machine, as they say
    except RuntimeError as exc:
        # A checkpoint of CUDA tensors without a GPU (map_location) is not
        # a damaged file.
        if 'CUDA' in str(exc) or 'device' in str(exc):
            raise
        raise _unreadable(filename, exc) from exc
    except Exception as exc:  # what torch's readers raise on damaged bytes
        raise _unreadable(filename, exc) from exc


# Replaces MMEngine's ``load_from_local`` for paths without a scheme
# (named like mmengine's loaders: its log says 'by local_file backend').
CheckpointLoader.register_scheme(
    prefixes='', loader=load_from_local_file, force=True)


def last_checkpoint_entry(work_dir: str, checkpoint: str) -> str:
    """What ``last_checkpoint`` should hold to point to ``checkpoint``:
    ``checkpoint`` relative to ``work_dir`` when it lies inside it, else as
    it is (another local directory, or a remote ``scheme://`` path)."""
    if '://' in checkpoint:
        return checkpoint
    work_dir, absolute = osp.abspath(work_dir), osp.abspath(checkpoint)
    if osp.commonpath([work_dir, absolute]) == work_dir:
        return osp.relpath(absolute, work_dir)
    return checkpoint


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` points to, or None.

    A relative path is taken relative to ``work_dir``. An absolute local
    path (written by MMEngine or by DenseViT before relative pointers) is
    taken from ``work_dir`` when a file of that name is there: the work
    dir was moved or copied, and its own checkpoint is the one to resume.
    """
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    if not target or '://' in target:
        return target or None
    if not osp.isabs(target):
        return osp.join(work_dir, target)
    here = osp.join(work_dir, osp.basename(target))
    return here if osp.isfile(here) else target


def _step_pattern(filename_tmpl: str) -> re.Pattern:
    """``'iter_{}.pth'`` -> a pattern matching ``iter_<N>.pth``."""
    return re.compile(
        re.escape(filename_tmpl).replace(r'\{\}', r'(\d+)') + '$')


def _why_not_resumable(path: str) -> Optional[str]:
    """None if ``path`` loads and is a training checkpoint, else why not."""
    if not osp.isfile(path):
        return 'does not exist'
    try:
        checkpoint = load_from_local_file(path, map_location='cpu')
    except UnreadableCheckpointError as exc:
        return exc.reason
    if not (isinstance(checkpoint, dict) and 'meta' in checkpoint
            and 'state_dict' in checkpoint):
        return 'is not a training checkpoint (no meta / state_dict)'
    return None


def find_resumable_checkpoint(
        work_dir: str,
        filename_tmpl: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest checkpoint of ``work_dir`` that a resume can load.

    Starts from the ``last_checkpoint`` pointer; if that file is missing or
    does not load, tries the older checkpoints beside it (names of
    ``filename_tmpl`` with a smaller number), newest first. Checkpoints
    numbered above the pointer's are not considered: they are left from an
    earlier run, not newer states of this one. Remote checkpoints are
    returned unchecked.

    Args:
        work_dir (str): the run's work dir.
        filename_tmpl (str): the checkpoint names, e.g. ``'iter_{}.pth'``.

    Returns:
        tuple: the path (None when there is no pointer or nothing loads),
        and ``(path, reason)`` of each checkpoint skipped.
    """
    newest = read_last_checkpoint(work_dir)
    if newest is None or '://' in newest:
        return newest, []
    candidates = [newest]
    pattern = _step_pattern(filename_tmpl)
    found = pattern.match(osp.basename(newest))
    folder = osp.dirname(newest)
    if found and osp.isdir(folder):
        older = []
        for name in os.listdir(folder):
            match = pattern.match(name)
            if match and int(match.group(1)) < int(found.group(1)):
                older.append((int(match.group(1)), osp.join(folder, name)))
        candidates += [path for _, path in sorted(older, reverse=True)]
    skipped = []
    for path in candidates:
        reason = _why_not_resumable(path)
        if reason is None:
            return path, skipped
        skipped.append((path, reason))
    return None, skipped
