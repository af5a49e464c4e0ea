"""The measured cases of ``tools/benchmark.py``, one function each.

Loss alone (dense InfoNCE, forward + backward, B·S queries, K negatives):

- ``loss_fused``: :func:`densevit.models.losses.info_nce`;
- ``loss_materialised``: DenseCL's computation as mmpretrain writes it --
  ``einsum`` positive and negative logits against a cloned ``(D, K)`` queue,
  then mmpretrain's ``ContrastiveHead`` (concatenate, divide by τ,
  ``CrossEntropyLoss``), i.e. the full B·S × (K+1) logits;
- ``loss_check``: both on the same inputs; losses and query gradients must
  agree (relative error <= 1e-4 in fp32, 2e-2 in bf16).

Full training step (two views, forward, backward, optimiser step, queue
update, momentum/EMA update):

- ``step_densevit``: ``DenseViT.loss`` + backward + SGD step +
  ``update_queues()`` + ``momentum_update()`` (what the hooks do);
- ``step_densecl``: mmpretrain's ``DenseCL`` built from mmpretrain's registry
  with mmpretrain's ``VisionTransformer(out_type='featmap')`` of the same
  arch, ``DenseCLNeck`` and ``ContrastiveHead``; its ``loss`` enqueues and
  updates the EMA itself, so the step is ``loss`` + backward + SGD step;
- ``step_backbone``: the backbone work alone -- online ViT forward + backward,
  key ViT forward (no grad), SGD step; no neck, losses, queue or EMA.

Run as ``python -m densevit.utils.benchmark_cases CASE SPEC_JSON`` it runs one
case in a fresh process and prints ``BENCHMARK_RESULT <json>``; this is how
the CPU peak-RSS figures are kept per case.
"""
import contextlib
import copy
import dataclasses
import json
import sys
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densevit.models.backbones.densevit_backbone import resolve_arch
from densevit.models.losses import info_nce
from densevit.models.losses.fused_info_nce import INFO_NCE_IMPLS
from densevit.registry import MODELS
from .benchmark_flops import benchmark_flops
from .benchmark_measure import PeakMemory, summarise_times, time_iterations

RESULT_MARKER = 'BENCHMARK_RESULT '
LOSS_CASES = ('loss_check', 'loss_fused', 'loss_materialised')
STEP_CASES = ('step_densevit', 'step_densecl', 'step_backbone')
TOLERANCES = dict(fp32=1e-4, bf16=2e-2)
PATCH_SIZE = 16
# DenseCL's published schedule: SGD, lr 0.03, momentum 0.9, wd 1e-4. Used
# for every step case so the optimiser costs the same everywhere.
_OPTIM = dict(lr=0.03, momentum=0.9, weight_decay=1e-4)


@dataclasses.dataclass
class BenchmarkSpec:
    """Sizes and settings shared by every case.

    Args:
        arch (str): 'tiny', 'small' or 'base' (DenseViTBackbone archs).
        depth (int, optional): override the number of ViT layers.
        batch (int): images per step (each image gives two views).
        img_size (int): view size in pixels, a multiple of 16.
        queue_len (int): K, negatives per queue.
        feat_dim (int): D, projection dimension.
        hid_channels (int): projection MLP hidden width.
        temperature (float): InfoNCE τ.
        precision (str): 'fp32' or 'bf16' (autocast).
        device (str): 'cpu' or 'cuda'.
        iters (int): measured iterations. warmup (int): unmeasured ones.
        threads (int, optional): torch CPU threads (default: torch's).
        seed (int): seed of inputs and weights.
        peak_tflops (float, optional): device peak for MFU.
        loss_impl (str): ``impl`` of DenseViT's ``info_nce`` in the loss
            cases: 'auto', 'fused' or 'chunked' (the fall-back path).
    """
    arch: str = 'small'
    depth: Optional[int] = None
    batch: int = 16
    img_size: int = 224
    queue_len: int = 65536
    feat_dim: int = 128
    hid_channels: int = 2048
    temperature: float = 0.2
    precision: str = 'fp32'
    device: str = 'cpu'
    iters: int = 10
    warmup: int = 3
    threads: Optional[int] = None
    seed: int = 0
    peak_tflops: Optional[float] = None
    loss_impl: str = 'auto'

    @property
    def num_patches(self) -> int:
        return (self.img_size // PATCH_SIZE)**2

    @property
    def num_queries(self) -> int:
        return self.batch * self.num_patches

    def arch_settings(self) -> Dict[str, int]:
        """The full ViT arch dict both DenseViT and DenseCL are built with."""
        settings = resolve_arch(self.arch)
        if self.depth is not None:
            settings['num_layers'] = self.depth
        return settings

    def validate(self, step_cases: bool) -> None:
        """Raise ValueError naming the option and the fix."""
        positive = dict(
            batch=self.batch,
            img_size=self.img_size,
            queue_len=self.queue_len,
            feat_dim=self.feat_dim,
            hid_channels=self.hid_channels,
            iters=self.iters)
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'--{name.replace("_", "-")} must be a '
                                 f'positive int, got {value!r}.')
        if self.depth is not None and self.depth < 1:
            raise ValueError(f'--depth must be >= 1, got {self.depth}.')
        if self.warmup < 0:
            raise ValueError(f'--warmup must be >= 0, got {self.warmup}.')
        if self.img_size % PATCH_SIZE:
            raise ValueError(
                f'--img-size must be a multiple of the patch size '
                f'{PATCH_SIZE}, got {self.img_size}. Fix: e.g. 224 or 64.')
        if self.precision not in TOLERANCES:
            raise ValueError(f"--precision must be 'fp32' or 'bf16', got "
                             f'{self.precision!r}.')
        if self.loss_impl not in INFO_NCE_IMPLS:
            raise ValueError(f"--loss-impl must be 'auto', 'fused' or "
                             f"'chunked', got {self.loss_impl!r}.")
        if self.device not in ('cpu', 'cuda'):
            raise ValueError(f"--device must be 'cpu' or 'cuda', got "
                             f'{self.device!r}.')
        if self.device == 'cuda' and not torch.cuda.is_available():
            raise ValueError('--device cuda but torch sees no CUDA device. '
                             'Fix: run on a GPU machine or use --device cpu.')
        if step_cases and self.queue_len % self.batch:
            raise ValueError(
                f'--queue-len {self.queue_len} is not a multiple of --batch '
                f'{self.batch}: mmpretrain DenseCL asserts queue_len % '
                'batch_size == 0 when it enqueues (DenseViT does not need '
                'it). Fix: e.g. --queue-len 65536 with a power-of-two batch.')
        self.arch_settings()  # raises for an unknown arch

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> 'BenchmarkSpec':
        return cls(**json.loads(text))


