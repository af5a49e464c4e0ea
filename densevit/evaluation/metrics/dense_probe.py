"""Dense linear-probe segmentation metric on frozen patch features."""
from typing import Optional

from densevit.registry import METRICS
from ..functional import fit_linear_probe
from .patch_segmentation_metric import PatchSegmentationMetric
from .utils import check_probe_args


@METRICS.register_module()
class DenseProbe(PatchSegmentationMetric):
    """mIoU of a per-patch linear classifier on the evaluated samples.

    Collects ``patch_feats`` ``(C, H, W)`` and ``gt_mask`` of every sample,
    fits the probe (:func:`~densevit.evaluation.functional.fit_linear_probe`)
    on the patches of a deterministic ``train_fraction`` of them and scores
    the rest (see :class:`PatchSegmentationMetric`). With the default
    prefix the metrics are ``dense_probe/mIoU``, ``dense_probe/pixel_acc``
    and their chance levels ``dense_probe/mIoU_chance`` and
    ``dense_probe/pixel_acc_chance``.

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
        super().__init__(
            num_classes,
            train_fraction,
            seed,
            ignore_index,
            collect_device=collect_device,
            prefix=prefix)
        check_probe_args(
            'DenseProbe', weight_decay=weight_decay, max_iter=max_iter)
        self.weight_decay = weight_decay
        self.max_iter = max_iter

    def predict(self, fit_x, fit_y, score_x):
        """Fit the linear probe on the fit patches; classify the scored."""
        classifier = fit_linear_probe(fit_x, fit_y, self.num_classes,
                                      self.weight_decay, self.max_iter)
        return classifier.predict(score_x)
