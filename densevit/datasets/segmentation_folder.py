"""SegmentationFolder: VOC-style image + index/palette mask pairs."""
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmpretrain.datasets import BaseDataset
from PIL import Image

from densevit.registry import DATASETS
from .utils import build_pipeline

# PIL modes whose pixel values are class indices.
_INDEX_MODES = ('P', 'L', 'I', 'I;16', 'I;16L', 'I;16B')


def load_index_mask(path: str) -> np.ndarray:
    """Read a palette or index PNG as an (H, W) uint8 array of class ids.

    Args:
        path (str): Mask file.

    Returns:
        np.ndarray: (H, W) uint8; palette images give their palette indices,
        not their colours.

    Raises:
        ValueError: The mask is a colour image or holds values above 255.
    """
    with Image.open(path) as m:
        if m.mode not in _INDEX_MODES:
            raise ValueError(
                f'Mask "{path}" is a {m.mode} image, but SegmentationFolder '
                'needs class indices. Fix: save masks as palette (mode P, '
                'like VOC SegmentationClass) or 8-bit grayscale index PNGs '
                '(value = class id, 255 = ignore).')
        mask = np.array(m)
    if mask.dtype != np.uint8:
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError(
                f'Mask "{path}" has class ids outside 0..255 '
                f'({mask.min()}..{mask.max()}). Fix: use ids < 255 and 255 '
                'for ignore.')
        mask = mask.astype(np.uint8)
    return mask


