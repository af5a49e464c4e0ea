"""Shared machinery of the queue-backed contrastive losses."""
from typing import Optional

import torch
from torch import Tensor, nn

from ..utils import MemoryQueue
from .fused_info_nce import INFO_NCE_IMPLS


class QueuedContrastiveLoss(nn.Module):
    """Base of a contrastive loss that draws its negatives from a queue.

    ``forward`` never changes the queue: it records the keys this step
    would enqueue in :attr:`pending_keys`, and :meth:`update_queue` (called
    by ``QueueUpdateHook`` after the optimiser step) writes them. Keeping the
    write out of the forward pass means a step's own keys are never its
    negatives, and a forward under ``torch.no_grad`` for evaluation leaves
    the queue alone unless the hook asks.

    Args:
        queue_len (int): Number of negatives kept. Defaults to 65536.
        feat_dim (int): Dimension of the (projected) features; DenseViT
            fills it in from the neck's ``out_channels``. Defaults to 128.
        temperature (float): Softmax temperature τ > 0. Defaults to 0.2.
        loss_weight (float): Multiplier of the returned loss. Defaults to 1.
        impl (str): InfoNCE kernel choice: 'auto', 'fused' or 'chunked'.
    """

    def __init__(self,
                 queue_len: int = 65536,
                 feat_dim: int = 128,
                 temperature: float = 0.2,
                 loss_weight: float = 1.0,
                 impl: str = 'auto') -> None:
        super().__init__()
        # The one check of these settings: info_nce, the queue and forward
        # take them as given.
        name = type(self).__name__
        for field, value, fix in (
                ('queue_len', queue_len, 'e.g. queue_len=65536'),
                ('feat_dim', feat_dim, "leave it unset (DenseViT derives it "
                 "from the neck's `out_channels`) or set it to that value")):
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 1:
                raise ValueError(
                    f'{name} `{field}` must be an int >= 1, got {value!r}. '
                    f'Fix: {fix}.')
        if isinstance(temperature, bool) or not isinstance(
                temperature, (int, float)) or not temperature > 0:
            raise ValueError(
                f'{name} `temperature` must be a number > 0, got '
                f'{temperature!r}. Fix: use 0.1-0.2 (DenseCL uses 0.2).')
        if impl not in INFO_NCE_IMPLS:
            raise ValueError(
                f'{name} `impl` must be one of {INFO_NCE_IMPLS}, got '
                f"{impl!r}. Fix: use 'auto' (the fused kernel where one "
                "exists, else 'chunked').")
        self.feat_dim = feat_dim
        self.temperature = float(temperature)
        self.loss_weight = loss_weight
        self.impl = impl
        self.queue = MemoryQueue(queue_len, feat_dim)
        self.pending_keys: Optional[Tensor] = None

    @staticmethod
    def repeat_keys(keys: Tensor, num_queries: int) -> Tensor:
        """``keys`` (B, ...) tiled to ``num_queries`` = R·B rows: several
        query views of each image (multi-crop) share its one key view, query
        ``r·B + b`` pairing with key ``b``. Returns ``keys`` itself for R = 1.

        Raises:
            ValueError: ``num_queries`` is not a multiple of B.
        """
        batch = keys.shape[0]
        if num_queries == batch:
            return keys
        if num_queries % batch:
            raise ValueError(
                f'{num_queries} queries for {batch} keys: the query batch '
                'must hold R views of every key image, stacked view by view '
                '(R·B rows).')
        return keys.repeat(num_queries // batch, *([1] * (keys.dim() - 1)))

    @torch.no_grad()
    def update_queue(self) -> None:
        """Enqueue the keys of the last forward (all ranks); then forget them."""
        if self.pending_keys is not None:
            self.queue.enqueue(self.pending_keys)
            self.pending_keys = None

    def extra_repr(self) -> str:
        return (f'queue_len={self.queue.length}, feat_dim={self.feat_dim}, '
                f'temperature={self.temperature}')
