"""DenseCL's dense (per-location) contrastive loss."""
import torch
import torch.nn.functional as F
from torch import Tensor

from densevit.registry import MODELS
from .fused_info_nce import info_nce
from .queued_contrastive_loss import QueuedContrastiveLoss


def to_locations(x: Tensor, name: str) -> Tensor:
    """(B, S, C) stays; (B, C, H, W) becomes (B, H·W, C)."""
    if x.dim() == 4:
        return x.flatten(2).transpose(1, 2)
    if x.dim() == 3:
        return x
    raise ValueError(f'`{name}` must be (B, S, C) or (B, C, H, W), got shape '
                     f'{tuple(x.shape)}.')


@MODELS.register_module()
class DenseContrastiveLoss(QueuedContrastiveLoss):
    """Per-location InfoNCE between matched locations of two views.

    `DenseCL <https://arxiv.org/abs/2011.09157>`_: each view-1 location's
    positive is the view-2 location whose *backbone* feature is most similar
    (cosine); the negatives are a queue of dense keys. The loss is averaged
    over every location of every image.

    Args:
        queue_len (int): Number of negatives kept. Defaults to 65536.
        feat_dim (int): Dimension of the projected dense features.
            Defaults to 128.
        temperature (float): τ > 0. Defaults to 0.2.
        enqueue (str): Which keys a step hands to the queue: 'mean', the
            L2-normalised mean of each image's dense keys (DenseCL's choice,
            one key per image), or 'sample', ``keys_per_image`` randomly
            chosen per-location keys of each image. Defaults to 'mean'.
        keys_per_image (int): Keys per image in 'sample' mode. Defaults to 1.
        loss_weight (float): Multiplier of the returned loss. Defaults to 1.
        impl (str): InfoNCE kernel: 'auto', 'fused' or 'chunked'.
    """

    def __init__(self,
                 queue_len: int = 65536,
                 feat_dim: int = 128,
                 temperature: float = 0.2,
                 enqueue: str = 'mean',
                 keys_per_image: int = 1,
                 loss_weight: float = 1.0,
                 impl: str = 'auto') -> None:
        super().__init__(queue_len, feat_dim, temperature, loss_weight, impl)
        if enqueue not in ('mean', 'sample'):
            raise ValueError(
                "DenseContrastiveLoss `enqueue` must be 'mean' (DenseCL) or "
                f"'sample', got {enqueue!r}.")
        if not isinstance(keys_per_image, int) or keys_per_image < 1:
            raise ValueError('DenseContrastiveLoss `keys_per_image` must be '
                             f'an int >= 1, got {keys_per_image!r}.')
        self.enqueue = enqueue
        self.keys_per_image = keys_per_image

    @staticmethod
    @torch.no_grad()
    def extract_correspondence(f1: Tensor, f2: Tensor) -> Tensor:
        """For each view-1 location, the most similar view-2 location.

        Args:
            f1 (Tensor): view-1 backbone features, (B, S, C) or (B, C, H, W).
            f2 (Tensor): view-2 backbone features, same layout as ``f1``.

        Returns:
            LongTensor: (B, S); entry [b, i] is ``argmax_j cos(f1[b,i],
            f2[b,j])``.
        """
        f1 = to_locations(f1, 'f1')
        f2 = to_locations(f2, 'f2')
        if f1.shape[0] != f2.shape[0] or f1.shape[2] != f2.shape[2]:
            raise ValueError(
                'extract_correspondence needs both views with the same batch '
                f'size and channels, got {tuple(f1.shape)} and '
                f'{tuple(f2.shape)} (B, S, C).')
        similarity = torch.bmm(
            F.normalize(f1, dim=2), F.normalize(f2, dim=2).transpose(1, 2))
        return similarity.argmax(dim=2)

    def forward(self, q: Tensor, k: Tensor, q_backbone: Tensor,
                k_backbone: Tensor) -> Tensor:
        """Mean per-location InfoNCE.

        Args:
            q (Tensor): projected dense features of view 1 (query, with
                grad), (B, S, D) or (B, D, H, W).
            k (Tensor): projected dense features of view 2 (key), same
                layout.
            q_backbone (Tensor): view-1 backbone patch features used for
                matching, (B, S, C) or (B, C, H, W).
            k_backbone (Tensor): view-2 backbone patch features.
        """
        q = to_locations(q, 'q')
        k = to_locations(k, 'k')
        if q.shape != k.shape or q.shape[2] != self.feat_dim:
            raise ValueError(
                f'DenseContrastiveLoss expects q and k of the same shape '
                f'(B, S, {self.feat_dim}), got {tuple(q.shape)} and '
                f'{tuple(k.shape)} as (B, S, D). Fix: both views need the '
                "same batch size and grid, and `feat_dim` must equal the "
                "neck's `out_channels`.")
        match = self.extract_correspondence(q_backbone, k_backbone)
        if match.shape != q.shape[:2]:
            raise ValueError(
                'DenseContrastiveLoss: backbone features give a '
                f'{tuple(match.shape)} (B, S) grid but the projected features '
                f'a {tuple(q.shape[:2])} one; they must come from the same '
                'views.')
        q = F.normalize(q, dim=2)
        k = F.normalize(k, dim=2)
        k_pos = torch.gather(k, 1, match[..., None].expand(-1, -1, k.shape[2]))
        self.pending_keys = self._keys_to_enqueue(k.detach())
        loss = info_nce(
            q.reshape(-1, q.shape[2]),
            k_pos.reshape(-1, k.shape[2]),
            self.queue.keys,
            self.temperature,
            impl=self.impl)
        return loss * self.loss_weight

    def _keys_to_enqueue(self, k: Tensor) -> Tensor:
        """(B, S, D) normalised dense keys -> the rows handed to the queue."""
        if self.enqueue == 'mean':
            return F.normalize(k.mean(dim=1), dim=1)
        batch, num_locations = k.shape[:2]
        # Drawn on the device: no host round trip in the training step.
        picks = torch.randint(
            num_locations, (batch, self.keys_per_image), device=k.device)
        return torch.gather(k, 1, picks[..., None].expand(-1, -1, k.shape[2]))\
            .reshape(-1, k.shape[2])
