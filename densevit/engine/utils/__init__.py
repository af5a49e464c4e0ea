"""Helpers shared by DenseViT's engine hooks and loaders."""
from .fsdp_wrap_policy import module_type_wrap_policy
from .init_cfg import pretrained_init_cfgs, without_pretrained_init_cfgs
from .model_utils import require_model_api
from .state_dict_check import (CheckpointMismatchError, StateDictMismatch,
                               check_state_dict, compare_state_dict,
                               log_partial_load, state_dict_of)

__all__ = [
    'CheckpointMismatchError', 'StateDictMismatch', 'check_state_dict',
    'compare_state_dict', 'log_partial_load', 'module_type_wrap_policy',
    'pretrained_init_cfgs', 'require_model_api', 'state_dict_of',
    'without_pretrained_init_cfgs'
]
