"""DenseImageFolder: an mmpretrain CustomDataset that checks its folder."""
import os.path as osp
from typing import Callable, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmpretrain.datasets import CustomDataset

from densevit.registry import DATASETS
from .utils import (IMG_EXTENSIONS, build_pipeline, check_data_root,
                    check_images_readable)

# Images decoded at build time, spread evenly over the dataset.
NUM_CHECKED_IMAGES = 16


@DATASETS.register_module()
class DenseImageFolder(CustomDataset):
    """An image folder (ImageNet style) that fails early and clearly.

    Behaves exactly like mmpretrain's :class:`CustomDataset` (class
    sub-folders or an annotation file; see its docs), but checks at build
    time, before any training step, that the image folder exists and holds
    images (and that ``ann_file`` exists when given), raising an error that
    names the path and the fix instead of mmpretrain's bare
    ``RuntimeError``/``assert`` deep inside the first epoch. It then decodes
    up to ``NUM_CHECKED_IMAGES`` (16) images spread over the dataset with
    the settings of the pipeline's loader (``LoadImageOrSkip`` or mmcv's
    ``LoadImageFromFile``): when none can be read it raises, naming them;
    when some cannot, it logs them (see
    :func:`~densevit.datasets.utils.check_images_readable`). In test mode an
    image the pipeline cannot load raises, naming the file, since
    evaluation must not skip samples. Its pipeline is built with DenseViT's
    registry, so DenseViT transforms work without the ``densevit`` default
    scope.

    Args:
        data_root (str): Root folder of the dataset. Defaults to ''.
        data_prefix (str | dict): Image folder under ``data_root`` (e.g.
            'train'), or ``dict(img_path=...)``. Defaults to ''.
        ann_file (str): Optional annotation file (``path [label]`` lines),
            relative to ``data_root``. Defaults to '' (scan the folder).
        with_label (bool): Read labels (from sub-folder names or
            ``ann_file``). Defaults to True.
        extensions (Sequence[str]): Image extensions. Defaults to the common
            image formats.
        pipeline (Sequence[dict | Callable]): Transforms. Defaults to ().
        **kwargs: Other arguments of :class:`CustomDataset`.

    Raises:
        FileNotFoundError: The image folder or ``ann_file`` does not exist.
        ValueError: The folder holds no images, none of the checked images
            can be read, or ``with_label=True`` without an ``ann_file`` but
            the folder has no class sub-folders.
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 ann_file: str = '',
                 with_label: bool = True,
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs):
        if not (data_root or data_prefix or ann_file):
            raise ValueError(
                'DenseImageFolder needs `data_root` (and/or `data_prefix` or '
                '`ann_file`), but all are empty. Fix: e.g. '
                "data_root='data/imagenet', data_prefix='train'.")
        prefix = (
            data_prefix.get('img_path', '')
            if isinstance(data_prefix, dict) else data_prefix)
        folder = osp.expanduser(
            osp.join(data_root, prefix) if data_root else prefix)
        if ann_file:
            ann_path = osp.expanduser(
                ann_file if osp.isabs(ann_file) or not data_root else osp.
                join(data_root, ann_file))
            if not osp.isfile(ann_path):
                raise FileNotFoundError(
                    f'Annotation file "{ann_path}" does not exist. Fix: '
                    'create it (one "relative/path.jpg [label]" per line) or '
                    "set ann_file='' to scan the image folder instead.")
            check_data_root(folder or '.', extensions)
        else:
            check_data_root(folder or '.', extensions, with_label=with_label)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file=ann_file,
            with_label=with_label,
            extensions=extensions,
            pipeline=build_pipeline(pipeline),
            **kwargs)
        loader = self._image_loader()
        if self._fully_initialized and loader is not None and len(self):
            picks = np.unique(
                np.linspace(0, len(self) - 1,
                            min(len(self), NUM_CHECKED_IMAGES)).round())
            check_images_readable(
                [self.get_data_info(int(i))['img_path'] for i in picks],
                osp.normpath(folder or '.'),
                imdecode_backend=loader.imdecode_backend,
                color_type=loader.color_type,
                backend_args=loader.backend_args)

    def _image_loader(self) -> Optional[LoadImageFromFile]:
        """The pipeline's image loading transform, if it has one."""
        for transform in self.pipeline.transforms:
            if isinstance(transform, LoadImageFromFile):
                return transform
        return None

    def prepare_data(self, idx: int):
        """The pipeline's output for sample ``idx``; in test mode, an image
        the pipeline could not load raises naming the file (mmengine's
        ``BaseDataset`` raises without it)."""
        data = super().prepare_data(idx)
        if data is None and self.test_mode:
            raise ValueError(
                f'Image "{self.get_data_info(idx)["img_path"]}" could not be '
                'loaded by the pipeline (LoadImageOrSkip logs why), and '
                'evaluation '
                '(test_mode=True) uses every image. Fix: remove or replace '
                'the file.')
        return data
