"""Classification metrics on frozen features: k-NN and linear probe."""
from abc import abstractmethod
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from densevit.registry import METRICS
from ..functional import (fit_score_split, knn_top1, linear_probe_top1,
                          majority_class)
from .utils import check_probe_args, fit_flag, get_field, get_label


class ClsFeatureMetric(BaseMetric):
    """Collects an image feature + ``gt_label``; fits on one share, scores
    the rest.

    The feature is the CLS token (``cls_feats``) or, with
    ``feature='mean_patch'``, the mean of the backbone patch features
    (``patch_feats`` averaged over the grid); the latter reports under
    ``<prefix>_mean_patch/``.

    The evaluated samples are split by a seeded permutation
    (:func:`~densevit.evaluation.functional.probe_split`): ``train_fraction``
    of them fit the classifier (or form the k-NN memory), the others are
    scored. With ``fit_pattern`` the split is given by the data instead: the
    samples whose ``img_path`` contains it fit, the others are scored (e.g.
    crops of other regions of the same photos). The split depends only on the number of samples and ``seed``, so
    ``tools/test.py`` and ``ProbeHook`` give the same number on the same
    split. Besides ``top1`` a subclass reports ``chance``: the frequency of
    the most common class among the scored samples, what always answering
    that class would score.

    Args:
        num_classes (int, optional): number of classes; inferred as the
            largest label + 1 when None.
        train_fraction (float): share of samples used to fit. Defaults to
            0.5.
        seed (int): seed of the split. Defaults to 0.
        feature (str): 'cls' or 'mean_patch'. Defaults to 'cls'.
        fit_pattern (str, optional): split by ``img_path`` instead of at
            random. Defaults to None.
        collect_device (str): device for gathering results across ranks.
        prefix (str, optional): prefix of the metric names.
    """

    FEATURES = ('cls', 'mean_patch')

    def __init__(self,
                 num_classes: Optional[int] = None,
                 train_fraction: float = 0.5,
                 seed: int = 0,
                 feature: str = 'cls',
                 fit_pattern: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        if feature not in self.FEATURES:
            raise ValueError(
                f'{type(self).__name__}: feature must be one of '
                f'{self.FEATURES}, got {feature!r}.')
        if prefix is None and feature == 'mean_patch':
            prefix = f'{self.default_prefix}_mean_patch'
        super().__init__(collect_device=collect_device, prefix=prefix)
        check_probe_args(
            type(self).__name__, train_fraction, num_classes,
            fit_pattern=fit_pattern)
        self.feature = feature
        self.fit_pattern = fit_pattern
        self.num_classes = num_classes
        self.train_fraction = train_fraction
        self.seed = seed

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep each sample's feature (on CPU) and label."""
        name = type(self).__name__
        field = 'cls_feats' if self.feature == 'cls' else 'patch_feats'
        for sample in data_samples:
            feats = get_field(sample, field)
            if feats is None:
                raise ValueError(
                    f'{name} needs {field} in the predictions; use a '
                    'model whose predict returns them (DenseViT).')
            if self.feature == 'mean_patch':
                feats = feats.float().mean(dim=(-2, -1))
            label = get_label(sample)
            if label is None:
                raise ValueError(
                    f'{name} needs gt_label in every data sample: '
                    'evaluate on a labelled split whose pipeline packs '
                    'gt_label (PackDenseInputs / PackInputs).')
            self.results.append(
                dict(
                    feats=feats.detach().cpu().float().reshape(-1),
                    label=label,
                    fit=fit_flag(name, sample, self.fit_pattern)))

    def split(self, results: List[dict]
              ) -> Tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """(train_x, train_y, test_x, test_y, num_classes)."""
        train_idx, test_idx = fit_score_split(
            len(results), self.train_fraction, self.seed,
            None if self.fit_pattern is None else [r['fit'] for r in results],
            f'{type(self).__name__}: fit_pattern={self.fit_pattern!r}')
        feats = torch.stack([r['feats'] for r in results])
        labels = torch.tensor([r['label'] for r in results])
        num_classes = self.num_classes or max(int(labels.max()) + 1, 2)
        return (feats[train_idx], labels[train_idx], feats[test_idx],
                labels[test_idx], num_classes)

    @abstractmethod
    def top1(self, train_x: Tensor, train_y: Tensor, test_x: Tensor,
             test_y: Tensor, num_classes: int) -> float:
        """Top-1 of the classifier on the scored share."""

    def compute_metrics(self, results: List[dict]) -> dict:
        """``top1`` on the scored share and its ``chance`` level."""
        train_x, train_y, test_x, test_y, num_classes = self.split(results)
        top1 = self.top1(train_x, train_y, test_x, test_y, num_classes)
        return {'top1': top1, 'chance': majority_class(test_y)[1]}


@METRICS.register_module()
class KNNAccuracy(ClsFeatureMetric):
    """k-NN classification of ``cls_feats`` among the evaluated samples.

    The fit share is the k-NN memory; each scored sample is classified by
    temperature-weighted cosine votes (InstDisc / DINO protocol). Reports
    ``knn/top1`` and ``knn/chance`` (see :class:`ClsFeatureMetric`), in
    ``[0, 1]``.

    Args:
        num_classes (int, optional): number of classes; inferred as the
            largest label + 1 when None.
        k (int): neighbours. Defaults to 20.
        temperature (float): vote temperature. Defaults to 0.07.
        train_fraction (float): share of samples used as the memory.
            Defaults to 0.5.
        seed (int): seed of the split. Defaults to 0.
        feature (str): 'cls' or 'mean_patch'. Defaults to 'cls'.
        fit_pattern (str, optional): see :class:`ClsFeatureMetric`.
        collect_device (str): device for gathering results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            'knn' ('knn_mean_patch' for the mean patch feature).
    """

    default_prefix: Optional[str] = 'knn'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 k: int = 20,
                 temperature: float = 0.07,
                 train_fraction: float = 0.5,
                 seed: int = 0,
                 feature: str = 'cls',
                 fit_pattern: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(num_classes, train_fraction, seed, feature,
                         fit_pattern, collect_device, prefix)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f'KNNAccuracy: k must be an int >= 1, got {k!r}.')
        if temperature <= 0:
            raise ValueError('KNNAccuracy: temperature must be > 0, got '
                             f'{temperature}.')
        self.k = k
        self.temperature = temperature

    def top1(self, train_x, train_y, test_x, test_y, num_classes) -> float:
        """Memory = fit share, queries = scored share."""
        return knn_top1(train_x, train_y, test_x, test_y, num_classes, self.k,
                        self.temperature)


