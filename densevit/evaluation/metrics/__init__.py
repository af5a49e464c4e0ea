"""Metrics on the DataSamples DenseViT.predict returns."""
from .correspondence_accuracy import CorrespondenceAccuracy
from .dense_probe import DenseProbe
from .knn_accuracy import KNNAccuracy

__all__ = ['CorrespondenceAccuracy', 'DenseProbe', 'KNNAccuracy']
