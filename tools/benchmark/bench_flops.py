"""Analytic model FLOPs of the benchmarked work (a multiply-add is 2 FLOPs).

Model FLOPs in the MFU sense: the matrix products the algorithm needs, the
same count for every implementation of it, so MFU ratios equal throughput
ratios. Element-wise work (norms, softmax, GELU, the optimiser) is left out.
A backward pass is counted as twice its forward.

Per image, with S = (img/p)^2 patches, T = S + 1 tokens, width C, MLP width
F, L layers:

- ViT forward: patch embedding ``2·S·3p²·C`` plus per layer ``8·T·C²``
  (qkv + output projection) ``+ 4·T²·C`` (scores and weighted values)
  ``+ 4·T·C·F`` (MLP);
- projection neck (both DenseViT's and DenseCL's): ``2·(C·H + H·D)`` for the
  global vector and S times that for the dense vectors;
- per training step: online encoder ``3×`` forward (less one patch
  embedding: the images need no gradient), key encoder ``1×``;
  correspondence ``2·S²·C``; InfoNCE against a K-key queue
  ``4·(K+1)·D`` per query (K negative logits and the positive one forward,
  their gradient to the query backward), with B·S dense queries and B
  global ones.

``tests/test_tools/test_benchmark.py`` checks these counts against
``torch.utils.flop_counter.FlopCounterMode`` on mmpretrain's DenseCL step.
"""
from typing import Dict


def patch_embed_flops(embed_dims: int, img_size: int,
                      patch_size: int = 16) -> float:
    """Forward FLOPs of one image through the patch embedding."""
    return float(2 * (img_size // patch_size)**2 * 3 * patch_size**2 *
                 embed_dims)


def vit_forward_flops(embed_dims: int, num_layers: int,
                      feedforward_channels: int, img_size: int,
                      patch_size: int = 16) -> float:
    """Forward FLOPs of one image through a ViT with a CLS token."""
    tokens = (img_size // patch_size)**2 + 1
    c = embed_dims
    patch_embed = patch_embed_flops(c, img_size, patch_size)
    per_layer = (8 * tokens * c * c + 4 * tokens * tokens * c +
                 4 * tokens * c * feedforward_channels)
    return float(patch_embed + num_layers * per_layer)


def neck_forward_flops(in_channels: int, hid_channels: int, out_channels: int,
                       num_patches: int) -> float:
    """Forward FLOPs of one image through the global + dense MLPs."""
    mlp = 2 * (in_channels * hid_channels + hid_channels * out_channels)
    return float(mlp * (1 + num_patches))


def info_nce_flops(num_queries: int, queue_len: int, feat_dim: int) -> float:
    """Forward + backward FLOPs of InfoNCE against a queue."""
    return float(4 * num_queries * (queue_len + 1) * feat_dim)


def benchmark_flops(arch: Dict[str, int], img_size: int, batch: int,
                    queue_len: int, feat_dim: int, hid_channels: int,
                    patch_size: int = 16) -> Dict[str, float]:
    """FLOPs of each benchmarked case for one step / one loss call.

    Args:
        arch (dict): ``embed_dims``, ``num_layers``, ``feedforward_channels``.
        img_size, batch, queue_len, feat_dim, hid_channels, patch_size: the
            benchmark's sizes.

    Returns:
        dict: ``step`` (full self-supervised step, DenseViT and DenseCL
        alike), ``backbone`` (online backbone forward + backward and key
        backbone forward) and ``loss`` (dense InfoNCE forward + backward).
    """
    num_patches = (img_size // patch_size)**2
    c = arch['embed_dims']
    vit = vit_forward_flops(c, arch['num_layers'],
                            arch['feedforward_channels'], img_size,
                            patch_size)
    neck = neck_forward_flops(c, hid_channels, feat_dim, num_patches)
    dense_queries = batch * num_patches
    backbone = (4 * vit - patch_embed_flops(c, img_size, patch_size)) * batch
    correspondence = 2.0 * batch * num_patches**2 * c
    losses = (info_nce_flops(dense_queries, queue_len, feat_dim) +
              info_nce_flops(batch, queue_len, feat_dim))
    return dict(
        step=backbone + 4 * neck * batch + correspondence + losses,
        backbone=backbone,
        loss=info_nce_flops(dense_queries, queue_len, feat_dim))
