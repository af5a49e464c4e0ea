"""PackDenseInputs: pack one or two views, labels, masks and view geometry."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from densevit.registry import TRANSFORMS


def _img_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W[, C]) array -> contiguous (C, H, W) tensor, dtype kept."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f'PackDenseInputs expects numpy images, but got '
                        f'{type(img)}.')
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def _mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask)).long()


@TRANSFORMS.register_module()
class PackDenseInputs(BaseTransform):
    """Pack the views and annotations for DenseViT.

    Output ``dict(inputs=..., data_samples=DataSample)``:

    - ``inputs``: a list of V uint8 tensors (C, h, w) when ``img`` is a list
      of views (two-view training), else one tensor (C, h, w). Channels stay
      as in ``img`` (BGR); ``SelfSupDataPreprocessor(to_rgb=True)`` converts
      and normalises.
    - ``data_samples.gt_label``: set when ``gt_label`` is present.
    - ``data_samples.gt_mask``: LongTensor (V, h, w) for a list of views /
      (h, w) for one view, from ``gt_seg_map`` (255 = ignore); with local
      crops (``TwoViewCrop(num_local_crops=N)``) the masks of views 1 and 2
      only, (2, h, w).
    - metainfo ``view_boxes`` float32 tensor (V, 4) ``[x1, y1, x2, y2]`` in
      original pixels and ``view_flips`` bool tensor (V,) when a crop
      transform recorded them, plus the keys of ``meta_keys`` that exist
      (``ori_shape``, ``img_shape``, ``sample_idx``, ``img_path``...).

    Args:
        meta_keys (Sequence[str]): Keys copied as-is into the metainfo.
            Defaults to ``('sample_idx', 'img_path', 'ori_shape',
            'img_shape', 'scale_factor', 'flip', 'flip_direction')``.
    """

    DEFAULT_META_KEYS = ('sample_idx', 'img_path', 'ori_shape', 'img_shape',
                         'scale_factor', 'flip', 'flip_direction')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        if isinstance(meta_keys, str):
            raise TypeError('`meta_keys` must be a sequence of key names, '
                            f'got the string {meta_keys!r}. Fix: '
                            f'meta_keys=({meta_keys!r}, ).')
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results`` into ``inputs`` and a ``DataSample``."""
        img = results['img']
        multi_view = isinstance(img, (list, tuple))
        if multi_view:
            inputs = [_img_to_tensor(v) for v in img]
        else:
            inputs = _img_to_tensor(img)

        data_sample = DataSample()
        if results.get('gt_label', None) is not None:
            data_sample.set_gt_label(results['gt_label'])
        seg = results.get('gt_seg_map', None)
        if seg is not None:
            if multi_view:
                # TwoViewCrop's local crops (multi-crop) carry no mask.
                if (not isinstance(seg, (list, tuple))
                        or len(seg) not in (len(img), 2)):
                    raise ValueError(
                        'gt_seg_map must be a list with one map per view '
                        f'({len(img)}) or for views 1 and 2; crop masks with '
                        'the same transform that creates the views '
                        '(TwoViewCrop).')
                gt_mask = torch.stack([_mask_to_tensor(s) for s in seg])
            else:
                gt_mask = _mask_to_tensor(seg)
            data_sample.set_field(gt_mask, 'gt_mask', dtype=torch.Tensor)

        if 'view_boxes' in results:
            boxes = torch.as_tensor(
                np.asarray(results['view_boxes'], dtype=np.float32))
            data_sample.set_field(
                boxes.reshape(-1, 4), 'view_boxes', field_type='metainfo')
        if 'view_flips' in results:
            flips = torch.as_tensor(
                np.asarray(results['view_flips'], dtype=bool))
            data_sample.set_field(
                flips.reshape(-1), 'view_flips', field_type='metainfo')
        # set_field, unlike set_metainfo, does not deep-copy every value.
        for key in self.meta_keys:
            if key in results:
                data_sample.set_field(results[key], key, field_type='metainfo')
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
