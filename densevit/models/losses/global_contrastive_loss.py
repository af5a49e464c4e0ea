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
            q (Tensor): (B, D) global embeddings of view 1 (with grad),
                ``D == feat_dim``.
            k (Tensor): (B, D) global embeddings of view 2 (key encoder),
                the same shape as ``q``.

        Shapes are not re-checked per step: ``DenseViT`` checks at build
        that ``feat_dim`` is the neck's ``out_channels`` and, per batch,
        that both views have the same shape.
        """
        q = F.normalize(q, dim=1)
        k = F.normalize(k, dim=1)
        self.pending_keys = k.detach()
        loss = info_nce(q, k, self.queue.keys, self.temperature,
                        impl=self.impl)
        return loss * self.loss_weight
