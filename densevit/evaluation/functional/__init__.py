"""Pure evaluation functions (torch only), testable without a model."""
from .correspondence import (correspondence_correct,
                             correspondence_ground_truth, correspondence_hits,
                             correspondence_position_prediction,
                             correspondence_random_hits)
from .dense_probe import (masks_to_patch_labels, mean_iou,
                          segmentation_chance)
from .knn import cosine_topk, knn_predict, knn_top1
from .linear_probe import (LinearProbeClassifier, fit_linear_probe,
                           linear_probe_top1)
from .split import (fit_score_split, majority_class, probe_split,
                    seeded_subsample)

__all__ = [
    'correspondence_correct', 'correspondence_ground_truth',
    'correspondence_hits', 'correspondence_position_prediction',
    'correspondence_random_hits', 'cosine_topk', 'fit_linear_probe',
    'fit_score_split', 'linear_probe_top1', 'LinearProbeClassifier',
    'knn_predict', 'knn_top1', 'majority_class', 'masks_to_patch_labels',
    'mean_iou', 'probe_split', 'seeded_subsample', 'segmentation_chance'
]
