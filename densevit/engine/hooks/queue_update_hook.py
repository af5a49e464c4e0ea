"""Enqueue each step's contrastive keys into the model's memory queues."""
from typing import Optional

from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from .model_driving_hook import ModelDrivingHook


@HOOKS.register_module()
class QueueUpdateHook(ModelDrivingHook):
    """Call ``model.update_queues()`` after every training iteration.

    Runs in ``after_train_iter``, i.e. after ``train_step`` has computed the
    loss against the queue and done the optimizer step; enqueueing only then
    keeps a step's own keys out of its negatives (the MoCo order: loss, then
    enqueue). The model all-gathers the keys
    across ranks, so this hook must run on every rank. Priority
    ``ABOVE_NORMAL`` places it before :class:`CheckpointHook` (``VERY_LOW``):
    a checkpoint saved at this iteration holds the updated queues, so a
    resumed run continues with exactly the same negatives.

    In ``before_train`` it adds its name to ``model.driving_hooks``, which
    the model checks at its first training step.
    """

    priority = 'ABOVE_NORMAL'
    required_methods = ('update_queues', )

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Enqueue the keys of the iteration that just finished."""
        get_ori_model(runner.model).update_queues()
