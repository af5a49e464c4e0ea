"""Drives the EMA update of the key (momentum) encoder."""
from typing import Optional

from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from .model_driving_hook import ModelDrivingHook


@HOOKS.register_module()
class MomentumUpdateHook(ModelDrivingHook):
    """Call ``model.momentum_update(step)`` after each optimizer step.

    ``step`` is the number of finished iterations (``runner.iter + 1``), the
    step count mmpretrain's ``CosineEMA`` uses for the same online weights.
    The momentum and its schedule belong to the model (``model.momentum``,
    ``model.end_momentum``, see ``KeyEncoderEMA``); this hook only says when.
    With gradient accumulation (``optim_wrapper.accumulative_counts > 1``) it
    skips the iterations on which the optimizer did not step, because an EMA
    towards unchanged online weights would only shorten the averaging
    horizon.

    In ``before_train`` it adds its name to ``model.driving_hooks``, which
    the model checks at its first training step. Priority ``ABOVE_NORMAL``:
    before :class:`CheckpointHook` saves this iteration, so checkpoints hold
    the updated key encoder.
    """

    priority = 'ABOVE_NORMAL'
    required_methods = ('momentum_update', )

    def __init__(self, **kwargs) -> None:
        if kwargs:
            raise TypeError(
                f'MomentumUpdateHook takes no arguments, got {sorted(kwargs)}.'
                ' Fix: set the schedule on the model, e.g. model=dict('
                'momentum=0.001, end_momentum=0.0) for a cosine to 0 (both '
                "in mmengine's convention: the share of the online weights "
                'taken per update).')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """EMA-update the key encoder if the optimizer stepped."""
        should_update = getattr(runner.optim_wrapper, 'should_update', None)
        if should_update is not None and not should_update():
            return
        get_ori_model(runner.model).momentum_update(runner.iter + 1)
