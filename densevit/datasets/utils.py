"""Helpers shared by the DenseViT datasets."""
import os
import os.path as osp
from typing import Callable, List, Sequence, Union

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