@METRICS.register_module()
class LinearProbeAccuracy(ClsFeatureMetric):
    """Linear-probe top-1 of ``cls_feats`` among the evaluated samples.

    A logistic-regression probe (L-BFGS on standardised features) is fitted
    on the fit share and scored on the rest. Reports ``linear_probe/top1``
    and ``linear_probe/chance`` (see :class:`ClsFeatureMetric`), in
    ``[0, 1]``.

    Args:
        num_classes (int, optional): number of classes; inferred when None.
        weight_decay (float): L2 penalty. Defaults to 1e-4.
        max_iter (int): L-BFGS iterations. Defaults to 100.
        train_fraction (float): share of samples to fit on. Defaults to 0.5.
        seed (int): seed of the split. Defaults to 0.
        feature (str): 'cls' or 'mean_patch'. Defaults to 'cls'.
        fit_pattern (str, optional): see :class:`ClsFeatureMetric`.
        collect_device (str): device for gathering results across ranks.
        prefix (str, optional): defaults to 'linear_probe'
            ('linear_probe_mean_patch' for the mean patch feature).
    """

    default_prefix: Optional[str] = 'linear_probe'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 weight_decay: float = 1e-4,
                 max_iter: int = 100,
                 train_fraction: float = 0.5,
                 seed: int = 0,
                 feature: str = 'cls',
                 fit_pattern: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(num_classes, train_fraction, seed, feature,
                         fit_pattern, collect_device, prefix)
        check_probe_args(
            'LinearProbeAccuracy', weight_decay=weight_decay, max_iter=max_iter)
        self.weight_decay = weight_decay
        self.max_iter = max_iter

    def top1(self, train_x, train_y, test_x, test_y, num_classes) -> float:
        """Fit on the fit share, score the scored share."""
        return linear_probe_top1(train_x, train_y, test_x, test_y,
                                 num_classes, self.weight_decay,
                                 self.max_iter)
