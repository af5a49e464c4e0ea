"""Pure evaluation functions (torch only), testable without a model."""
from .correspondence import (correspondence_accuracy,
                             correspondence_ground_truth, correspondence_hits)
from .dense_probe import dense_probe_miou, masks_to_patch_labels, mean_iou
from .knn import knn_predict, knn_top1
from .linear_probe import (LinearProbeClassifier, fit_linear_probe,
                           linear_probe_top1)
from .split import probe_split

__all__ = [
    'correspondence_ground_truth', 'correspondence_hits',
    'correspondence_accuracy', 'fit_linear_probe', 'linear_probe_top1',
    'LinearProbeClassifier', 'knn_predict', 'knn_top1', 'dense_probe_miou',
    'masks_to_patch_labels', 'mean_iou', 'probe_split'
]
