"""Weighted k-NN top-1 accuracy on frozen CLS features."""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from densevit.registry import METRICS
from ..functional import knn_top1, probe_split
from .utils import get_field, get_label


@METRICS.register_module()
class KNNAccuracy(BaseMetric):
    """k-NN classification of ``cls_feats`` among the evaluated samples.

    Collects ``cls_feats`` and ``gt_label``, uses a deterministic
    ``train_fraction`` of the samples as the k-NN memory and classifies the
    rest by temperature-weighted cosine votes (InstDisc / DINO protocol).
    Reports ``top1`` in ``[0, 1]``, named ``knn/top1`` by the default
    prefix.

    Args:
        num_classes (int, optional): number of classes; inferred as the
            largest label + 1 when None.
        k (int): neighbours. Defaults to 20.
        temperature (float): vote temperature. Defaults to 0.07.
        train_fraction (float): share of samples used as the memory.
            Defaults to 0.5.
        seed (int): seed of the split. Defaults to 0.
        collect_device (str): device for gathering results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            'knn'.
    """

    default_prefix: Optional[str] = 'knn'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 k: int = 20,
                 temperature: float = 0.07,
                 train_fraction: float = 0.5,
                 seed: int = 0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_classes is not None and (not isinstance(num_classes, int)
                                        or num_classes < 2):
            raise ValueError('KNNAccuracy: num_classes must be None or an '
                             f'int >= 2, but got {num_classes!r}.')
        if not isinstance(k, int) or k < 1:
            raise ValueError(f'KNNAccuracy: k must be an int >= 1, got {k!r}.')
        if temperature <= 0:
            raise ValueError('KNNAccuracy: temperature must be > 0, got '
                             f'{temperature}.')
        if not 0 < train_fraction < 1:
            raise ValueError('KNNAccuracy: train_fraction must be in (0, 1), '
                             f'but got {train_fraction}.')
        self.num_classes = num_classes
        self.k = k
        self.temperature = temperature
        self.train_fraction = train_fraction
        self.seed = seed

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep each sample's CLS feature (on CPU) and label."""
        for sample in data_samples:
            feats = get_field(sample, 'cls_feats')
            if feats is None:
                raise ValueError(
                    'KNNAccuracy needs cls_feats in the predictions; use a '
                    'model whose predict returns them (DenseViT).')
            label = get_label(sample)
            if label is None:
                raise ValueError(
                    'KNNAccuracy needs gt_label in every data sample: '
                    'evaluate on a labelled split whose pipeline packs '
                    'gt_label (PackDenseInputs / PackInputs).')
            self.results.append(
                dict(
                    feats=feats.detach().cpu().float().reshape(-1),
                    label=label))

    def compute_metrics(self, results: List[dict]) -> dict:
        """Memory = train share, queries = the rest."""
        train_idx, test_idx = probe_split(
            len(results), self.train_fraction, self.seed)
        feats = torch.stack([r['feats'] for r in results])
        labels = torch.tensor([r['label'] for r in results])
        num_classes = self.num_classes or max(int(labels.max()) + 1, 2)
        top1 = knn_top1(feats[train_idx], labels[train_idx], feats[test_idx],
                        labels[test_idx], num_classes, self.k,
                        self.temperature)
        return {'top1': top1}
