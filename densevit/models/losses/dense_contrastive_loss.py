"""DenseCL's dense (per-location) contrastive loss."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from densevit.registry import MODELS
from ..utils.view_geometry import (cell_index, locate_in_other_view,
                                   window_mask)
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
        enqueue (str): Which keys a step hands to the queue: 'mean', one key
            per image, ``normalize(mean_s(k_s))`` over the un-normalised key
            projections (DenseCL's definition), or 'sample',
            ``keys_per_image`` randomly chosen normalised per-location keys
            of each image. Defaults to 'mean'.
        keys_per_image (int): Keys per image in 'sample' mode. Defaults to 1.
        match_window (int, optional): None matches over the whole view-2 grid
            (DenseCL). An int r >= 0 uses the crop geometry that
            ``TwoViewCrop`` records: the argmax of backbone similarity is
            restricted to view-2 cells within r cells (Chebyshev) of where
            the view-1 patch centre lies in view 2, and view-1 patches
            outside view 2 are left out of the loss. Applies when
            :meth:`forward` gets ``view_geometry``. Defaults to None.
        intra_negatives (int, optional): None uses the queue's negatives
            only (DenseCL). An int r >= 0 also makes every view-2 location
            of the same image farther than r cells (Chebyshev) from where
            the geometry puts the view-1 patch a negative of that patch, so
            the loss separates places within an image, not only images from
            each other. Needs ``match_window`` (the geometry) and
            r >= ``match_window``, so the positive is never a negative.
            Defaults to None.
        geometric_weight (float): w in [0, 1]. Above 0, a second positive
            per patch joins the backbone-argmax one: the view-2 cell that
            holds the patch's centre by the crop geometry (PixPro's and
            VADeR's positive); the per-patch loss is ``(1-w)·InfoNCE(argmax
            positive) + w·InfoNCE(geometric positive)`` over the same
            negatives, so w = 1 equals ``match_window=0``. Needs
            ``match_window`` (the geometry). Defaults to 0.0 (the argmax
            positive alone).
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
                 impl: str = 'auto',
                 match_window: Optional[int] = None,
                 intra_negatives: Optional[int] = None,
                 geometric_weight: float = 0.0) -> None:
        super().__init__(queue_len, feat_dim, temperature, loss_weight, impl)
        if enqueue not in ('mean', 'sample'):
            raise ValueError(
                "DenseContrastiveLoss `enqueue` must be 'mean' (DenseCL) or "
                f"'sample', got {enqueue!r}.")
        if not isinstance(keys_per_image, int) or keys_per_image < 1:
            raise ValueError('DenseContrastiveLoss `keys_per_image` must be '
                             f'an int >= 1, got {keys_per_image!r}.')
        if match_window is not None and (
                isinstance(match_window, bool)
                or not isinstance(match_window, int) or match_window < 0):
            raise ValueError(
                'DenseContrastiveLoss `match_window` must be None (match '
                'over the whole grid, DenseCL) or an int >= 0 (cells around '
                f'the geometric position), got {match_window!r}.')
        if intra_negatives is not None:
            if (isinstance(intra_negatives, bool)
                    or not isinstance(intra_negatives, int)
                    or intra_negatives < 0):
                raise ValueError(
                    'DenseContrastiveLoss `intra_negatives` must be None (the '
                    'queue only, DenseCL) or an int >= 0 (cells around the '
                    f'geometric position), got {intra_negatives!r}.')
            if match_window is None or intra_negatives < match_window:
                raise ValueError(
                    'DenseContrastiveLoss `intra_negatives` needs the crop '
                    'geometry and must keep the positive out of the '
                    f'negatives, got intra_negatives={intra_negatives!r} with '
                    f'match_window={match_window!r}. Fix: set match_window '
                    'to an int and intra_negatives >= match_window (e.g. '
                    'match_window=1, intra_negatives=1).')
        if (isinstance(geometric_weight, bool)
                or not isinstance(geometric_weight, (int, float))
                or not 0.0 <= geometric_weight <= 1.0):
            raise ValueError(
                'DenseContrastiveLoss `geometric_weight` must be a number in '
                f'[0, 1], got {geometric_weight!r}. Fix: 0 keeps the '
                'backbone-argmax positive alone (DenseCL), e.g. 0.5 weighs '
                'it equally with the geometric positive.')
        if geometric_weight > 0 and match_window is None:
            raise ValueError(
                'DenseContrastiveLoss `geometric_weight` needs the crop '
                f'geometry, got geometric_weight={geometric_weight!r} with '
                'match_window=None. Fix: set match_window to an int (e.g. '
                'match_window=1).')
        self.intra_negatives = intra_negatives
        self.geometric_weight = float(geometric_weight)
        #: While True (``LossWeightWarmupHook`` during the model's
        #: ``geometric_warmup_iters``), the positive is the geometric one
        #: alone, as with ``geometric_weight=1``.
        self.geometric_only = False
        self.enqueue = enqueue
        self.keys_per_image = keys_per_image
        self.match_window = match_window

    @property
    def needs_geometry(self) -> bool:
        """Whether :meth:`forward` needs the views' crop geometry."""
        return self.match_window is not None

    @staticmethod
    @torch.no_grad()
    def extract_correspondence(f1: Tensor,
                               f2: Tensor,
                               allowed: Optional[Tensor] = None) -> Tensor:
        """For each view-1 location, the most similar view-2 location.

        Args:
            f1 (Tensor): view-1 backbone features, (B, S, C) or (B, C, H, W).
            f2 (Tensor): view-2 backbone features, same layout as ``f1``
                (its grid may differ).
            allowed (Tensor, optional): (B, S1, S2) bool, the view-2
                locations each view-1 location may match; every row needs at
                least one True. Defaults to None (all).

        Returns:
            LongTensor: (B, S); entry [b, i] is ``argmax_j cos(f1[b,i],
            f2[b,j])`` over the allowed j.
        """
        f1 = to_locations(f1, 'f1')
        f2 = to_locations(f2, 'f2')
        similarity = torch.bmm(
            F.normalize(f1, dim=2), F.normalize(f2, dim=2).transpose(1, 2))
        if allowed is not None:
            similarity = similarity.masked_fill(~allowed, float('-inf'))
        return similarity.argmax(dim=2)

    def forward(self,
                q: Tensor,
                k: Tensor,
                q_backbone: Tensor,
                k_backbone: Tensor,
                view_geometry: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tensor:
        """Mean per-location InfoNCE.

        Args:
            q (Tensor): projected dense features of the query views (with
                grad), (R·B, D, h, w): view 1 (R = 1), or R views of every
                image stacked view by view (multi-crop), query view
                ``r·B + b`` pairing with key view ``b``; their grid may differ
                from the key's.
            k (Tensor): projected dense features of view 2 (key), (B, D, H,
                W). Its keys are the ones enqueued, once per image.
            q_backbone (Tensor): the query views' backbone patch features
                used for matching, (R·B, C, h, w).
            k_backbone (Tensor): view-2 backbone patch features, (B, C, H,
                W).
            view_geometry (tuple[Tensor, Tensor], optional): ``(view_boxes
                (R·B, 2, 4), view_flips (R·B, 2))`` of each query view and
                its key view, as ``TwoViewCrop`` records them. Without it
                ``match_window`` cannot apply, and the match is over the
                whole grid (DenseCL).
        """
        q_grid, k_grid = q.shape[-2:], k.shape[-2:]
        allowed = weight = intra_negative = geometric_match = None
        if self.match_window is not None and view_geometry is not None:
            if q.dim() != 4 or k.dim() != 4:
                raise ValueError(
                    'DenseContrastiveLoss(match_window=...) needs (B, D, H, '
                    f'W) feature maps to know the grids, got {tuple(q.shape)}'
                    f' and {tuple(k.shape)}.')
            position, inside = locate_in_other_view(*view_geometry, q_grid,
                                                    k_grid)
            allowed = window_mask(position, k_grid, self.match_window)
            # float32 whatever the autocast dtype: a half-precision count of
            # patches rounds, and overflows past 65,504.
            weight = inside.flatten().to(torch.float32)
            if self.intra_negatives is not None:
                intra_negative = ~window_mask(position, k_grid,
                                              self.intra_negatives)
            geometric_weight = (1.0 if self.geometric_only else
                                self.geometric_weight)
            if geometric_weight > 0:
                geometric_match = cell_index(position, k_grid)
        q = F.normalize(to_locations(q, 'q'), dim=2)
        k_raw = to_locations(k, 'k')
        self.pending_keys = self._keys_to_enqueue(k_raw.detach())
        k = self.repeat_keys(F.normalize(k_raw, dim=2), q.shape[0])
        k_backbone = self.repeat_keys(to_locations(k_backbone, 'k_backbone'),
                                      q.shape[0])
        per_location = weight is not None or intra_negative is not None

        def losses_with(positive_index: Tensor) -> Tensor:
            k_pos = torch.gather(
                k, 1, positive_index[..., None].expand(-1, -1, k.shape[2]))
            losses = info_nce(
                q.reshape(-1, q.shape[2]),
                k_pos.reshape(-1, k.shape[2]),
                self.queue.keys,
                self.temperature,
                reduction='none' if per_location else 'mean',
                impl=self.impl)
            if intra_negative is not None:
                losses = self._add_intra_negatives(losses, q, k, k_pos,
                                                   intra_negative)
            return losses

        # The backbone match is mined only when its term has weight.
        if geometric_match is not None and geometric_weight == 1.0:
            losses = losses_with(geometric_match)
        else:
            match = self.extract_correspondence(q_backbone, k_backbone,
                                                allowed)
            losses = losses_with(match)
            if geometric_match is not None:
                losses = (1.0 - geometric_weight) * losses + \
                    geometric_weight * losses_with(geometric_match)
        if weight is not None:
            # Mean over the patches that have a counterpart; no host sync.
            losses = (losses * weight).sum() / weight.sum().clamp(min=1.0)
        return losses * self.loss_weight

    def _add_intra_negatives(self, losses: Tensor, q: Tensor, k: Tensor,
                             k_pos: Tensor, negative: Tensor) -> Tensor:
        """Per-location losses with the same image's view-2 locations in
        ``negative`` (B, S, S) added to each softmax's denominator.

        ``losses`` is ``lse(pos, queue) - pos``, so the new loss is
        ``logaddexp(losses, lse(intra) - pos)``; computed in float32.
        """
        q, k, k_pos = q.float(), k.float(), k_pos.float()
        positive = (q * k_pos).sum(dim=2) / self.temperature
        intra = torch.bmm(q, k.transpose(1, 2)) / self.temperature
        # A row without negatives gives lse = -inf, which leaves the loss
        # as it was (and masked_fill's backward zeroes its gradient).
        intra_lse = intra.masked_fill(~negative, float('-inf')).logsumexp(2)
        return torch.logaddexp(losses.float(),
                               (intra_lse - positive).flatten())

    def _keys_to_enqueue(self, k: Tensor) -> Tensor:
        """(B, S, D) un-normalised dense keys -> the rows for the queue."""
        if self.enqueue == 'mean':
            # DenseCL averages the raw projections, then normalises.
            return F.normalize(k.mean(dim=1), dim=1)
        batch, num_locations = k.shape[:2]
        # Drawn on the device: no host round trip in the training step.
        picks = torch.randint(
            num_locations, (batch, self.keys_per_image), device=k.device)
        return F.normalize(
            torch.gather(k, 1, picks[..., None].expand(-1, -1, k.shape[2])),
            dim=2).reshape(-1, k.shape[2])
