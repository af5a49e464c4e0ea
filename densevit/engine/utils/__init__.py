"""Helpers shared by DenseViT's engine hooks and loaders."""
from .model_utils import require_model_api
from .state_dict_check import (CheckpointMismatchError, StateDictMismatch,
                               check_state_dict, compare_state_dict,
                               state_dict_of)

__all__ = [
    'CheckpointMismatchError', 'StateDictMismatch', 'check_state_dict',
    'compare_state_dict', 'require_model_api', 'state_dict_of'
]
