"""Stop training on a NaN or infinite loss."""
import math
from numbers import Number
from typing import Optional

import torch
from mmengine.hooks import Hook, RuntimeInfoHook
from mmengine.runner import get_priority

from densevit.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``RuntimeError`` when a loss term is NaN or infinite.

    MMEngine keeps training on a NaN loss, which turns the weights into NaN
    and then overwrites good checkpoints with them. This hook runs in
    ``after_train_iter`` with priority ``HIGH``: before the queue and momentum
    updates and before :class:`CheckpointHook` (``VERY_LOW``) can save the
    broken state.

    Reading a GPU value on the host waits for the GPU. MMEngine's
    :class:`RuntimeInfoHook` (priority ``VERY_HIGH``, runs earlier) already
    copies every logged loss to the message hub as a Python float each
    iteration, so the check reads those and adds no synchronisation; only if
    that hook is missing or runs later are the output tensors checked with
    ``torch.isfinite`` (one sync per check).

    With several ranks, a rank that raises ends the job through the launcher
    (torchrun stops all workers when one fails); NaN weights spread to every
    rank through the gradient all-reduce anyway.

    Args:
        interval (int): Check every ``interval`` iterations. A loss that is
            non-finite only between checks is missed, but NaN weights make
            every later loss NaN too. Defaults to 1.
    """

    priority = 'HIGH'

    def __init__(self, interval: int = 1) -> None:
        if isinstance(interval, bool) or not isinstance(
                interval, int) or interval < 1:
            raise ValueError(
                'NonFiniteLossHook: interval must be an integer >= 1 '
                f'(check every `interval` iterations), but got {interval!r}.')
        self.interval = interval
        self._host_values = False

    def before_train(self, runner) -> None:
        """Find out whether losses reach the message hub before this hook."""
        own = get_priority(self.priority)
        self._host_values = any(
            isinstance(hook, RuntimeInfoHook)
            and get_priority(hook.priority) < own for hook in runner.hooks)

    def _non_finite_terms(self, runner, outputs: dict) -> list:
        names, tensors = [], []
        values = {}
        for name, value in outputs.items():
            if isinstance(value, Number):
                values[name] = float(value)
            elif self._host_values:
                # Pushed this iteration by RuntimeInfoHook.after_train_iter.
                values[name] = runner.message_hub.get_scalar(
                    f'train/{name}').current()
            elif isinstance(value, torch.Tensor):
                names.append(name)
                tensors.append(value.detach().float().reshape(-1))
        bad = [(n, v) for n, v in values.items() if not math.isfinite(v)]
        if tensors:
            finite = torch.stack([t.isfinite().all() for t in tensors])
            if not bool(finite.all()):  # the one host sync
                bad += [(n, t.sum().item())
                        for n, t, ok in zip(names, tensors, finite.tolist())
                        if not ok]
        return bad

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Check this iteration's losses every ``interval`` iterations."""
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        bad = self._non_finite_terms(runner, outputs)
        if not bad:
            return
        # Name the individual terms before their sum ('loss').
        bad.sort(key=lambda item: item[0] == 'loss')
        terms = ', '.join(f'{name}={value}' for name, value in bad)
        raise RuntimeError(
            f'Non-finite loss at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}): {terms}. Training was stopped '
            'before this state was checkpointed. Resume from the last '
            'checkpoint with a lower learning rate, gradient clipping '
            '(optim_wrapper=dict(clip_grad=dict(max_norm=...))) or fp32 '
            'instead of AMP.')
