"""Enqueue each step's contrastive keys into the model's memory queues."""
import logging
from typing import Dict, Optional

import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.logging import print_log
from mmpretrain.utils import get_ori_model

from densevit.models.utils import MemoryQueue
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
    the model checks at its first training step, and, in a distributed run,
    broadcasts every :class:`MemoryQueue` of the model from rank 0: DDP does
    not synchronise buffers (``broadcast_buffers=False``), so ranks seeded
    differently (``randomness.diff_rank_seed``) would otherwise start from
    different random negatives.

    After the first iteration it logs (INFO) when a queue holds at least one
    epoch of keys: every image then meets keys of its own earlier views
    among its negatives. Measured harmless at the demo's settings on a
    320-image folder (docs/evaluation.md, "Recipe by dataset size"), so it
    is a note, not a warning; it names the field and a length of half an
    epoch to try if the losses rise. The count of keys a step adds is read
    from the queue pointer, so it covers any loss, enqueue mode and world
    size.
    """

    priority = 'ABOVE_NORMAL'
    required_methods = ('update_queues', )

    def before_train(self, runner) -> None:
        """Mark the model, align the ranks' queues, note the pointers."""
        super().before_train(runner)
        model = get_ori_model(runner.model)
        self._queues: Dict[str, MemoryQueue] = {
            name: module
            for name, module in model.named_modules()
            if isinstance(module, MemoryQueue)
        }
        if get_world_size() > 1:
            for queue in self._queues.values():
                broadcast(queue.keys, src=0)
                broadcast(queue.ptr, src=0)
        self._first_pointers: Optional[Dict[str, torch.Tensor]] = {
            name: queue.ptr.clone()
            for name, queue in self._queues.items()
        }

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Enqueue the keys of the iteration that just finished."""
        get_ori_model(runner.model).update_queues()
        if getattr(self, '_first_pointers', None) is not None:
            self._note_a_queue_outlasting_an_epoch(runner)
            self._first_pointers = None

    def _note_a_queue_outlasting_an_epoch(self, runner) -> None:
        try:
            steps_per_epoch = len(runner.train_dataloader)
        except TypeError:  # an iterable dataset has no length
            return
        for name, queue in self._queues.items():
            added = int((queue.ptr - self._first_pointers[name]) %
                        queue.length)
            keys_per_epoch = added * steps_per_epoch
            if added == 0 or queue.length < keys_per_epoch:
                continue
            field = f'model.{name}_len'
            print_log(
                f'{field}={queue.length} holds '
                f'{queue.length / keys_per_epoch:.1f} epochs of keys '
                f'({added} per step, {steps_per_epoch} steps per epoch): '
                'every image meets keys of its own earlier views among its '
                'negatives. Harmless at the demo\'s settings (see "Recipe '
                'by dataset size" in docs/evaluation.md); if the losses rise '
                f'through training, try {field}='
                f'{max(keys_per_epoch // 2, 1)} (half an epoch).',
                logger='current',
                level=logging.INFO)
