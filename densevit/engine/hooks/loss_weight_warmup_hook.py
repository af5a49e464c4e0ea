"""Warm-ups of the dense loss: its weight lambda, and its positives."""
from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from .model_driving_hook import ModelDrivingHook


@HOOKS.register_module()
class LossWeightWarmupHook(ModelDrivingHook):
    """Apply the model's warm-ups: the dense loss off for its
    ``dense_warmup_iters``, geometric positives for its
    ``geometric_warmup_iters``.

    Sets ``model.dense_weight_scale`` (the factor on the model's
    ``loss_lambda``) to 0 before each dense warm-up iteration and to 1
    after, so the loss is ``loss_global`` alone during the warm-up and
    ``(1-λ)·global + λ·dense`` after; and ``model.dense_loss.geometric_only``
    to True before each geometric warm-up iteration and to False after.
    λ and the warm-up lengths are the model's config values. Both depend
    only on ``runner.iter``, so they are right after a resume too. Logs each
    change; ``after_train`` restores 1 and False.
    """

    priority = 'NORMAL'
    required_attributes = ('dense_weight_scale', 'dense_warmup_iters',
                           'geometric_warmup_iters', 'dense_loss')

    def __init__(self, **kwargs) -> None:
        if kwargs:
            raise ValueError(
                f'LossWeightWarmupHook takes no arguments, got '
                f'{sorted(kwargs)}. Fix: set the warm-up lengths on the '
                'model, model=dict(dense_warmup_iters=..., '
                'geometric_warmup_iters=...).')
        self._last_value = None
        self._last_geometric = None

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Set the scale and the positives for the iteration about to run."""
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
        geometric = runner.iter < model.geometric_warmup_iters
        model.dense_loss.geometric_only = geometric
        if geometric != self._last_geometric and (
                geometric or self._last_geometric is not None):
            phase = ('positives from the crop geometry alone' if geometric
                     else "the dense loss's own positives")
            runner.logger.info(
                f'LossWeightWarmupHook: {phase} from iteration '
                f'{runner.iter + 1} (geometric_warmup_iters='
                f'{model.geometric_warmup_iters}).')
        self._last_geometric = geometric

    def after_train(self, runner) -> None:
        """Leave the model with its full λ and its own positives."""
        super().after_train(runner)
        model = get_ori_model(runner.model)
        model.dense_weight_scale = 1.0
        model.dense_loss.geometric_only = False
        self._last_value = None
        self._last_geometric = None
