"""The dense loss alone: DenseViT's ``info_nce`` vs DenseCL's logits.

Dense InfoNCE, forward + backward, for B·S queries against K negatives:

- ``loss_fused``: :func:`densevit.models.losses.info_nce` with
  ``impl=spec.loss_impl``;
- ``loss_materialised``: DenseCL's computation as mmpretrain writes it --
  ``einsum`` positive and negative logits against a cloned ``(D, K)`` queue,
  then mmpretrain's ``ContrastiveHead`` (concatenate, divide by τ,
  ``CrossEntropyLoss``), i.e. the full B·S × (K+1) logits;
- ``loss_check``: both on the same inputs; losses and query gradients must
  agree within ``TOLERANCES[spec.precision]`` (relative error).
"""
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from bench_measure import PeakMemory, measure
from bench_spec import TOLERANCES, BenchmarkSpec, autocast, input_dtype
from densevit.models.losses import info_nce

LOSS_CASES = ('loss_check', 'loss_fused', 'loss_materialised')


def _loss_inputs(spec: BenchmarkSpec) -> Tuple[Tensor, Tensor, Tensor]:
    """Unit queries (with grad), their positives, an fp32 (K, D) queue."""
    gen = torch.Generator().manual_seed(spec.seed)
    n, d, k = spec.num_queries, spec.feat_dim, spec.queue_len
    q = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    # Positives correlated with their queries, as matched views are.
    k_pos = F.normalize(q + 0.5 * torch.randn(n, d, generator=gen), dim=1)
    # Queues are fp32 buffers in both models whatever the autocast dtype.
    queue = F.normalize(torch.randn(k, d, generator=gen), dim=1)
    dtype, device = input_dtype(spec), spec.device
    return (q.to(device, dtype).requires_grad_(), k_pos.to(device, dtype),
            queue.to(device))


def _fused_loss_fn(spec: BenchmarkSpec, q: Tensor, k_pos: Tensor,
                   queue: Tensor) -> Callable[[], Tensor]:
    def run() -> Tensor:
        with autocast(spec):
            return info_nce(
                q, k_pos, queue, spec.temperature, impl=spec.loss_impl)

    return run


def _materialised_loss_fn(spec: BenchmarkSpec, q: Tensor, k_pos: Tensor,
                          queue: Tensor) -> Callable[[], Tensor]:
    """mmpretrain DenseCL's dense-loss lines, on the same inputs."""
    from mmpretrain.registry import MODELS as MMP
    head = MMP.build(
        dict(
            type='ContrastiveHead',
            loss=dict(type='CrossEntropyLoss'),
            temperature=spec.temperature)).to(spec.device)
    queue_dk = queue.t().contiguous()  # DenseCL keeps its queue as (D, K)

    def run() -> Tensor:
        with autocast(spec):
            l_pos = torch.einsum('nc,nc->n', [q, k_pos]).unsqueeze(-1)
            l_neg = torch.einsum('nc,ck->nk', [q, queue_dk.clone().detach()])
            return head.loss(l_pos, l_neg)

    return run


def _loss_and_grad(run: Callable[[], Tensor], q: Tensor) -> Tuple[Tensor,
                                                                   Tensor]:
    q.grad = None
    loss = run()
    loss.backward()
    return loss.detach().float(), q.grad.detach().float()


def run_loss_check(spec: BenchmarkSpec) -> Dict[str, object]:
    """Fused vs materialised loss and query gradient on the same inputs."""
    q, k_pos, queue = _loss_inputs(spec)
    loss_f, grad_f = _loss_and_grad(_fused_loss_fn(spec, q, k_pos, queue), q)
    loss_m, grad_m = _loss_and_grad(
        _materialised_loss_fn(spec, q, k_pos, queue), q)
    loss_rel = float((loss_f - loss_m).abs() / loss_m.abs().clamp_min(1e-12))
    grad_rel = float((grad_f - grad_m).norm() / grad_m.norm().clamp_min(1e-30))
    tol = TOLERANCES[spec.precision]
    return dict(
        loss_fused=float(loss_f),
        loss_materialised=float(loss_m),
        loss_rel_err=loss_rel,
        grad_rel_err=grad_rel,
        tolerance=tol,
        passed=bool(loss_rel <= tol and grad_rel <= tol))


def run_loss_case(spec: BenchmarkSpec, fused: bool) -> Dict[str, object]:
    """Time and extra peak memory of one dense-loss forward + backward."""
    memory = PeakMemory(spec.device)
    memory.mark_runtime()
    q, k_pos, queue = _loss_inputs(spec)
    make = _fused_loss_fn if fused else _materialised_loss_fn
    run = make(spec, q, k_pos, queue)

    def iteration() -> None:
        q.grad = None
        run().backward()

    return measure(iteration, spec, memory, 'loss')
