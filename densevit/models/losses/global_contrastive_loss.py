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
            q (Tensor): (R·B, D) global embeddings of the query views (with
                grad), ``D == feat_dim``: view 1, or R views of every image
                stacked view by view (multi-crop), query ``r·B + b``
                pairing with key ``b``.
            k (Tensor): (B, D) global embeddings of view 2 (key encoder).
                These B keys are the ones enqueued, once each.

        Shapes are not re-checked per step: ``DenseViT`` checks at build
        that ``feat_dim`` is the neck's ``out_channels`` and, per batch,
        that the views have matching shapes.
        """
        q = F.normalize(q, dim=1)
        k = F.normalize(k, dim=1)
        self.pending_keys = k.detach()
        loss = info_nce(q, self.repeat_keys(k, q.shape[0]), self.queue.keys,
                        self.temperature, impl=self.impl)
        return loss * self.loss_weight
