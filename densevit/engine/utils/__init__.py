"""Helpers shared by DenseViT's engine hooks."""
from .atomic_local_backend import (ATOMIC_LOCAL_BACKEND, AtomicLocalBackend,
                                   atomic_write_bytes)
from .model_utils import require_model_api, unwrap_model
from .rng_state import get_rng_state, set_rng_state
from .weights_only import TYPE_KEY, from_weights_only, to_weights_only

__all__ = [
    'ATOMIC_LOCAL_BACKEND', 'AtomicLocalBackend', 'atomic_write_bytes',
    'require_model_api', 'unwrap_model', 'get_rng_state', 'set_rng_state',
    'TYPE_KEY', 'from_weights_only', 'to_weights_only'
]
