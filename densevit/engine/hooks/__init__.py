"""DenseViT training hooks (registered in ``densevit.registry.HOOKS``)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .linear_probe_hook import LinearProbeHook
from .loss_weight_warmup_hook import LossWeightWarmupHook
from .momentum_update_hook import MomentumUpdateHook
from .non_finite_loss_hook import NonFiniteLossHook
from .queue_update_hook import QueueUpdateHook
from .train_state_hook import TrainStateHook

__all__ = [
    'AtomicCheckpointHook', 'LinearProbeHook', 'LossWeightWarmupHook',
    'MomentumUpdateHook', 'NonFiniteLossHook', 'QueueUpdateHook',
    'TrainStateHook'
]
