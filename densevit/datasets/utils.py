"""Helpers shared by the DenseViT datasets."""
import logging
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmengine import fileio
from mmengine.logging import print_log

from densevit.registry import TRANSFORMS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def build_pipeline(pipeline: Sequence[Union[dict, Callable]]) -> List:
    """Build transform configs with DenseViT's TRANSFORMS registry.

    mmengine's and mmpretrain's datasets build their pipelines with their own
    registry, which only finds DenseViT transforms (``TwoViewCrop``...) when
    the default scope is ``densevit``. Building here makes a dataset built
    outside a Runner work too; mmpretrain/mmcv names still resolve through the
    parent registries.

    Args:
        pipeline (Sequence[dict | Callable]): Transform configs or objects.

    Returns:
        list: Transform objects.
    """
    if isinstance(pipeline, (dict, str)) or not isinstance(pipeline, Sequence):
        raise TypeError('`pipeline` must be a list of transform configs '
                        f'(dicts) or callables, but got {type(pipeline)}. '
                        'Fix: wrap it in a list, e.g. pipeline=[dict(...)].')
    transforms = []
    for t in pipeline:
        if isinstance(t, dict):
            transforms.append(TRANSFORMS.build(t))
        elif callable(t):
            transforms.append(t)
        else:
            raise TypeError('Each `pipeline` item must be a dict config or a '
                            f'callable, but got {type(t)}.')
    return transforms


def _has_image(folder: str, extensions: Sequence[str]) -> bool:
    """Depth-first walk that stops at the first image (cheap on ImageNet)."""
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as it:
            subdirs = []
            for entry in it:
                if entry.is_file() and entry.name.lower().endswith(
                        tuple(extensions)):
                    return True
                if entry.is_dir():
                    subdirs.append(entry.path)
        stack.extend(sorted(subdirs, reverse=True))
    return False


def check_data_root(path: str,
                    extensions: Sequence[str] = IMG_EXTENSIONS,
                    with_label: bool = False) -> None:
    """Fail early, naming the path and the fix, when an image folder is
    missing or holds no images.

    Args:
        path (str): The image folder (``data_root`` joined with
            ``data_prefix``).
        extensions (Sequence[str]): Image file extensions, lower case.
            Defaults to :data:`IMG_EXTENSIONS`.
        with_label (bool): Whether the labels come from class sub-folders
            (``path/<class>/<image>``); then images lying directly in
            ``path`` are an error too. Defaults to False.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a folder.
        ValueError: ``path`` holds no image file.
    """
    hint = (
        'Fix: point `data_root`/`data_prefix` of the dataset at your '
        'image folder (e.g. --cfg-options '
        'train_dataloader.dataset.data_root=/path/to/imagenet), or '
        'symlink the data there; to try DenseViT without data, use a '
        'config built on configs/_base_/datasets/synthetic_shapes_64px.py.')
    if not osp.exists(path):
        raise FileNotFoundError(
            f'Image folder "{path}" (absolute: "{osp.abspath(path)}") does '
            f'not exist. {hint}')
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'"{path}" is a file, but the dataset expects an image folder. '
            f'{hint}')
    extensions = tuple(e.lower() for e in extensions)
    if not _has_image(path, extensions):
        raise ValueError(
            f'Image folder "{path}" contains no images with extensions '
            f'{extensions} (searched recursively). {hint}')
    if with_label:
        with os.scandir(path) as it:
            entries = list(it)
        if not any(e.is_dir() for e in entries):
            raise ValueError(
                f'Image folder "{path}" has no class sub-folders, but '
                '`with_label=True` reads labels from them '
                '(path/<class>/<image>). Fix: set with_label=False for an '
                'unlabelled folder, or give an `ann_file` with labels.')


def read_image(path: str,
               imdecode_backend: str = 'cv2',
               color_type: str = 'color',
               backend_args: Optional[dict] = None
               ) -> Tuple[Optional[np.ndarray], str]:
    """Read and decode one image file, or say why it cannot be.

    mmcv's decoders fail differently on the same bad file: Pillow raises for
    empty, truncated and non-image files, OpenCV raises for an empty one and
    returns None for the others. Both come out here as ``(None, reason)``.

    Args:
        path (str): The image file.
        imdecode_backend (str): mmcv decoding backend ('cv2', 'pillow',
            ...). Defaults to 'cv2'.
        color_type (str): mmcv's ``flag`` ('color', 'grayscale', ...).
            Defaults to 'color'.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        tuple: ``(image, '')``, or ``(None, reason)`` for a file that is
        missing or cannot be read, is empty, or does not decode (truncated,
        corrupt or not an image).
    """
    try:
        img_bytes = fileio.get(path, backend_args=backend_args)
    except Exception as e:  # whatever the storage backend raises
        return None, f'cannot be read ({type(e).__name__}: {e})'
    if not img_bytes:
        return None, 'empty file (0 bytes)'
    try:
        img = mmcv.imfrombytes(
            img_bytes, flag=color_type, backend=imdecode_backend)
    except Exception:  # the decoders raise many types for one meaning
        img = None
    if img is None or img.size == 0:
        return None, (f'{imdecode_backend} cannot decode it (truncated, '
                      'corrupt or not an image)')
    return img, ''


def describe_files(problems: Sequence[Tuple[str, str]],
                   limit: int = 10) -> str:
    """``"path": reason`` for the first ``limit`` files, then a count."""
    text = '; '.join(f'"{path}": {reason}'
                     for path, reason in problems[:limit])
    if len(problems) > limit:
        text += f'; and {len(problems) - limit} more'
    return text


def check_images_readable(paths: Sequence[str], folder: str,
                          **read_args) -> None:
    """Decode ``paths`` (a sample of a dataset's images) before training.

    Raises when none of them can be read: a folder of broken files (or of
    other files named like images) would otherwise pass the folder checks
    and fail in the first epoch without naming a file. Logs a warning
    naming those that cannot be read when only some are: the loader will
    skip them.

    Args:
        paths (Sequence[str]): The image files to try.
        folder (str): The dataset's image folder, for the messages.
        **read_args: :func:`read_image` arguments (the pipeline loader's
            decoding backend, colour type and file backend).

    Raises:
        ValueError: No file in ``paths`` can be read.
    """
    unreadable = []
    for path in paths:
        img, reason = read_image(path, **read_args)
        if img is None:
            unreadable.append((path, reason))
    if paths and len(unreadable) == len(paths):
        raise ValueError(
            f'None of the {len(paths)} images checked in "{folder}" can be '
            f'read: {describe_files(unreadable)}. Fix: point `data_root`/'
            '`data_prefix` at a folder of intact images (try opening one in '
            'an image viewer), or replace the broken files.')
    if unreadable:
        print_log(
            f'{len(unreadable)} of the {len(paths)} images checked in '
            f'"{folder}" cannot be read and will be skipped: '
            f'{describe_files(unreadable)}.',
            logger='current',
            level=logging.WARNING)
