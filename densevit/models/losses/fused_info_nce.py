"""Fused InfoNCE against a shared bank of negatives.

For queries q_i, positives k_i and negatives n_j (all unit vectors) the loss is

    loss_i = -log( exp(p_i) / (exp(p_i) + sum_j exp(s_ij)) ),
    p_i = q_i.k_i / tau,  s_ij = q_i.n_j / tau.

The denominator over the negatives is an attention logsumexp: with queries q,
keys = values = the negatives and scale 1/tau, one fused attention call
returns lse_i = logsumexp_j s_ij and O_i = sum_j softmax_j(s_ij) n_j without
ever holding the N x K logits. The gradient needs nothing else:

    sigma_i = exp(p_i - logaddexp(p_i, lse_i))
    dloss_i/dq_i = (1 - sigma_i) (O_i - k_i) / tau
    dloss_i/dk_i = -(1 - sigma_i) q_i / tau

so memory is O(N·D) instead of O(N·K). Where no fused kernel accepts the
inputs, the same two quantities are computed over row chunks.
"""
import logging
from typing import Dict, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor

# (device type, dtype) pairs whose fused kernel raised once; they go straight
# to the chunked path afterwards instead of failing on every call.
_FUSED_UNSUPPORTED: Dict[Tuple[str, torch.dtype], str] = {}

# The `impl` values of info_nce / negative_logsumexp.
INFO_NCE_IMPLS = ('auto', 'fused', 'chunked')

_CHUNK_ELEMENTS = 1 << 24  # logits held at once by the chunked path (64 MB fp32)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; half types and float32 accumulate in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _fused_lse_and_output(q: Tensor, negatives: Tensor,
                          scale: float) -> Tuple[Tensor, Tensor]:
    """lse (N,) float32 and O (N, D) from PyTorch's fused attention kernels."""
    # The CPU flash kernel allocates O with the query's strides but writes it
    # as if contiguous: a transposed query (a (B, D, H, W) map flattened to
    # rows with B = 1 is one) gets a scrambled O and so a wrong gradient.
    q = q.contiguous()
    negatives = negatives.contiguous()
    q4 = q[None, None]
    n4 = negatives[None, None]
    if q.device.type == 'cpu':
        out, lse = _cpu_flash_attention(q, negatives, scale)
    elif q.device.type == 'cuda' and q.dtype in (torch.float16,
                                                 torch.bfloat16):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(
            q4, n4, n4, 0.0, False, False, scale=scale)[:2]
    elif q.device.type == 'cuda':
        out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(
            q4, n4, n4, None, True, 0.0, False, scale=scale)[:2]
    else:
        raise RuntimeError(f'no fused kernel for {q.device.type}')
    # Rows come out in order; drop the padding rows the CPU split adds and
    # the ones the memory-efficient kernel pads lse with.
    num_rows, dim = q.shape
    lse = lse.reshape(-1)[:num_rows]
    return (lse.to(_accumulation_dtype(q.dtype)),
            out.reshape(-1, dim)[:num_rows])


def _cpu_flash_attention(q: Tensor, negatives: Tensor,
                         scale: float) -> Tuple[Tensor, Tensor]:
    """The CPU flash kernel, with the queries split evenly across threads.

    The kernel parallelises over (batch, head, 256-row query block), so a
    single batch whose block count does not divide evenly among the threads
    leaves some threads idle while the others finish. Presenting the queries
    as one batch per thread (zero rows pad the last; the negatives are a
    stride-0 expand, not a copy) hands every thread the same number of rows
    (measurements: docs/performance.md, "Thread balance").

    Returns the kernel's (O, lse), padding rows included, in row order.
    """
    num_rows, dim = q.shape
    parts = max(1, min(torch.get_num_threads(), num_rows))
    padding = (-num_rows) % parts
    if padding:
        q = torch.cat([q, q.new_zeros(padding, dim)])
    q4 = q.view(parts, 1, -1, dim)
    n4 = negatives[None, None].expand(parts, 1, *negatives.shape)
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q4, n4, n4, 0.0, False, scale=scale)


