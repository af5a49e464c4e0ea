"""Helpers shared by DenseViT's engine hooks."""
from .model_utils import require_model_api

__all__ = ['require_model_api']
