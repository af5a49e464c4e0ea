from .dense_contrastive_loss import DenseContrastiveLoss
from .global_contrastive_loss import GlobalContrastiveLoss
from .fused_info_nce import info_nce, info_nce_reference, negative_logsumexp
from .queued_contrastive_loss import QueuedContrastiveLoss

__all__ = [
    'DenseContrastiveLoss', 'GlobalContrastiveLoss', 'QueuedContrastiveLoss',
    'info_nce', 'info_nce_reference', 'negative_logsumexp'
]
