"""DenseViT training hooks (registered in ``densevit.registry.HOOKS``).

``AtomicCheckpointHook`` and ``TrainStateHook`` are workarounds of mmengine
behaviour and live in :mod:`densevit.engine.compat`.
"""
from ..compat import AtomicCheckpointHook, TrainStateHook
from .loss_weight_warmup_hook import LossWeightWarmupHook
from .momentum_update_hook import MomentumUpdateHook
from .non_finite_loss_hook import NonFiniteLossHook
from .probe_hook import ProbeHook
from .queue_update_hook import QueueUpdateHook

__all__ = [
    'AtomicCheckpointHook', 'LossWeightWarmupHook', 'MomentumUpdateHook',
    'NonFiniteLossHook', 'ProbeHook', 'QueueUpdateHook', 'TrainStateHook'
]
