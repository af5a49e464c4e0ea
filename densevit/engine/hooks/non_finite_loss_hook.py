"""Stop training on a NaN or infinite loss or optimizer update."""
import functools
import math
import os.path as osp
from numbers import Number
from typing import Optional

import torch
from mmengine.hooks import Hook, RuntimeInfoHook
from mmengine.optim import OptimWrapperDict
from mmengine.runner import get_priority

from densevit.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``RuntimeError`` when training diverges: a loss term is NaN or
    infinite, or the optimizer's update overflows.

    MMEngine keeps training on a NaN loss, which turns the weights into NaN
    and then overwrites good checkpoints with them. This hook runs in
    ``after_train_iter`` with priority ``HIGH``: before the queue and momentum
    updates and before :class:`CheckpointHook` (``VERY_LOW``) can save the
    broken state.

    **Which checkpoint to resume.** A loss is computed from the weights of
    the step before, so the checkpoint written right after that step (it
    holds those weights) is already diverged when the loss shows it: e.g. a
    step that blows the weights up to 1e28 with a finite loss, then a
    non-finite loss at the next iteration. The hook therefore remembers the
    newest checkpoint written before the last finite check (its weights gave
    a finite loss) and the error names it as the one to continue from; a
    newer one is named as diverged, and without an older one the error says
    to start again. It gives the commands: a resume with gradient clipping,
    or ``load_from`` with a lower learning rate (a resume restores the
    checkpoint's learning rate and schedule with the optimizer state).

    **Optimizer overflow.** A huge update (e.g. ``lr=1e40``) makes torch's
    optimizers raise ``RuntimeError: value cannot be converted to type float
    without overflow`` inside ``train_step``, where no hook runs, with the
    weights already half-updated. The hook wraps the optim wrapper's
    ``step`` for the run (``before_train`` to ``after_train``) and turns
    that error into its own, with the same advice.

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
        # Newest checkpoint written before the last finite check.
        self._checked_ckpt: Optional[str] = None
        self._wrapped_steps: list = []  # (optim wrapper, its own `step`)

    def before_train(self, runner) -> None:
        """Find out whether losses reach the message hub before this hook;
        catch overflowing optimizer updates."""
        own = get_priority(self.priority)
        self._host_values = any(
            isinstance(hook, RuntimeInfoHook)
            and get_priority(hook.priority) < own for hook in runner.hooks)
        self._checked_ckpt = None
        self._wrapped_steps = []
        for wrapper in self._optim_wrappers(runner):
            # The parameter schedulers have replaced `step` by a counting
            # one already; it is put back after training.
            self._wrapped_steps.append((wrapper, vars(wrapper).get('step')))
            wrapper.step = self._checked_step(runner, wrapper.step)

    def after_train(self, runner) -> None:
        """Give the optim wrappers their ``step`` back."""
        for wrapper, step in self._wrapped_steps:
            if step is None:
                del wrapper.step
            else:
                wrapper.step = step
        self._wrapped_steps = []

    @staticmethod
    def _optim_wrappers(runner) -> list:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return list(wrapper.values())
        return [wrapper] if hasattr(wrapper, 'step') else []

    def _checked_step(self, runner, step):

        # wraps: keeps the marker mmengine's schedulers check
        # (`_with_counter`), so they do not warn that `step` was replaced.
        @functools.wraps(step)
        def checked_step(*args, **kwargs):
            try:
                return step(*args, **kwargs)
            except RuntimeError as error:
                if 'without overflow' not in str(error):
                    raise
                raise self._diverged(
                    runner, 'Non-finite optimizer update at iteration '
                    f'{runner.iter + 1} (epoch {runner.epoch + 1}): {error} '
                    '(the update is too large for float32)') from error

        return checked_step

    def _diverged(self, runner, cause: str) -> RuntimeError:
        """The error every divergence ends with: ``cause``, then from which
        checkpoint to continue, and how."""
        newest = runner.message_hub.get_info('last_ckpt')
        checked = self._checked_ckpt
        advice = [f'{cause}.', 'Training was stopped before this state was '
                  'checkpointed.']
        if newest is not None and newest != checked:
            advice.append(f'The newest checkpoint, {newest}, was written '
                          'after the last finite loss: its weights may '
                          'already be diverged.')
        if checked is not None and ('://' in checked or osp.exists(checked)):
            # Resuming restores the optimizer's state, learning rate and
            # schedule included, from the checkpoint: a lower configured lr
            # takes effect only with load_from (a new optimizer state).
            advice.append(
                f'Continue from {checked}, the newest checkpoint from before '
                'the divergence: resume it with gradient clipping (--resume '
                f'{checked} --cfg-options optim_wrapper.clip_grad.max_norm='
                '...), or start a new schedule from its weights with a lower '
                f'learning rate (--cfg-options load_from={checked} '
                "optim_wrapper.optimizer.lr=...; a resume keeps the "
                "checkpoint's learning rate).")
        else:
            if checked is None:
                advice.append('No checkpoint was written before the '
                              'divergence:')
            else:
                advice.append(f'The checkpoint from before, {checked}, was '
                              'deleted (max_keep_ckpts):')
            advice.append(
                'train again from the start with a lower learning rate '
                '(--cfg-options optim_wrapper.optimizer.lr=...) or gradient '
                'clipping (optim_wrapper.clip_grad.max_norm=...).')
        advice.append('With AMP, fp32 may avoid the overflow.')
        return RuntimeError(' '.join(advice))

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
            # CheckpointHook (priority VERY_LOW) has not saved this
            # iteration yet: the last checkpoint holds the weights that
            # gave this finite loss.
            self._checked_ckpt = runner.message_hub.get_info('last_ckpt')
            return
        # Name the individual terms before their sum ('loss').
        bad.sort(key=lambda item: item[0] == 'loss')
        terms = ', '.join(f'{name}={value}' for name, value in bad)
        raise self._diverged(
            runner, f'Non-finite loss at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}): {terms}')
