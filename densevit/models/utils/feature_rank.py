"""Effective dimensionality: how many directions a batch of features uses."""
import torch
from torch import Tensor


@torch.no_grad()
def effective_dims(features: Tensor) -> Tensor:
    """The participation ratio ``(sum_i λ_i)^2 / sum_i λ_i^2`` of the
    eigenvalues ``λ`` of the centred features' covariance.

    Between 1 (every row on one line: collapse) and ``min(N - 1, C)``
    (variance spread equally over all directions). Centring keeps a shared
    offset, which tells rows nothing apart, from counting as a direction.
    Computed as ``tr(G)^2 / ||G||_F^2`` of the Gram matrix ``G``, with
    matrix products only: unlike an eigen- or singular-value decomposition
    it never synchronises a CUDA device with the host, so a training step
    can log it. Float32; returns a 0-dim tensor.

    Args:
        features (Tensor): (N, C), one row per sample or location.
    """
    x = features.detach().float()
    x = x - x.mean(dim=0, keepdim=True)
    # The smaller Gram matrix: both have the same non-zero eigenvalues.
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    trace = gram.diagonal().sum()
    return trace.square() / gram.square().sum().clamp(
        min=torch.finfo(x.dtype).tiny)
