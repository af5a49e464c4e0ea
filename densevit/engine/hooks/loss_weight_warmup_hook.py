"""Warm-up of the dense loss weight lambda."""
from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from .model_driving_hook import ModelDrivingHook


@HOOKS.register_module()
class LossWeightWarmupHook(ModelDrivingHook):
    """Switch the dense loss off for the model's ``dense_warmup_iters``.

    Sets ``model.dense_weight_scale`` (the factor on the model's
    ``loss_lambda``) to 0 before each warm-up iteration and to 1 after, so
    the loss is ``loss_global`` alone during the warm-up and
    ``(1-λ)·global + λ·dense`` after; λ and the warm-up length are the
    model's config values. The value depends only on ``runner.iter``, so it
    is right after a resume too. Logs each time it changes; ``after_train``
    restores 1.
    """

    priority = 'NORMAL'
    required_attributes = ('dense_weight_scale', 'dense_warmup_iters')

    def __init__(self, **kwargs) -> None:
        if kwargs:
            raise ValueError(
                f'LossWeightWarmupHook takes no arguments, got '
                f'{sorted(kwargs)}. Fix: set the warm-up length on the model, '
                'model=dict(dense_warmup_iters=...).')
        self._last_value = None

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Set the scale for the iteration about to run."""
        model = get_ori_model(runner.model)
        warming_up = runner.iter < model.dense_warmup_iters
        value = 0.0 if warming_up else 1.0
        model.dense_weight_scale = value
        if value != self._last_value:
            phase = ('dense loss off during warm-up'
                     if warming_up else 'warm-up done')
            runner.logger.info(
                f'LossWeightWarmupHook: dense_weight_scale = {value} from '
                f'iteration {runner.iter + 1} ({phase}; dense_warmup_iters='
                f'{model.dense_warmup_iters}).')
            self._last_value = value

    def after_train(self, runner) -> None:
        """Leave the model with its full λ."""
        super().after_train(runner)
        get_ori_model(runner.model).dense_weight_scale = 1.0
        self._last_value = None
