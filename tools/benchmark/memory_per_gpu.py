"""Memory of one DenseViT training step per process, unsharded or sharded
with FSDP as a config's ``strategy`` says.

One process: the model as under DDP (every process holds all of it)::

    python tools/benchmark/memory_per_gpu.py CONFIG --batch 4

N processes: FSDP with the config's wrap policy, each process reports its
own memory (gloo on a CPU machine, NCCL with GPUs)::

    torchrun --nproc_per_node 2 tools/benchmark/memory_per_gpu.py \\
        CONFIG --batch 4

A step is what training does: two views through the online encoder with
gradients and the key encoder without, both losses, backward, AdamW step
(the config's betas and weight decay), enqueue and key-encoder EMA. The
step runs once to create the gradients and AdamW state, then is measured
again. Printed as one JSON line (``--out`` writes it too):

- ``state_mib``: memory held between steps (weights of both encoders,
  AdamW state, queues; the gradients are freed between steps, as
  mmengine's ``OptimWrapper.zero_grad`` does), above the runtime;
- ``forward_extra_mib``: peak of the forward pass above that (the
  activations kept for backward, and temporaries); its growth with
  ``--batch`` is the activation memory per image;
- ``step_extra_mib``: peak of the whole step above the state (the
  backward frees activations while it creates the gradients, so with
  large weights and a small batch the gradients set the peak).

Memory is read by ``bench_measure.PeakMemory``: CUDA tensor memory, or on a
CPU the resident set (VmHWM, reset before the step). docs/distributed.md
tabulates the results.
"""
import argparse
import json
import os
import sys

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import MessageHub

from bench_measure import PeakMemory

_MIB = float(1 << 20)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a DenseViT training config')
    parser.add_argument('--batch', type=int, default=4,
                        help='images per process and step (two views each)')
    parser.add_argument('--arch', default=None,
                        help="override the backbone arch, e.g. 'large'")
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--precision', choices=['fp32', 'bf16'],
                        default='fp32',
                        help='bf16: autocast, and bf16 FSDP compute weights')
    parser.add_argument('--out', default=None, help='also write the JSON')
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f'--batch must be >= 1, got {args.batch}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no GPU is visible')
    return args


def build_model(cfg: Config, device: torch.device):
    from densevit.registry import MODELS
    model = MODELS.build(cfg.model).to(device).train()
    if dist.is_initialized() and dist.get_world_size() > 1:
        from mmengine.model import MMFullyShardedDataParallel
        wrapper = dict(cfg.strategy.model_wrapper)
        mixed = wrapper.pop('mixed_precision', None)
        model = MMFullyShardedDataParallel(
            module=model,
            device_id=device,
            mixed_precision=mixed if device.type == 'cuda' else None,
            **wrapper)
    return model


def make_step(model, cfg: Config, batch: int, device: torch.device,
              bf16: bool):
    inner = getattr(model, 'module', model)
    hyper = {k: v for k, v in cfg.optim_wrapper.optimizer.items()
             if k in ('lr', 'betas', 'weight_decay')}
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], **hyper)
    size = cfg.model.backbone.img_size
    views = [torch.randn(batch, 3, size, size, device=device)
             for _ in range(2)]
    # The cosine momentum reads the run length from the message hub.
    MessageHub.get_current_instance().update_info('max_iters', 100)

    def step(after_forward=None):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            losses = model(views, None, mode='loss')
        if after_forward is not None:
            after_forward()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        inner.update_queues()
        inner.momentum_update(1)

    step.optimizer = optimizer
    return step


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.arch:
        cfg.model.backbone.arch = args.arch
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size > 1:
        dist.init_process_group('nccl' if args.device == 'cuda' else 'gloo')
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = torch.device(
        f'cuda:{local_rank}' if args.device == 'cuda' else 'cpu')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    import densevit.models  # noqa: F401 (registers the model)

    memory = PeakMemory(device)
    memory.mark_runtime()
    model = build_model(cfg, device)
    step = make_step(model, cfg, args.batch, device,
                     args.precision == 'bf16')
    step()  # the AdamW state exists from here on
    step.optimizer.zero_grad(set_to_none=True)  # as between training steps
    memory.start()
    forward = {}
    step(after_forward=lambda: forward.update(memory.stop()))
    measured = memory.stop()
    inner = getattr(model, 'module', model)
    result = dict(
        config=os.path.basename(args.config),
        arch=cfg.model.backbone.arch,
        batch=args.batch,
        world_size=world_size,
        rank=dist.get_rank() if world_size > 1 else 0,
        device=str(device),
        precision=args.precision,
        online_params=sum(p.numel() for n, p in inner.named_parameters()
                          if not n.startswith('key_encoder.')) if
        world_size == 1 else None,
        state_mib=round(measured['baseline_mib'], 1),
        forward_extra_mib=round(forward['extra_peak_mib'], 1),
        step_extra_mib=round(measured['extra_peak_mib'], 1),
        peak_mib=round(measured['peak_mib'], 1),
        memory_method=memory.method)
    print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    if world_size > 1:
        dist.destroy_process_group()
    return result


if __name__ == '__main__':
    sys.exit(main() and 0)
