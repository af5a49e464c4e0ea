"""Patch-correspondence accuracy against the crop geometry of two views."""
import warnings
from typing import List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from densevit.registry import METRICS
from ..functional import (correspondence_ground_truth, correspondence_hits,
                          correspondence_position_prediction,
                          correspondence_random_hits)
from .utils import get_field

_SOURCES = ('backbone', 'dense')


@METRICS.register_module()
class CorrespondenceAccuracy(BaseMetric):
    """Share of view-1 patches matched to the right view-2 patch.

    The truth comes from the two crop boxes and flips (see
    :func:`densevit.evaluation.functional.correspondence_ground_truth`);
    the predictions are ``pred_corr_backbone`` / ``pred_corr_dense`` that
    ``DenseViT.predict`` returns for two-view inputs. Patches whose centre
    falls outside view 2 are not scored. Accuracy is pooled over all valid
    patches of all samples, in ``[0, 1]``, as ``correspondence/acc_backbone``
    and ``correspondence/acc_dense``. On the same view pairs it reports two
    references that use no features:

    - ``correspondence/acc_position_baseline``: every patch matched to the
      view-2 patch at its own ``(row, col)``;
    - ``correspondence/acc_random_baseline``: the expected accuracy of a
      uniformly random view-2 patch (exact, see
      :func:`~densevit.evaluation.functional.correspondence_random_hits`).

    Args:
        tolerance (int): largest Chebyshev distance (in patches) counted as
            correct. Defaults to 1.
        collect_device (str): device for gathering results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            'correspondence'.
    """

    default_prefix: Optional[str] = 'correspondence'

    def __init__(self,
                 tolerance: int = 1,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(tolerance, int) or tolerance < 0:
            raise ValueError('CorrespondenceAccuracy: tolerance must be an '
                             f'int >= 0 (patches), but got {tolerance!r}.')
        self.tolerance = tolerance

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Score each sample's correspondences; keep only the counts."""
        for sample in data_samples:
            boxes = get_field(sample, 'view_boxes')
            flips = get_field(sample, 'view_flips')
            if boxes is None or flips is None:
                raise ValueError(
                    'CorrespondenceAccuracy needs the crop boxes of both '
                    'views, but the data sample has no view_boxes/view_flips '
                    'metainfo. Use a two-view test pipeline with TwoViewCrop '
                    'followed by PackDenseInputs, which record them.')
            preds = {
                src: get_field(sample, f'pred_corr_{src}')
                for src in _SOURCES
            }
            if all(p is None for p in preds.values()):
                raise ValueError(
                    'CorrespondenceAccuracy needs pred_corr_backbone / '
                    'pred_corr_dense, which DenseViT.predict returns only '
                    'when the inputs hold two views. Use a two-view test '
                    'pipeline (TwoViewCrop + PackDenseInputs).')
            grid = get_field(sample, 'patch_grid')
            if grid is None:
                feats = get_field(sample, 'patch_feats')
                if feats is None:
                    raise ValueError(
                        'CorrespondenceAccuracy needs the patch grid: the '
                        'data sample has neither patch_grid metainfo nor '
                        'patch_feats.')
                grid = tuple(feats.shape[-2:])
            grid = tuple(int(g) for g in grid)
            gt, valid, _ = correspondence_ground_truth(boxes, flips, grid)
            preds['position_baseline'] = correspondence_position_prediction(
                grid)
            result = {
                src: correspondence_hits(pred, gt, valid, grid,
                                         self.tolerance)
                for src, pred in preds.items() if pred is not None
            }
            result['random_baseline'] = correspondence_random_hits(
                gt, valid, grid, self.tolerance)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        """Pool the per-sample counts into ``acc_<source>`` per source."""
        metrics = {}
        for src in (*_SOURCES, 'position_baseline', 'random_baseline'):
            counts = [r[src] for r in results if src in r]
            if not counts:
                continue
            correct = sum(c for c, _ in counts)
            total = sum(t for _, t in counts)
            if total == 0:
                warnings.warn(
                    'CorrespondenceAccuracy: no view-1 patch centre falls '
                    'inside view 2 in any sample, so there is nothing to '
                    'score; the two crops never overlap.')
                metrics[f'acc_{src}'] = float('nan')
            else:
                metrics[f'acc_{src}'] = correct / total
        return metrics
