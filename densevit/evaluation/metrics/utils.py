"""Reading fields from the predictions a metric receives.

mmengine's ``Evaluator`` turns each ``DataSample`` into a flat dict
(``to_dict()``: data fields and metainfo side by side); code that calls a
metric directly may pass ``DataSample`` objects. Both support ``.get``.
"""
from typing import Any, Optional

import torch
from torch import Tensor


def get_field(sample: Any, key: str) -> Optional[Any]:
    """``sample[key]`` for a dict or a ``BaseDataElement``, else None."""
    if isinstance(sample, dict):
        return sample.get(key)
    return sample.get(key, None)


def get_label(sample: Any) -> Optional[int]:
    """The single-label ``gt_label`` of a sample as an int, or None."""
    label = get_field(sample, 'gt_label')
    if label is None:
        return None
    label = torch.as_tensor(label).reshape(-1)
    if label.numel() != 1:
        raise ValueError(
            'Probes need one class id per sample in gt_label, but got '
            f'{label.numel()} values ({label.tolist()[:8]}...).')
    return int(label[0])


def single_view_mask(mask: Tensor) -> Tensor:
    """``gt_mask`` as ``(h, w)``: (h, w), (1, h, w) or view 1 of (V, h, w).

    Two-view predictions carry ``patch_feats`` of view 1, so view 1's mask
    is the one that lines up with them.
    """
    mask = torch.as_tensor(mask)
    if mask.dim() == 3:
        mask = mask[0]
    if mask.dim() != 2:
        raise ValueError('gt_mask must be (h, w) or (V, h, w), but got '
                         f'shape {tuple(mask.shape)}.')
    return mask
