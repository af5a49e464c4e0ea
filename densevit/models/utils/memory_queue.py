"""A ring buffer of L2-normalised keys: the negatives of the contrastive losses."""
import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_world_size
from torch import nn


class MemoryQueue(nn.Module):
    """Persistent FIFO of ``length`` L2-normalised ``dim``-d keys.

    The keys and the write pointer are buffers, so checkpoints carry them and
    ``model.to(device)`` moves them. The pointer stays on the device: an
    enqueue never reads it back to the host, so it adds no synchronisation to
    a training step.

    The sizes are not checked here: the loss that owns the queue
    (``QueuedContrastiveLoss``) validates ``queue_len``/``feat_dim`` where
    they come from the config.

    Args:
        length (int): Number of keys kept (e.g. 65536), >= 1.
        dim (int): Dimension of each key, >= 1.
    """

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.length = length
        self.dim = dim
        # Random unit vectors, as MoCo: until real keys arrive the negatives
        # are uninformative but well-spread on the sphere.
        self.register_buffer('keys',
                             F.normalize(torch.randn(length, dim), dim=1))
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, gather: bool = True) -> None:
        """Write ``keys`` (N, dim) at the pointer, wrapping around the end.

        Any N works: one that does not divide the length, one that crosses
        the end, and one larger than the queue, of which only the newest
        ``length`` keys remain (as if written one by one). Keys are
        L2-normalised before they are stored.

        Args:
            keys (Tensor): (N, dim) keys of this step on this rank; ``dim``
                equals the queue's (``DenseViT`` checks at build that the
                losses' ``feat_dim`` is the neck's ``out_channels``).
            gather (bool): All-gather the keys of every rank first, so each
                rank's queue stays identical. Defaults to True.
        """
        if gather and get_world_size() > 1:
            keys = torch.cat(all_gather(keys.contiguous()), dim=0)
        num = keys.shape[0]
        if num == 0:
            return
        keys = F.normalize(keys.detach().float(), dim=1)
        # Only the newest `length` keys survive a longer batch; they land where
        # writing all `num` keys one after another would have left them.
        first = max(num - self.length, 0)
        offsets = torch.arange(first, num, device=self.keys.device)
        slots = (self.ptr + offsets) % self.length
        self.keys.index_copy_(0, slots, keys[first:].to(self.keys.device))
        self.ptr.copy_((self.ptr + num) % self.length)

    def extra_repr(self) -> str:
        return f'length={self.length}, dim={self.dim}'
