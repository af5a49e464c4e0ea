"""Dense linear-probe segmentation metric on frozen patch features."""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from densevit.registry import METRICS
from ..functional import (fit_linear_probe, majority_class,
                          masks_to_patch_labels, mean_iou, probe_split)
from .utils import check_probe_args, get_field, single_view_mask


@METRICS.register_module()
class DenseProbe(BaseMetric):
    """mIoU of a per-patch linear classifier on the evaluated samples.

    Collects ``patch_feats`` ``(C, H, W)`` and ``gt_mask`` of every sample,
    fits the probe on a deterministic ``train_fraction`` of them
    (:func:`~densevit.evaluation.functional.probe_split`) and scores the
    rest. Masks are reduced to the patch grid by majority vote as soon as a
    sample arrives (so only ``H*W`` labels are kept per sample); mIoU and
    pixel accuracy are therefore on the patch grid, in ``[0, 1]``; with the
    default prefix they are named ``dense_probe/mIoU`` and
    ``dense_probe/pixel_acc``. Their chance levels,
    ``dense_probe/mIoU_chance`` and ``dense_probe/pixel_acc_chance``, are
    the scores of labelling every scored patch with the most common class of
    the scored patches.

    Args:
        num_classes (int): segmentation classes, background included.
        train_fraction (float): share of samples the probe is fitted on.
            Defaults to 0.5.
        seed (int): seed of the split. Defaults to 0.
        ignore_index (int): mask label to ignore. Defaults to 255.
        weight_decay (float): L2 penalty of the probe. Defaults to 1e-4.
        max_iter (int): L-BFGS iterations of the probe. Defaults to 100.
        collect_device (str): device for gathering results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            'dense_probe'.
    """

    default_prefix: Optional[str] = 'dense_probe'

    def __init__(self,
                 num_classes: int,
                 train_fraction: float = 0.5,
                 seed: int = 0,
                 ignore_index: int = 255,
                 weight_decay: float = 1e-4,
                 max_iter: int = 100,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_classes is None:
            raise ValueError('DenseProbe: num_classes is required (the '
                             'segmentation classes, background included).')
        check_probe_args('DenseProbe', train_fraction, num_classes,
                         weight_decay, max_iter)
        self.num_classes = num_classes
        self.train_fraction = train_fraction
        self.seed = seed
        self.ignore_index = ignore_index
        self.weight_decay = weight_decay
        self.max_iter = max_iter

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep each sample's patch features (on CPU) and patch labels."""
        for sample in data_samples:
            feats = get_field(sample, 'patch_feats')
            mask = get_field(sample, 'gt_mask')
            if feats is None:
                raise ValueError(
                    'DenseProbe needs patch_feats in the predictions; use '
                    "a model whose predict returns them (DenseViT).")
            if mask is None:
                raise ValueError(
                    'DenseProbe needs gt_mask in the data samples: use a '
                    'dataset with segmentation masks (e.g. SyntheticShapes) '
                    'and PackDenseInputs, which packs gt_seg_map as gt_mask.')
            feats = feats.detach().cpu().float()
            if feats.dim() != 3:
                raise ValueError('DenseProbe: patch_feats must be (C, H, W), '
                                 f'but got shape {tuple(feats.shape)}.')
            mask = single_view_mask(mask.detach().cpu())
            labels = masks_to_patch_labels(mask[None], feats.shape[-2:],
                                           self.num_classes,
                                           self.ignore_index)[0]
            self.results.append(
                dict(
                    feats=feats.flatten(1).T.contiguous(),  # (H*W, C)
                    labels=labels.reshape(-1)))

    def compute_metrics(self, results: List[dict]) -> dict:
        """Fit on the train share, score on the rest."""
        train_idx, test_idx = probe_split(
            len(results), self.train_fraction, self.seed)

        def rows(indices):
            x = torch.cat([results[i]['feats'] for i in indices])
            y = torch.cat([results[i]['labels'] for i in indices])
            return x, y

        train_x, train_y = rows(train_idx.tolist())
        test_x, test_y = rows(test_idx.tolist())
        keep = train_y != self.ignore_index
        train_x, train_y = train_x[keep], train_y[keep]
        classifier = fit_linear_probe(train_x, train_y, self.num_classes,
                                      self.weight_decay, self.max_iter)
        scores = mean_iou(
            classifier.predict(test_x), test_y, self.num_classes,
            self.ignore_index)
        majority, _ = majority_class(test_y, self.ignore_index)
        chance = mean_iou(
            torch.full_like(test_y, majority), test_y, self.num_classes,
            self.ignore_index)
        return {
            'mIoU': scores['mIoU'],
            'pixel_acc': scores['pixel_acc'],
            'mIoU_chance': chance['mIoU'],
            'pixel_acc_chance': chance['pixel_acc'],
        }
