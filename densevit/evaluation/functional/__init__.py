"""Pure evaluation functions (torch only), testable without a model."""
from .correspondence import (correspondence_ground_truth, correspondence_hits,
                             correspondence_position_prediction,
                             correspondence_random_hits)
from .dense_probe import masks_to_patch_labels, mean_iou
from .knn import knn_predict, knn_top1
from .linear_probe import (LinearProbeClassifier, fit_linear_probe,
                           linear_probe_top1)
from .split import majority_class, probe_split

__all__ = [
    'correspondence_ground_truth', 'correspondence_hits',
    'correspondence_position_prediction', 'correspondence_random_hits',
    'fit_linear_probe', 'linear_probe_top1', 'LinearProbeClassifier',
    'knn_predict', 'knn_top1', 'majority_class', 'masks_to_patch_labels',
    'mean_iou', 'probe_split'
]
