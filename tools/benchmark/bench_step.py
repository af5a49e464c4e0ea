"""Full training steps: DenseViT, mmpretrain's DenseCL, the ViT alone.

A step is two views, forward, backward, optimiser step, queue update and
momentum (EMA) update:

- ``step_densevit``: ``DenseViT.loss`` + backward + SGD step +
  ``update_queues()`` + ``momentum_update()`` (what the hooks do);
- ``step_densecl``: mmpretrain's ``DenseCL`` built from mmpretrain's registry
  with mmpretrain's ``VisionTransformer(out_type='featmap')`` of the same
  arch, ``DenseCLNeck`` and ``ContrastiveHead``; its ``loss`` enqueues and
  updates the EMA itself, so the step is ``loss`` + backward + SGD step;
- ``step_backbone``: the backbone work alone -- online ViT forward + backward,
  key ViT forward (no grad), SGD step; no neck, losses, queue or EMA.
"""
import copy
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from bench_measure import PeakMemory, measure
from bench_spec import PATCH_SIZE, BenchmarkSpec, autocast
from densevit.models.backbones import DenseViTBackbone
from densevit.registry import MODELS

STEP_CASES = ('step_densevit', 'step_densecl', 'step_backbone')
# DenseCL's published schedule: SGD, lr 0.03, momentum 0.9, wd 1e-4. Used
# for every step case so the optimiser costs the same everywhere.
_OPTIM = dict(lr=0.03, momentum=0.9, weight_decay=1e-4)


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
            momentum=0.001))


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
            momentum=0.001,
            loss_lambda=0.5))


def make_views(spec: BenchmarkSpec) -> Tuple[Tensor, Tensor]:
    """The two batches of views every step case trains on."""
    gen = torch.Generator().manual_seed(spec.seed + 1)
    shape = (spec.batch, 3, spec.img_size, spec.img_size)
    return (torch.randn(shape, generator=gen).to(spec.device),
            torch.randn(shape, generator=gen).to(spec.device))


def _sgd(module: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.SGD(params, **_OPTIM)


def make_step(
    case: str, spec: BenchmarkSpec, view_q: Tensor, view_k: Tensor
) -> Tuple[Callable[[], Optional[Dict[str, Tensor]]], nn.Module]:
    """The step closure of ``case`` and the module it trains.

    The model steps keep their last loss dict in ``step.last_losses``.
    """
    if case == 'step_backbone':
        online = DenseViTBackbone(
            arch=spec.arch_settings(), img_size=spec.img_size)
        key = copy.deepcopy(online).requires_grad_(False)
        module = nn.ModuleList([online, key]).to(spec.device).train()
        optim = _sgd(online)

        def step() -> None:
            with autocast(spec):
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
        with autocast(spec):
            losses = model.loss([view_q, view_k], None)
        step.last_losses = losses
        # mmengine's rule: only keys naming a loss are summed (DenseViT
        # also returns its collapse signals, `dims_*`).
        sum(v for k, v in losses.items() if 'loss' in k).backward()
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
    view_q, view_k = make_views(spec)
    step, _ = make_step(case, spec, view_q, view_k)
    kind = 'backbone' if case == 'step_backbone' else 'step'
    result = measure(step, spec, memory, kind)
    result['img_per_s'] = spec.batch / (result['ms_per_iter'] / 1e3)
    if case != 'step_backbone':  # the last measured step's losses
        result['losses'] = {
            k: float(v.detach())
            for k, v in step.last_losses.items()
        }
    return result
