"""The key (momentum) encoder: an EMA of the online encoder."""
from math import cos, pi
from typing import Optional

import torch
from mmengine.logging import MessageHub
from mmengine.model import ExponentialMovingAverage
from torch import nn


class KeyEncoderEMA(ExponentialMovingAverage):
    """mmengine's ``ExponentialMovingAverage`` with one fused update and
    mmpretrain's ``CosineEMA`` schedule, driven by the caller's step.

    mmengine's convention: ``momentum`` is the share of the NEW (online)
    weights taken per update,
    ``key = (1 - momentum) * key + momentum * online``; 0.001 keeps 99.9%.

    Schedule, with ``k`` the ``step`` passed to :meth:`update_parameters`
    and ``K`` the MessageHub's ``max_iters`` (set by mmengine's
    ``RuntimeInfoHook``):

    - ``end_momentum=None``: ``m = momentum`` at every update.
    - ``end_momentum`` given: mmpretrain's ``CosineEMA``,
      ``m = end - (end - momentum) * (cos(pi * k / K) + 1) / 2``, falling
      from ``momentum`` towards ``end_momentum``.

    ``CosineEMA`` is called at the start of iteration ``k`` (its ``steps``
    buffer is ``k``) and averages towards the weights of ``k`` optimizer
    steps; passing ``step = k`` after the ``k``-th step gives the same
    momentum for the same online weights. The step comes from the caller
    because reading the ``steps`` buffer (as mmengine's update does) would
    be a device-to-host sync; ``steps`` still counts the updates, so
    checkpoints carry it.

    The wrapped copy starts equal to ``model``; unlike mmengine's first
    update, :meth:`update_parameters` never copies instead of averaging.

    Args:
        model (nn.Module): The online encoder; deep-copied, without
            gradients, as the key encoder (``self.module``).
        momentum (float): Share of the online weights per update (at step 0
            of the cosine), in (0, 1).
        end_momentum (float, optional): Momentum at the last iteration of a
            cosine schedule, in [0, momentum]; 0 freezes the key encoder at
            the end. Defaults to None (constant momentum).
    """

    def __init__(self,
                 model: nn.Module,
                 momentum: float,
                 end_momentum: Optional[float] = None) -> None:
        convention = ('it is the share of the online (new) weights taken '
                      'per update, mmengine\'s EMA convention: 0.001 keeps '
                      '99.9% of the key encoder')
        if (isinstance(momentum, bool) or not isinstance(momentum,
                                                         (int, float))
                or not 0.0 < momentum < 1.0):
            raise ValueError(
                f'`momentum` must be a number in (0, 1), got {momentum!r}: '
                f'{convention}. Fix: e.g. momentum=0.001 (MoCo); an old '
                'config value m written as the share kept becomes 1 - m.')
        if end_momentum is not None and (
                isinstance(end_momentum, bool)
                or not isinstance(end_momentum, (int, float))
                or not 0.0 <= end_momentum <= momentum):
            raise ValueError(
                f'`end_momentum` must be None (constant momentum) or a '
                f'number in [0, momentum={momentum}], got {end_momentum!r}: '
                f'the cosine schedule lowers the momentum to it; '
                f'{convention}. Fix: end_momentum=0.0 (BYOL).')
        super().__init__(model, momentum=float(momentum))
        self.end_momentum = (None if end_momentum is None else
                             float(end_momentum))

    def momentum_at(self, step: Optional[int] = None) -> float:
        """The momentum of the update after ``step`` optimizer steps.

        Args:
            step (int, optional): Needed by the cosine schedule; ignored by
                a constant momentum.
        """
        if self.end_momentum is None:
            return self.momentum
        if step is None:
            raise TypeError(
                'KeyEncoderEMA has a cosine schedule (end_momentum='
                f'{self.end_momentum}) and needs the step: call '
                'update_parameters(model, step) with the number of finished '
                'iterations (MomentumUpdateHook does).')
        max_iters = MessageHub.get_current_instance().get_info('max_iters')
        if not max_iters:
            raise RuntimeError(
                'The cosine momentum schedule needs the run length, the '
                "MessageHub info 'max_iters' (mmengine's RuntimeInfoHook "
                'sets it before training). Fix: train with a Runner, or '
                'set end_momentum=None for a constant momentum.')
        cosine = (cos(pi * step / float(max_iters)) + 1) / 2
        return self.end_momentum - (self.end_momentum -
                                    self.momentum) * cosine

    @torch.no_grad()
    def update_parameters(self,
                          model: nn.Module,
                          step: Optional[int] = None) -> None:
        """Average every parameter towards ``model``'s, copy the buffers.

        One fused ``torch._foreach_lerp_`` over all parameters (not one
        kernel per tensor), and no tensor is read back to the host.

        Under FSDP (``use_orig_params=True``) both encoders' parameters are
        this rank's shards, and the update averages them element by element:
        correct when the key encoder is wrapped into FSDP units exactly as
        the online encoder, so that each pair of shards covers the same
        elements (see ``densevit.engine.utils.module_type_wrap_policy``).
        Equal shard shapes on every rank imply that, and they are checked
        at each update (shapes only, no tensor is read).

        Args:
            model (nn.Module): The online encoder, with the structure of
                the one given at construction.
            step (int, optional): Number of finished training iterations
                (see the class docstring).

        Raises:
            ValueError: a key parameter and its online parameter differ in
                shape on this rank (key encoder sharded differently).
        """
        key_params = list(self.module.parameters())
        online_params = list(model.parameters())
        if len(key_params) != len(online_params) or any(
                key.shape != online.shape
                for key, online in zip(key_params, online_params)):
            raise ValueError(self._misalignment(model))
        torch._foreach_lerp_(key_params, online_params,
                             self.momentum_at(step))
        # A ViT has no buffers, but a neck may (e.g. BatchNorm statistics):
        # kept equal to the online ones, as mmengine does by default.
        for key, online in zip(self.module.buffers(), model.buffers()):
            key.copy_(online)
        self.steps += 1

    def _misalignment(self, model: nn.Module) -> str:
        """The error message for parameters of the two encoders whose
        shapes differ on this rank."""
        key_params = dict(self.module.named_parameters())
        online_params = dict(model.named_parameters())
        pairs = list(zip(key_params.items(), online_params.items()))
        detail = next(
            (f'{key_name} has shape {tuple(key.shape)} on this rank, its '
             f'online counterpart {online_name} {tuple(online.shape)}'
             for (key_name, key), (online_name, online) in pairs
             if key.shape != online.shape),
            f'the key encoder has {len(key_params)} parameters, the online '
            f'one {len(online_params)}')
        return (
            "The key encoder's parameters do not line up with the online "
            f'encoder\'s: {detail}. Under FSDP each rank holds a shard of '
            'both and the EMA averages them element by element, so the key '
            'encoder must be wrapped into FSDP units exactly as the online '
            'encoder. Fix: list the backbone and neck classes beside the '
            "transformer layer in the strategy's auto_wrap_policy "
            "module_types (see configs/_base_/fsdp_runtime.py).")