@DATASETS.register_module()
class SegmentationFolder(BaseDataset):
    """Image / segmentation-mask pairs in a VOC-style folder.

    Layout (names configurable)::

        data_root/
          JPEGImages/<name>.jpg
          SegmentationClass/<name>.png   palette or index PNG, 255 = ignore
          ImageSets/Segmentation/val.txt optional split: one <name> a line

    Without a split file every mask in ``mask_dir`` is a sample (VOC has far
    more images than masks). Samples have the same keys as
    :class:`SyntheticShapes`: ``img`` (H, W, 3) uint8 BGR, ``gt_seg_map``
    (H, W) uint8, ``img_shape``, ``ori_shape``, ``img_path``,
    ``seg_map_path`` and, with ``with_label=True``, ``gt_label`` = the most
    frequent foreground class (mask value ``v`` in 1..254 -> class ``v - 1``;
    absent when the mask has no foreground). Images are read here rather than
    by a ``LoadImageFromFile`` step so the same probe pipeline serves this
    and SyntheticShapes.

    Args:
        data_root (str): Root folder.
        img_dir (str): Image folder under ``data_root``. Defaults to
            'JPEGImages'.
        mask_dir (str): Mask folder under ``data_root``. Defaults to
            'SegmentationClass'.
        split (str, optional): Split file under ``data_root`` (or absolute)
            listing sample names. Defaults to None (all masks).
        img_suffix (str): Image file suffix. Defaults to '.jpg'.
        mask_suffix (str): Mask file suffix. Defaults to '.png'.
        seg_classes (Sequence[str], optional): Names of mask values 0..K-1,
            background first (VOC: 21 names); stored in metainfo as
            ``seg_classes``, and ``classes`` = ``seg_classes[1:]``.
            Defaults to None.
        with_label (bool): Add ``gt_label`` from the mask. Defaults to False.
        ignore_index (int): Mask value excluded from labels and metrics.
            Defaults to 255.
        pipeline (Sequence[dict | Callable]): Transforms. Defaults to ().
        test_mode (bool): Test mode. Defaults to True (evaluation data).
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 data_root: str,
                 img_dir: str = 'JPEGImages',
                 mask_dir: str = 'SegmentationClass',
                 split: Optional[str] = None,
                 img_suffix: str = '.jpg',
                 mask_suffix: str = '.png',
                 seg_classes: Optional[Sequence[str]] = None,
                 with_label: bool = False,
                 ignore_index: int = 255,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = True,
                 **kwargs):
        if not data_root:
            raise ValueError(
                'SegmentationFolder needs `data_root`, the folder '
                f'holding {img_dir}/ and {mask_dir}/. Fix: e.g. '
                "data_root='data/VOCdevkit/VOC2012'.")
        self.img_dir = img_dir
        self.mask_dir = mask_dir
        self.split = split
        self.img_suffix = img_suffix
        self.mask_suffix = mask_suffix
        self.with_label = with_label
        self.ignore_index = ignore_index
        metainfo = {}
        if seg_classes is not None:
            seg_classes = tuple(seg_classes)
            metainfo = dict(seg_classes=seg_classes, classes=seg_classes[1:])
        super().__init__(
            ann_file='',
            metainfo=metainfo,
            data_root=data_root,
            pipeline=build_pipeline(pipeline),
            test_mode=test_mode,
            **kwargs)

    def _folder(self, sub: str, role: str) -> str:
        path = osp.join(self.data_root, sub)
        if not osp.isdir(path):
            raise FileNotFoundError(
                f'SegmentationFolder: {role} folder "{path}" does not exist. '
                f'Fix: set data_root to the folder that holds {self.img_dir}/ '
                f'and {self.mask_dir}/ (or set `{role}_dir`).')
        return path

    def load_data_list(self) -> List[dict]:
        """List (image, mask) path pairs; check that every file exists."""
        img_root = self._folder(self.img_dir, 'img')
        mask_root = self._folder(self.mask_dir, 'mask')
        if self.split:
            split_path = (
                self.split if osp.isabs(self.split) else osp.join(
                    self.data_root, self.split))
            if not osp.isfile(split_path):
                raise FileNotFoundError(
                    f'SegmentationFolder: split file "{split_path}" does not '
                    'exist. Fix: give the right path (relative to data_root) '
                    'or split=None to use every mask.')
            with open(split_path, encoding='utf-8') as f:
                names = [ln.strip() for ln in f if ln.strip()]
        else:
            names = sorted(n[:-len(self.mask_suffix)]
                           for n in os.listdir(mask_root)
                           if n.endswith(self.mask_suffix))
        if not names:
            raise ValueError(
                f'SegmentationFolder: no samples found (masks "*'
                f'{self.mask_suffix}" in "{mask_root}"' +
                (f', split "{self.split}"' if self.split else '') +
                '). Fix: check data_root, mask_dir and mask_suffix.')
        data_list, missing = [], []
        for name in names:
            img_path = osp.join(img_root, name + self.img_suffix)
            mask_path = osp.join(mask_root, name + self.mask_suffix)
            for p in (img_path, mask_path):
                if not osp.isfile(p):
                    missing.append(p)
            data_list.append(dict(img_path=img_path, seg_map_path=mask_path))
        if missing:
            raise FileNotFoundError(
                f'SegmentationFolder: {len(missing)} listed file(s) do not '
                f'exist, e.g. {missing[:3]}. Fix: check img_suffix/'
                'mask_suffix and that every split name has an image and a '
                'mask.')
        return data_list

    def get_data_info(self, idx: int) -> dict:
        """Load sample ``idx``: image (BGR), mask and optional label."""
        info = super().get_data_info(idx)
        with Image.open(info['img_path']) as im:
            img = np.ascontiguousarray(np.array(im.convert('RGB'))[..., ::-1])
        mask = load_index_mask(info['seg_map_path'])
        if mask.shape != img.shape[:2]:
            raise ValueError(
                f'Mask "{info["seg_map_path"]}" is {mask.shape[1]}x'
                f'{mask.shape[0]} (WxH) but image "{info["img_path"]}" is '
                f'{img.shape[1]}x{img.shape[0]}. Fix: masks must have the '
                'same size as their images (resize the mask with nearest '
                'interpolation).')
        info.update(
            img=img,
            gt_seg_map=mask,
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2])
        if self.with_label:
            fg = mask[(mask > 0) & (mask != self.ignore_index)]
            if fg.size:
                info['gt_label'] = int(np.bincount(fg).argmax()) - 1
        return info
