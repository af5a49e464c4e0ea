"""In-context (nearest-neighbour) segmentation: the Hummingbird protocol."""
import numbers
from typing import Optional

from densevit.registry import METRICS
from ..functional import knn_predict, seeded_subsample
from .patch_segmentation_metric import PatchSegmentationMetric


@METRICS.register_module()
class InContextSegmentation(PatchSegmentationMetric):
    """mIoU of labelling each scored patch by its nearest labelled patches.

    The dense nearest-neighbour retrieval evaluation of Balažević et al.,
    "Towards In-context Scene Understanding" (NeurIPS 2023, "Hummingbird"),
    as NeCo and CrIBo report it. The patches of the fit share (see
    :class:`PatchSegmentationMetric`) form a memory bank of features and
    labels; each scored patch takes the ``k`` memory patches of highest
    cosine similarity ``s`` and is labelled by their softmax(``s / T``)-
    weighted vote (:func:`~densevit.evaluation.functional.knn_predict`,
    which searches the memory in blocks, so the similarity matrix is never
    held whole). Nothing is trained: the score depends on the features and
    the fixed protocol only.

    Differences from the paper's evaluation, mostly to share this
    project's dense-probe conventions: memory labels are the patches'
    majority-vote labels (the paper keeps each patch's class proportions,
    which gives the same votes where a patch holds one class), patches whose
    pixels are all ignored stay out of the memory, each fit image enters the
    memory once (the paper adds augmented copies), scoring is on the patch
    grid (the paper upsamples the vote to pixels), and a capped memory is a
    uniform seeded draw of the fit patches (the paper favours patches of
    rare classes).

    With the default prefix the metrics are ``in_context/mIoU``,
    ``in_context/pixel_acc`` and their chance levels
    ``in_context/mIoU_chance`` and ``in_context/pixel_acc_chance``
    (``in_context_dense/...`` for ``feature='dense'``).

    Args:
        num_classes (int): segmentation classes, background included.
        k (int): neighbours per scored patch. Defaults to 30 (the
            protocol's).
        temperature (float): softmax temperature T of the vote. Defaults to
            0.02 (the protocol's).
        memory_size (int, optional): most patches in the memory bank; a
            larger fit share is subsampled by a draw seeded with ``seed``.
            Must be >= ``k``. Defaults to None (every fit patch).
        feature (str): ``'patch'`` (backbone ``patch_feats``) or
            ``'dense'`` (projected ``dense_feats``). Defaults to 'patch'.
        train_fraction (float): share of samples whose patches form the
            memory. Defaults to 0.5.
        seed (int): seed of the split and of the memory draw. Defaults to 0.
        fit_pattern (str, optional): the samples whose ``img_path``
            contains it form the memory, the others are scored (instead of
            a seeded split). Defaults to None.
        ignore_index (int): mask label to ignore. Defaults to 255.
        collect_device (str): device for gathering results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            'in_context' ('in_context_dense' for ``feature='dense'``).
    """

    default_prefix: Optional[str] = 'in_context'

    def __init__(self,
                 num_classes: int,
                 k: int = 30,
                 temperature: float = 0.02,
                 memory_size: Optional[int] = None,
                 feature: str = 'patch',
                 train_fraction: float = 0.5,
                 seed: int = 0,
                 fit_pattern: Optional[str] = None,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(num_classes, train_fraction, seed, ignore_index,
                         feature, fit_pattern, collect_device, prefix)
        name = type(self).__name__
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f'{name}: k must be an int >= 1 (neighbours per '
                             f'patch), but got {k!r}.')
        if isinstance(temperature, bool) or not isinstance(
                temperature, numbers.Real) or not 0 < temperature < float(
                    'inf'):
            raise ValueError(f'{name}: temperature must be a number > 0 (the '
                             f'vote softmax temperature), but got '
                             f'{temperature!r}.')
        if memory_size is not None and (isinstance(memory_size, bool)
                                        or not isinstance(memory_size, int)
                                        or memory_size < k):
            raise ValueError(
                f'{name}: memory_size must be None (every fit patch) or an '
                f'int >= k={k} (the most patches in the memory bank), but '
                f'got {memory_size!r}.')
        self.k = k
        self.temperature = float(temperature)
        self.memory_size = memory_size

    def predict(self, fit_x, fit_y, score_x):
        """Memory = the fit patches (capped); vote of the k nearest."""
        if self.memory_size is not None:
            keep = seeded_subsample(len(fit_y), self.memory_size, self.seed)
            fit_x, fit_y = fit_x[keep], fit_y[keep]
        return knn_predict(fit_x, fit_y, score_x, self.num_classes, self.k,
                           self.temperature)
