"""Metrics on the DataSamples DenseViT.predict returns."""
from .correspondence_accuracy import CorrespondenceAccuracy
from .dense_probe import DenseProbe
from .in_context_segmentation import InContextSegmentation
from .knn_accuracy import ClsFeatureMetric, KNNAccuracy, LinearProbeAccuracy
from .patch_segmentation_metric import PatchSegmentationMetric

__all__ = [
    'ClsFeatureMetric', 'CorrespondenceAccuracy', 'DenseProbe',
    'InContextSegmentation', 'KNNAccuracy', 'LinearProbeAccuracy',
    'PatchSegmentationMetric'
]
