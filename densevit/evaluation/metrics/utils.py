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


def fit_flag(name: str, sample: Any,
             fit_pattern: Optional[str]) -> Optional[bool]:
    """Whether ``sample`` is a fit sample: its ``img_path`` contains
    ``fit_pattern``; None without a pattern (the split is then seeded).
    """
    if fit_pattern is None:
        return None
    path = get_field(sample, 'img_path')
    if path is None:
        raise ValueError(f'{name}(fit_pattern=...) needs img_path in every '
                         'data sample: evaluate on an image folder.')
    return fit_pattern in str(path)


def check_probe_args(name: str,
                     train_fraction: Optional[float] = None,
                     num_classes: Optional[int] = None,
                     weight_decay: Optional[float] = None,
                     max_iter: Optional[int] = None,
                     fit_pattern: Optional[str] = None) -> None:
    """Validate the arguments the probe metrics share, where they enter.

    ``None`` means the metric does not take that argument (``num_classes``:
    inferred from the labels; ``fit_pattern``: a seeded split).
    """
    if fit_pattern is not None and (not isinstance(fit_pattern, str)
                                    or not fit_pattern):
        raise ValueError(
            f'{name}: fit_pattern must be a non-empty str (part of the '
            'img_path of the samples to fit on) or None (a seeded split), '
            f'but got {fit_pattern!r}.')
    if num_classes is not None and (not isinstance(num_classes, int)
                                    or num_classes < 2):
        raise ValueError(f'{name}: num_classes must be an int >= 2, but got '
                         f'{num_classes!r}.')
    if train_fraction is not None and not 0 < train_fraction < 1:
        raise ValueError(f'{name}: train_fraction must be in (0, 1) (the '
                         'share of samples the probe is fitted on), but got '
                         f'{train_fraction}.')
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f'{name}: weight_decay must be >= 0, but got '
                         f'{weight_decay}.')
    if max_iter is not None and (not isinstance(max_iter, int)
                                 or max_iter < 1):
        raise ValueError(f'{name}: max_iter must be an int >= 1, but got '
                         f'{max_iter!r}.')
