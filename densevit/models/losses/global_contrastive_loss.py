"""MoCo-style InfoNCE on the global embedding."""
import torch.nn.functional as F
from torch import Tensor

from densevit.registry import MODELS
from .fused_info_nce import info_nce
from .queued_contrastive_loss import QueuedContrastiveLoss


@MODELS.register_module()
class GlobalContrastiveLoss(QueuedContrastiveLoss):
    """InfoNCE between the two views' global embeddings (MoCo v2 / DenseCL).

    The positive of query ``q[b]`` is key ``k[b]`` (the other view of the
    same image through the momentum encoder); the negatives are the queue.
    The normalised keys are kept for the queue update.

    Args: see :class:`QueuedContrastiveLoss`.
    """

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        """Mean InfoNCE over the batch.

        Args:
            q (Tensor): (B, D) global embeddings of view 1 (with grad).
            k (Tensor): (B, D) global embeddings of view 2 (key encoder).
        """
        if q.dim() != 2 or q.shape != k.shape or q.shape[1] != self.feat_dim:
            raise ValueError(
                f'GlobalContrastiveLoss expects q and k of shape '
                f'(B, {self.feat_dim}), got {tuple(q.shape)} and '
                f'{tuple(k.shape)}. Fix: both views need the same batch '
                "size, and `feat_dim` must equal the neck's `out_channels`.")
        q = F.normalize(q, dim=1)
        k = F.normalize(k, dim=1)
        self.pending_keys = k.detach()
        loss = info_nce(q, k, self.queue.keys, self.temperature,
                        impl=self.impl)
        return loss * self.loss_weight
