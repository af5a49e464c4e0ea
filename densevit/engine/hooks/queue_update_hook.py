"""Enqueue each step's contrastive keys into the model's memory queues."""
from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from ..utils import require_model_api


@HOOKS.register_module()
class QueueUpdateHook(Hook):
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

    def before_train(self, runner) -> None:
        """Check the model API and mark the model as driven by this hook."""
        model = get_ori_model(runner.model)
        require_model_api(
            model, 'QueueUpdateHook', methods=('update_queues', ),
            attributes=('driving_hooks', ))
        model.driving_hooks.add('QueueUpdateHook')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Enqueue the keys of the iteration that just finished."""
        get_ori_model(runner.model).update_queues()

    def after_train(self, runner) -> None:
        """The model is no longer driven by this hook."""
        get_ori_model(runner.model).driving_hooks.discard('QueueUpdateHook')