def _autocast(spec: BenchmarkSpec):
    if spec.precision == 'bf16':
        return torch.autocast(spec.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _input_dtype(spec: BenchmarkSpec) -> torch.dtype:
    return torch.bfloat16 if spec.precision == 'bf16' else torch.float32


# ----------------------------------------------------------------------
# loss alone
# ----------------------------------------------------------------------
def _loss_inputs(spec: BenchmarkSpec) -> Tuple[Tensor, Tensor, Tensor]:
    """Unit queries (with grad), their positives, an fp32 (K, D) queue."""
    gen = torch.Generator().manual_seed(spec.seed)
    n, d, k = spec.num_queries, spec.feat_dim, spec.queue_len
    q = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    # Positives correlated with their queries, as matched views are.
    k_pos = F.normalize(q + 0.5 * torch.randn(n, d, generator=gen), dim=1)
    # Queues are fp32 buffers in both models whatever the autocast dtype.
    queue = F.normalize(torch.randn(k, d, generator=gen), dim=1)
    dtype, device = _input_dtype(spec), spec.device
    return (q.to(device, dtype).requires_grad_(), k_pos.to(device, dtype),
            queue.to(device))


def _fused_loss_fn(spec: BenchmarkSpec, q: Tensor, k_pos: Tensor,
                   queue: Tensor) -> Callable[[], Tensor]:
    def run() -> Tensor:
        with _autocast(spec):
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
        with _autocast(spec):
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

    memory.start()
    times = time_iterations(iteration, spec.iters, spec.warmup, spec.device)
    result = dict(summarise_times(times), **memory.stop())
    result['memory_method'] = memory.method
    _add_flops(result, spec, 'loss')
    return result


# ----------------------------------------------------------------------
# full training step
# ----------------------------------------------------------------------
def build_densevit(spec: BenchmarkSpec) -> nn.Module:
    """DenseViT with the benchmark's sizes (DenseCL-equivalent settings)."""
    arch = spec.arch_settings()
    losses = dict(
        queue_len=spec.queue_len,
        feat_dim=spec.feat_dim,
        temperature=spec.temperature)
    return MODELS.build(
        dict(
            type='DenseViT',
            backbone=dict(
                type='DenseViTBackbone', arch=arch, img_size=spec.img_size),
            neck=dict(
                type='DenseProjectionNeck',
                in_channels=arch['embed_dims'],
                hid_channels=spec.hid_channels,
                out_channels=spec.feat_dim),
            dense_loss=dict(type='DenseContrastiveLoss', **losses),
            global_loss=dict(type='GlobalContrastiveLoss', **losses),
            loss_lambda=0.5,
            # mmpretrain's DenseCL momentum=0.001 below is this 0.999.
            momentum=0.999))


def build_densecl(spec: BenchmarkSpec) -> nn.Module:
    """mmpretrain's own DenseCL, built from mmpretrain's registry."""
    from mmpretrain.registry import MODELS as MMP
    arch = spec.arch_settings()
    return MMP.build(
        dict(
            type='DenseCL',
            # out_type='featmap': a 1-tuple with the (B, C, H, W) patch grid,
            # the ResNet-like output DenseCL and DenseCLNeck consume.
            backbone=dict(
                type='VisionTransformer',
                arch=arch,
                img_size=spec.img_size,
                patch_size=PATCH_SIZE,
                out_type='featmap'),
            neck=dict(
                type='DenseCLNeck',
                in_channels=arch['embed_dims'],
                hid_channels=spec.hid_channels,
                out_channels=spec.feat_dim,
                num_grid=None),
            head=dict(
                type='ContrastiveHead',
                loss=dict(type='CrossEntropyLoss'),
                temperature=spec.temperature),
            queue_len=spec.queue_len,
            feat_dim=spec.feat_dim,
            momentum=0.001,  # mmpretrain counts the EMA the other way
            loss_lambda=0.5))


def _views(spec: BenchmarkSpec) -> Tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(spec.seed + 1)
    shape = (spec.batch, 3, spec.img_size, spec.img_size)
    return (torch.randn(shape, generator=gen).to(spec.device),
            torch.randn(shape, generator=gen).to(spec.device))


def _sgd(module: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.SGD(params, **_OPTIM)


def _step_fn(case: str, spec: BenchmarkSpec, view_q: Tensor, view_k: Tensor
             ) -> Tuple[Callable[[], Optional[Dict[str, Tensor]]], nn.Module]:
    """The step closure of ``case`` and the module it trains.

    The model steps keep their last loss dict in ``step.last_losses``.
    """
    if case == 'step_backbone':
        from densevit.models.backbones import DenseViTBackbone
        online = DenseViTBackbone(
            arch=spec.arch_settings(), img_size=spec.img_size)
        key = copy.deepcopy(online).requires_grad_(False)
        module = nn.ModuleList([online, key]).to(spec.device).train()
        optim = _sgd(online)

        def step() -> None:
            with _autocast(spec):
                cls, patches = online(view_q)
                with torch.no_grad():
                    key(view_k)
            # The cheapest scalar that back-propagates through the whole ViT.
            (cls.float().mean() + patches.float().mean()).backward()
            optim.step()
            optim.zero_grad(set_to_none=True)

        return step, module

    # No init_weights(): initialisation does not change the cost of a step,
    # the key encoders already start equal to the online ones (DenseViT's is
    # a deep copy, DenseCL's EMA copies on its first update), and mmengine
    # would log every parameter.
    model = build_densevit(spec) if case == 'step_densevit' \
        else build_densecl(spec)
    model = model.to(spec.device).train()
    optim = _sgd(model)

    def step() -> Dict[str, Tensor]:
        with _autocast(spec):
            losses = model.loss([view_q, view_k], None)
        step.last_losses = losses
        sum(losses.values()).backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        if case == 'step_densevit':
            # QueueUpdateHook then MomentumUpdateHook, after the optimiser.
            model.update_queues()
            model.momentum_update()
        return losses

    return step, model


def run_step_case(case: str, spec: BenchmarkSpec) -> Dict[str, object]:
    """Time, throughput, memory and MFU of one training-step case."""
    memory = PeakMemory(spec.device)
    memory.mark_runtime()
    torch.manual_seed(spec.seed)
    view_q, view_k = _views(spec)
    step, _ = _step_fn(case, spec, view_q, view_k)
    memory.start()
    times = time_iterations(step, spec.iters, spec.warmup, spec.device)
    result = dict(summarise_times(times), **memory.stop())
    result['memory_method'] = memory.method
    result['img_per_s'] = spec.batch / (result['ms_median'] / 1e3)
    _add_flops(result, spec, 'backbone' if case == 'step_backbone' else 'step')
    if case != 'step_backbone':  # the last measured step's losses
        result['losses'] = {
            k: float(v.detach())
            for k, v in step.last_losses.items()
        }
    return result


def _add_flops(result: Dict[str, object], spec: BenchmarkSpec,
               kind: str) -> None:
    flops = benchmark_flops(spec.arch_settings(), spec.img_size, spec.batch,
                            spec.queue_len, spec.feat_dim,
                            spec.hid_channels)[kind]
    achieved = flops / (result['ms_median'] / 1e3) / 1e12
    result['model_tflop'] = flops / 1e12
    result['achieved_tflops'] = achieved
    result['mfu'] = achieved / spec.peak_tflops if spec.peak_tflops else None


def run_case(case: str, spec: BenchmarkSpec) -> Dict[str, object]:
    """Run one named case in this process and return its measurements."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    if case == 'loss_check':
        return run_loss_check(spec)
    if case in ('loss_fused', 'loss_materialised'):
        return run_loss_case(spec, fused=case == 'loss_fused')
    if case in STEP_CASES:
        return run_step_case(case, spec)
    raise ValueError(f'Unknown benchmark case {case!r}; expected one of '
                     f'{LOSS_CASES + STEP_CASES}.')


def _worker_main(argv) -> None:
    case, spec_json = argv
    result = run_case(case, BenchmarkSpec.from_json(spec_json))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == '__main__':
    _worker_main(sys.argv[1:])
