"""Base of the segmentation metrics on frozen per-patch features."""
from abc import abstractmethod
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from ..functional import (fit_score_split, masks_to_patch_labels, mean_iou,
                          segmentation_chance)
from .utils import check_probe_args, fit_flag, get_field, single_view_mask


class PatchSegmentationMetric(BaseMetric):
    """Collects per-patch features + patch labels; fits on one share of the
    samples, segments the rest.

    Each sample contributes the rows of its feature grid and the labels of
    its ``gt_mask`` reduced to that grid by majority vote
    (:func:`~densevit.evaluation.functional.masks_to_patch_labels`), as
    soon as it arrives (so only ``H*W`` labels are kept per sample). The
    samples are split into a fit and a score share by
    :func:`~densevit.evaluation.functional.fit_score_split`: a seeded
    ``train_fraction`` of them, or, with ``fit_pattern``, those whose
    ``img_path`` contains it. The split depends only on the samples and
    ``seed``, so ``tools/test.py`` and ``ProbeHook`` give the same number on
    the same split. A subclass predicts a label for every scored patch from
    the fit patches (ignored ones left out); mIoU and pixel accuracy are on
    the patch grid, in ``[0, 1]``, reported as ``<prefix>/mIoU`` and
    ``<prefix>/pixel_acc``, beside their chance levels ``mIoU_chance`` and
    ``pixel_acc_chance``: the scores of labelling every scored patch with
    the most common class of the scored patches.

    Args:
        num_classes (int): segmentation classes, background included.
        train_fraction (float): share of samples to fit on. Defaults to 0.5.
        seed (int): seed of the split. Defaults to 0.
        ignore_index (int): mask label to ignore. Defaults to 255.
        feature (str): ``'patch'``: the backbone's ``patch_feats``
            ``(C, H, W)``; ``'dense'``: the projected ``dense_feats``
            ``(H, W, D)``. Defaults to 'patch'.
        fit_pattern (str, optional): split by ``img_path`` instead of at
            random. Defaults to None.
        collect_device (str): device for gathering results across ranks.
        prefix (str, optional): prefix of the metric names; defaults to the
            subclass's ``default_prefix``, with ``_dense`` appended for
            ``feature='dense'``.
    """

    FEATURES = {'patch': 'patch_feats', 'dense': 'dense_feats'}

    def __init__(self,
                 num_classes: int,
                 train_fraction: float = 0.5,
                 seed: int = 0,
                 ignore_index: int = 255,
                 feature: str = 'patch',
                 fit_pattern: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        name = type(self).__name__
        if feature not in self.FEATURES:
            raise ValueError(f'{name}: feature must be one of '
                             f'{tuple(self.FEATURES)}, got {feature!r}.')
        if prefix is None and feature != 'patch':
            prefix = f'{self.default_prefix}_{feature}'
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_classes is None:
            raise ValueError(f'{name}: num_classes is required (the '
                             'segmentation classes, background included).')
        check_probe_args(name, train_fraction, num_classes,
                         fit_pattern=fit_pattern)
        self.num_classes = num_classes
        self.train_fraction = train_fraction
        self.seed = seed
        self.ignore_index = ignore_index
        self.feature = feature
        self.fit_pattern = fit_pattern

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep each sample's patch feature rows (on CPU) and labels."""
        name = type(self).__name__
        field = self.FEATURES[self.feature]
        for sample in data_samples:
            feats = get_field(sample, field)
            mask = get_field(sample, 'gt_mask')
            if feats is None:
                raise ValueError(
                    f'{name} needs {field} in the predictions; use a '
                    'model whose predict returns them (DenseViT).')
            if mask is None:
                raise ValueError(
                    f'{name} needs gt_mask in the data samples: use a '
                    'dataset with segmentation masks (e.g. SyntheticShapes) '
                    'and PackDenseInputs, which packs gt_seg_map as gt_mask.')
            feats = feats.detach().cpu().float()
            if feats.dim() != 3:
                layout = '(C, H, W)' if self.feature == 'patch' else \
                    '(H, W, D)'
                raise ValueError(f'{name}: {field} must be {layout}, but '
                                 f'got shape {tuple(feats.shape)}.')
            if self.feature == 'patch':
                grid, rows = feats.shape[-2:], feats.flatten(1).T
            else:
                grid, rows = feats.shape[:2], feats.flatten(0, 1)
            mask = single_view_mask(mask.detach().cpu())
            labels = masks_to_patch_labels(mask[None], grid, self.num_classes,
                                           self.ignore_index)[0]
            self.results.append(
                dict(
                    feats=rows.contiguous(),  # (H*W, C)
                    labels=labels.reshape(-1),
                    fit=fit_flag(name, sample, self.fit_pattern)))

    def split(self,
              results: List[dict]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(fit_x, fit_y, score_x, score_y)`` patch rows; ignored fit
        patches left out (scored ones are skipped by the scoring)."""
        fit_idx, score_idx = fit_score_split(
            len(results), self.train_fraction, self.seed,
            None if self.fit_pattern is None else [r['fit'] for r in results],
            f'{type(self).__name__}: fit_pattern={self.fit_pattern!r}')

        def rows(indices):
            x = torch.cat([results[i]['feats'] for i in indices])
            y = torch.cat([results[i]['labels'] for i in indices])
            return x, y

        fit_x, fit_y = rows(fit_idx.tolist())
        score_x, score_y = rows(score_idx.tolist())
        keep = fit_y != self.ignore_index
        return fit_x[keep], fit_y[keep], score_x, score_y

    @abstractmethod
    def predict(self, fit_x: Tensor, fit_y: Tensor,
                score_x: Tensor) -> Tensor:
        """``(M,)`` predicted class of each scored patch row."""

    def compute_metrics(self, results: List[dict]) -> dict:
        """Predict the scored patches; mIoU, pixel accuracy and chance."""
        fit_x, fit_y, score_x, score_y = self.split(results)
        scores = mean_iou(
            self.predict(fit_x, fit_y, score_x), score_y, self.num_classes,
            self.ignore_index)
        chance = segmentation_chance(score_y, self.num_classes,
                                     self.ignore_index)
        return {
            'mIoU': scores['mIoU'],
            'pixel_acc': scores['pixel_acc'],
            'mIoU_chance': chance['mIoU'],
            'pixel_acc_chance': chance['pixel_acc'],
        }
