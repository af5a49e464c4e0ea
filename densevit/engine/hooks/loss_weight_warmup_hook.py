"""Warm-up of the dense loss weight lambda."""
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from ..utils import require_model_api


@HOOKS.register_module()
class LossWeightWarmupHook(Hook):
    """Set ``model.loss_lambda`` to 0 for the first ``warmup_iters``
    iterations, then to ``model.base_loss_lambda``.

    Runs in ``before_train_iter``. Early in training the backbone features
    that define the dense correspondences are noise, so matching on them
    teaches the dense head wrong positives; DenseCL therefore trains on the
    global loss alone at first. The value depends only on ``runner.iter``, so
    it is right after a resume too. Logs each time the value changes.

    Args:
        warmup_iters (int): Number of iterations with ``loss_lambda = 0``.
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
        """Check the model has ``loss_lambda`` and ``base_loss_lambda``."""
        require_model_api(
            get_ori_model(runner.model),
            'LossWeightWarmupHook',
            attributes=('loss_lambda', 'base_loss_lambda'))

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Set lambda for the iteration about to run."""
        model = get_ori_model(runner.model)
        value = 0.0 if runner.iter < self.warmup_iters else float(
            model.base_loss_lambda)
        model.loss_lambda = value
        if value != self._last_value:
            phase = ('dense loss off during warm-up'
                     if runner.iter < self.warmup_iters else 'warm-up done')
            runner.logger.info(
                f'LossWeightWarmupHook: loss_lambda = {value} from iteration '
                f'{runner.iter + 1} ({phase}; warmup_iters='
                f'{self.warmup_iters}).')
            self._last_value = value
