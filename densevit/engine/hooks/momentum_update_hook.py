"""EMA update of the key (momentum) encoder."""
import math
from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS
from ..utils import require_model_api


@HOOKS.register_module()
class MomentumUpdateHook(Hook):
    """Call ``model.momentum_update(m)`` after each optimizer step.

    ``key = m * key + (1 - m) * online``, so ``m`` is the share of the key
    encoder that is kept. Runs in ``after_train_iter``; with gradient
    accumulation (``optim_wrapper.accumulative_counts > 1``) it skips the
    iterations on which the optimizer did not step, because an EMA towards
    unchanged online weights would only shorten the averaging horizon.

    Schedules (``base`` is ``model.base_momentum``, ``it`` the 0-based index
    of the finished iteration, ``T`` the total training iterations):

    - ``'constant'``: ``m = base``.
    - ``'cosine'`` (BYOL): ``m = end - (end - base) * (cos(pi * it / T) + 1)
      / 2``, rising from ``base`` at the first update towards
      ``end_momentum``.

    Priority ``ABOVE_NORMAL``: before :class:`CheckpointHook` saves this
    iteration, so checkpoints hold the updated key encoder.

    Args:
        end_momentum (float): Final momentum of the cosine schedule, in
            [0, 1]; ignored by ``'constant'``. Defaults to 1.0.
        schedule (str): ``'constant'`` or ``'cosine'``. Defaults to
            ``'constant'``.
    """

    priority = 'ABOVE_NORMAL'
    SCHEDULES = ('constant', 'cosine')

    def __init__(self,
                 end_momentum: float = 1.0,
                 schedule: str = 'constant') -> None:
        if schedule not in self.SCHEDULES:
            raise ValueError(
                f'MomentumUpdateHook: schedule must be one of '
                f'{self.SCHEDULES}, but got {schedule!r}.')
        if (isinstance(end_momentum, bool)
                or not isinstance(end_momentum, (int, float))
                or not 0.0 <= end_momentum <= 1.0):
            raise ValueError(
                'MomentumUpdateHook: end_momentum must be a number in '
                f'[0, 1] (1.0 freezes the key encoder at the end), but got '
                f'{end_momentum!r}.')
        self.end_momentum = float(end_momentum)
        self.schedule = schedule

    def before_train(self, runner) -> None:
        """Check the model API and that the schedule fits the model's
        ``base_momentum``."""
        model = get_ori_model(runner.model)
        require_model_api(
            model,
            'MomentumUpdateHook',
            methods=('momentum_update', ),
            attributes=('base_momentum', ))
        base = model.base_momentum
        if not 0.0 <= base <= 1.0:
            raise ValueError(
                f'MomentumUpdateHook: model.base_momentum must be in [0, 1] '
                f'(e.g. 0.99 keeps 99% of the key encoder), but got {base}.')
        if self.schedule == 'cosine' and self.end_momentum < base:
            raise ValueError(
                f'MomentumUpdateHook: the cosine schedule rises from '
                f'model.base_momentum={base} to end_momentum='
                f'{self.end_momentum}; set end_momentum >= {base} (1.0 is '
                'usual) or use schedule="constant".')

    def momentum_at(self, iteration: int, max_iters: int,
                    base_momentum: float) -> float:
        """Momentum for the update after 0-based ``iteration``.

        Args:
            iteration (int): Index of the iteration that just finished.
            max_iters (int): Total training iterations.
            base_momentum (float): The model's configured momentum.
        """
        if self.schedule == 'constant':
            return float(base_momentum)
        cosine = (math.cos(math.pi * iteration / max_iters) + 1) / 2
        return self.end_momentum - (self.end_momentum -
                                    base_momentum) * cosine

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """EMA-update the key encoder if the optimizer stepped."""
        should_update = getattr(runner.optim_wrapper, 'should_update', None)
        if should_update is not None and not should_update():
            return
        model = get_ori_model(runner.model)
        model.momentum_update(
            self.momentum_at(runner.iter, runner.max_iters,
                             model.base_momentum))