def _chunked_lse_and_output(q: Tensor, negatives: Tensor,
                            scale: float) -> Tuple[Tensor, Tensor]:
    """The same quantities over row chunks: O(chunk·K) memory.

    Every pass over a (chunk, K) block is memory-bound work proportional to
    the logits, so there are as few as possible: the scale goes on the
    (N, D) queries instead of the logits, and the block is exponentiated in
    place and normalised after the (chunk, D) product instead of before it
    (timings: docs/performance.md). Half-precision inputs are computed in
    float32.
    """
    acc = _accumulation_dtype(q.dtype)
    rows = max(1, _CHUNK_ELEMENTS // max(1, negatives.shape[0]))
    scaled_q = q.to(acc) * scale
    negatives = negatives.to(acc)
    lse = scaled_q.new_empty(q.shape[0])
    weighted = torch.empty_like(scaled_q)
    for start in range(0, q.shape[0], rows):
        block = slice(start, start + rows)
        logits = scaled_q[block] @ negatives.T
        row_max = logits.amax(dim=1, keepdim=True)
        unnormalised = logits.sub_(row_max).exp_()
        total = unnormalised.sum(dim=1, keepdim=True)
        torch.mm(unnormalised, negatives, out=weighted[block])
        weighted[block].div_(total)
        lse[block] = (total.log_() + row_max).squeeze(1)
    return lse, weighted.to(q.dtype)


def negative_logsumexp(q: Tensor,
                       negatives: Tensor,
                       scale: float,
                       impl: str = 'auto') -> Tuple[Tensor, Tensor]:
    """logsumexp_j(scale·q_i·n_j) and the softmax-weighted sum of negatives.

    Args:
        q (Tensor): (N, D) queries.
        negatives (Tensor): (K, D) negatives, same dtype as ``q``.
        scale (float): 1 / temperature.
        impl (str): one of :data:`INFO_NCE_IMPLS`: 'auto' (fused kernel
            where one accepts the inputs, else chunked), 'fused' (raise if
            none does) or 'chunked'. Not re-checked here: the value is
            validated where it enters (``QueuedContrastiveLoss``, the
            benchmark CLI); anything but 'auto'/'fused' runs the chunked
            path.

    Returns:
        tuple: lse (N,) in float32 (float64 for float64 inputs) and
        O (N, D) in ``q.dtype``. Neither carries a gradient; :func:`info_nce`
        supplies the analytic one.
    """
    if q.shape[0] == 0:
        return (q.new_zeros(0, dtype=_accumulation_dtype(q.dtype)),
                q.new_zeros(q.shape))
    if negatives.shape[0] == 0:
        # An empty sum: lse = -inf and O = 0 (so the loss and its gradient
        # are 0). The CPU flash kernel dies with SIGFPE on zero keys.
        return (q.new_full((q.shape[0], ), float('-inf'),
                           dtype=_accumulation_dtype(q.dtype)),
                q.new_zeros(q.shape))
    key = (q.device.type, q.dtype)
    if impl == 'fused' or (impl == 'auto' and key not in _FUSED_UNSUPPORTED):
        try:
            return _fused_lse_and_output(q, negatives, scale)
        except torch.OutOfMemoryError:
            # Not a missing kernel: the chunked path would not fit either.
            raise
        except RuntimeError as err:
            if impl == 'fused':
                raise
            _FUSED_UNSUPPORTED[key] = str(err)
            print_log(
                f'info_nce: no fused attention kernel for {key[1]} on '
                f'{key[0]} ({str(err).splitlines()[0][:200]}); using the '
                'chunked path from now on.',
                logger='current',
                level=logging.WARNING)
    return _chunked_lse_and_output(q, negatives, scale)


class _InfoNCE(torch.autograd.Function):
    """Per-row InfoNCE with the analytic backward above."""

    @staticmethod
    def forward(ctx, q: Tensor, k_pos: Tensor, negatives: Tensor,
                temperature: float, impl: str) -> Tensor:
        scale = 1.0 / temperature
        acc = _accumulation_dtype(q.dtype)
        pos = (q.to(acc) * k_pos.to(acc)).sum(dim=1) * scale
        lse_neg, weighted = negative_logsumexp(q, negatives.to(q.dtype),
                                               scale, impl)
        lse_all = torch.logaddexp(pos, lse_neg)
        ctx.save_for_backward(q, k_pos, weighted, pos, lse_all)
        ctx.scale = scale
        return lse_all - pos

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        q, k_pos, weighted, pos, lse_all = ctx.saved_tensors
        # (1 - sigma_i) = probability mass the softmax puts on negatives.
        acc = pos.dtype
        coef = -torch.expm1(pos - lse_all) * grad_loss.to(acc) * ctx.scale
        coef = coef[:, None]
        grad_q = grad_k = None
        if ctx.needs_input_grad[0]:
            grad_q = (coef * (weighted.to(acc) - k_pos.to(acc))).to(q.dtype)
        if ctx.needs_input_grad[1]:
            grad_k = (-coef * q.to(acc)).to(k_pos.dtype)
        return grad_q, grad_k, None, None, None


def info_nce(q: Tensor,
             k_pos: Tensor,
             negatives: Tensor,
             temperature: float,
             reduction: str = 'mean',
             impl: str = 'auto') -> Tensor:
    """InfoNCE of queries against their positives and shared negatives.

    ``loss_i = -log(exp(q_i.k_i/τ) / (exp(q_i.k_i/τ) + Σ_j exp(q_i.n_j/τ)))``,
    computed without materialising the N×K logits (see module docstring).
    Gradients flow to ``q`` and ``k_pos``; the negatives are a constant bank
    (a memory queue) and get none.

    Preconditions, not re-checked per call (the losses validate their
    settings at construction and ``DenseViT`` checks the channel counts at
    build): the inputs are L2-normalised, ``q`` and ``k_pos`` have the same
    shape (N, D), ``negatives`` is (K, D) with the same D, ``temperature``
    > 0 and ``impl`` is one of :data:`INFO_NCE_IMPLS`.

    Args:
        q (Tensor): (N, D) queries.
        k_pos (Tensor): (N, D) the positive key of each query.
        negatives (Tensor): (K, D) negatives shared by all queries.
        temperature (float): τ > 0.
        reduction (str): 'mean', 'sum' or 'none' (per-row losses).
        impl (str): 'auto', 'fused' or 'chunked'; see
            :func:`negative_logsumexp`.

    Returns:
        Tensor: the loss, in float32 (float64 for float64 inputs).
    """
    if reduction not in ('mean', 'sum', 'none'):
        raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none', got "
                         f'{reduction!r}.')
    device_type = q.device.type
    if torch.is_autocast_enabled(device_type):
        # Inside autocast the loss is matrix work like any other: run it in
        # the autocast dtype (bf16 flash kernels) even though F.normalize,
        # which autocast keeps in fp32, handed us fp32 inputs.
        q = q.to(torch.get_autocast_dtype(device_type))
    losses = _InfoNCE.apply(q, k_pos.to(q.dtype), negatives.detach(),
                            float(temperature), impl)
    if reduction == 'mean':
        return losses.mean()
    if reduction == 'sum':
        return losses.sum()
    return losses


def info_nce_reference(q: Tensor, k_pos: Tensor, negatives: Tensor,
                       temperature: float) -> Tensor:
    """The materialised (N×K logits) InfoNCE, the reference for tests."""
    pos = (q * k_pos).sum(dim=1, keepdim=True)
    logits = torch.cat([pos, q @ negatives.T], dim=1) / temperature
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()
