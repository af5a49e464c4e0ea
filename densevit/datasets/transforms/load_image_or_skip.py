"""LoadImageOrSkip: load an image, or skip it naming the file and why."""
import logging
from typing import Optional

import numpy as np
from mmcv.image.io import supported_backends
from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from torch.utils.data import get_worker_info

from densevit.registry import TRANSFORMS
from ..utils import describe_files, read_image

# The share of unreadable images is taken over at least this many tries, so
# that a few bad files met first do not pass for a broken dataset.
MIN_TRIES = 100
# Distinct unreadable files a process remembers for its error message.
_REMEMBERED = 10


@TRANSFORMS.register_module()
class LoadImageOrSkip(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that logs, counts and bounds the
    unreadable files it skips.

    A file that is missing, empty (0 bytes), truncated, or not an image for
    the decoding backend is skipped: a warning names it and the reason, and
    ``transform`` returns None, so mmengine's ``BaseDataset`` draws another
    sample (in training; :class:`DenseImageFolder` in test mode raises,
    naming the file). Pillow and OpenCV skip the same files (mmcv's loader
    skips them silently with Pillow and ``ignore_empty=True``, and with
    OpenCV raises a ``cv2.error`` or an assertion).

    Each process counts the images it tried and those it skipped (every
    dataloader worker its own, shown in the warning; with
    ``persistent_workers=False`` the counts restart every epoch). Once more
    than ``max_unreadable_fraction`` of the tries are unreadable, counted over
    at least ``MIN_TRIES`` (100) tries, it raises ``ValueError`` naming the
    files: the dataset points at the wrong folder or the data is damaged.
    With the default 0.05, the sixth unreadable file among a process's
    first 100 tries raises.

    Required keys: ``img_path``. Added keys: ``img``, ``img_shape``,
    ``ori_shape``.

    Args:
        max_unreadable_fraction (float): Largest share of unreadable files
            tolerated, in [0, 1); 0 raises at the first one. Defaults to
            0.05.
        to_float32 (bool): Convert the image to float32. Defaults to False.
        color_type (str): mmcv's ``flag`` ('color', 'grayscale', ...).
            Defaults to 'color'.
        imdecode_backend (str): 'cv2', 'pillow', 'turbojpeg' or 'tifffile'.
            Defaults to 'cv2'.
        backend_args (dict, optional): mmengine file backend arguments.

    Raises:
        ValueError: In the constructor for a bad argument; in
            ``transform`` once the unreadable share is exceeded.
    """

    def __init__(self,
                 max_unreadable_fraction: float = 0.05,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        if isinstance(max_unreadable_fraction, bool) or not isinstance(
                max_unreadable_fraction, (int, float)) or not (
                    0 <= max_unreadable_fraction < 1):
            raise ValueError(
                'LoadImageOrSkip: `max_unreadable_fraction` must be a number '
                f'in [0, 1), but got {max_unreadable_fraction!r}. Fix: e.g. '
                '0.05 (skip up to 5% unreadable files), or 0 to fail at the '
                'first one.')
        if imdecode_backend not in supported_backends:
            raise ValueError(
                f'LoadImageOrSkip: `imdecode_backend` must be one of '
                f'{supported_backends}, but got {imdecode_backend!r}.')
        super().__init__(
            to_float32=to_float32,
            color_type=color_type,
            imdecode_backend=imdecode_backend,
            ignore_empty=True,
            backend_args=backend_args)
        self.max_unreadable_fraction = max_unreadable_fraction
        self.num_tried = 0
        self.num_unreadable = 0
        self._unreadable = {}  # path -> reason, the first _REMEMBERED

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``; None (after a warning) when it
        cannot be read."""
        path = results['img_path']
        img, reason = read_image(path, self.imdecode_backend,
                                 self.color_type, self.backend_args)
        self.num_tried += 1
        if img is None:
            self._skip(path, reason)
            return None
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _skip(self, path: str, reason: str) -> None:
        self.num_unreadable += 1
        if len(self._unreadable) < _REMEMBERED:
            self._unreadable.setdefault(path, reason)
        worker = get_worker_info()
        process = (f'dataloader worker {worker.id}'
                   if worker is not None else 'this process')
        counts = (f'{self.num_unreadable} of the {self.num_tried} images '
                  f'{process} tried')
        allowed = self.max_unreadable_fraction * max(self.num_tried,
                                                     MIN_TRIES)
        if self.num_unreadable > allowed:
            raise ValueError(
                f'{counts} are unreadable, more than max_unreadable_fraction='
                f'{self.max_unreadable_fraction} allows (counted over at '
                f'least {MIN_TRIES} tries): '
                f'{describe_files(list(self._unreadable.items()))}. Fix: '
                'check that the dataset points at your image folder, and '
                'remove or replace the broken files (or raise '
                'max_unreadable_fraction of LoadImageOrSkip in the '
                'pipeline).')
        print_log(
            f'Skipped unreadable image "{path}": {reason} ({counts} were '
            'unreadable).',
            logger='current',
            level=logging.WARNING)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_unreadable_fraction='
                f'{self.max_unreadable_fraction}, to_float32='
                f'{self.to_float32}, color_type={self.color_type!r}, '
                f'imdecode_backend={self.imdecode_backend!r}, backend_args='
                f'{self.backend_args})')
