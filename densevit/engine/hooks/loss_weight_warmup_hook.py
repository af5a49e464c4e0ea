"""Warm-up of the dense loss weight lambda."""
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from ..utils import require_model_api


@HOOKS.register_module()
class LossWeightWarmupHook(Hook):
    """Switch the dense loss off for the first ``warmup_iters`` iterations.

    Sets ``model.dense_weight_scale`` (the factor on the model's
    ``loss_lambda``) to 0 before each warm-up iteration and to 1 after, so
    the loss is ``loss_global`` alone during the warm-up and
    ``(1-λ)·global + λ·dense`` after; λ itself stays the model's config
    value. Early in training the backbone features that define the dense
    correspondences are noise, so matching on them teaches the dense head
    wrong positives; DenseCL therefore trains on the global loss alone at
    first. The value depends only on ``runner.iter``, so it is right after a
    resume too. Logs each time it changes; ``after_train`` restores 1.

    Args:
        warmup_iters (int): Number of iterations without the dense loss.
            0 disables the warm-up. Defaults to 1000.
    """

    priority = 'NORMAL'

    def __init__(self, warmup_iters: int = 1000) -> None:
        if (isinstance(warmup_iters, bool)
                or not isinstance(warmup_iters, int) or warmup_iters < 0):
            raise ValueError(
                'LossWeightWarmupHook: warmup_iters must be an integer >= 0 '
                f'(0 disables the warm-up), but got {warmup_iters!r}.')
        self.warmup_iters = warmup_iters
        self._last_value = None

    def before_train(self, runner) -> None:
        """Check the model has ``dense_weight_scale``."""
        require_model_api(
            get_ori_model(runner.model),
            'LossWeightWarmupHook',
            attributes=('dense_weight_scale', ))

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Set the scale for the iteration about to run."""
        warming_up = runner.iter < self.warmup_iters
        value = 0.0 if warming_up else 1.0
        get_ori_model(runner.model).dense_weight_scale = value
        if value != self._last_value:
            phase = ('dense loss off during warm-up'
                     if warming_up else 'warm-up done')
            runner.logger.info(
                f'LossWeightWarmupHook: dense_weight_scale = {value} from '
                f'iteration {runner.iter + 1} ({phase}; warmup_iters='
                f'{self.warmup_iters}).')
            self._last_value = value

    def after_train(self, runner) -> None:
        """Leave the model with its full λ."""
        get_ori_model(runner.model).dense_weight_scale = 1.0
        self._last_value = None
