"""DenseViT training hooks (registered in ``densevit.registry.HOOKS``)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .loss_weight_warmup_hook import LossWeightWarmupHook
from .momentum_update_hook import MomentumUpdateHook
from .non_finite_loss_hook import NonFiniteLossHook
from .probe_hook import ProbeHook
from .queue_update_hook import QueueUpdateHook
from .train_state_hook import TrainStateHook

__all__ = [
    'AtomicCheckpointHook', 'LossWeightWarmupHook', 'MomentumUpdateHook',
    'NonFiniteLossHook', 'ProbeHook', 'QueueUpdateHook', 'TrainStateHook'
]
