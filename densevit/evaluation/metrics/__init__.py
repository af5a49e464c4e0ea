"""Metrics on the DataSamples DenseViT.predict returns."""
from .correspondence_accuracy import CorrespondenceAccuracy
from .dense_probe import DenseProbe
from .knn_accuracy import ClsFeatureMetric, KNNAccuracy, LinearProbeAccuracy

__all__ = [
    'ClsFeatureMetric', 'CorrespondenceAccuracy', 'DenseProbe', 'KNNAccuracy',
    'LinearProbeAccuracy'
]
