"""DenseViT sharded with FSDP on two CPU processes (gloo), through the
shipped ViT-L FSDP config shrunk to a 2-layer 32-d ViT: the key-encoder EMA
on the shards, the queues, checkpoints and resume."""
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.logging import MessageHub
from mmengine.runner import loops
from torch import nn
from torch.distributed.fsdp import (FullOptimStateDictConfig,
                                    FullStateDictConfig,
                                    FullyShardedDataParallel, StateDictType)

from fsdp_toys import tiny_config, train

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(),
    reason='CPU processes (gloo); tools/device_check.sh runs FSDP on GPUs')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_ranks(run_rank, *args, world_size: int = 2) -> dict:
    """Run ``run_rank(rank, *args, results)`` in ``world_size`` forked
    processes of one gloo group; return what they put in ``results``."""
    results = mp.Manager().dict()
    port = free_port()

    def rank_main(rank):
        os.environ.update(
            MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
            LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
        torch.set_num_threads(1)
        loops.time.sleep = lambda seconds: None  # no 2 s epoch pauses
        torch_dist.init_process_group('gloo')
        try:
            run_rank(rank, *args, results)
        finally:
            torch_dist.destroy_process_group()

    mp.start_processes(rank_main, nprocs=world_size, start_method='fork')
    return dict(results)


def train_under_strategies(rank, root, results) -> None:
    root = Path(root)
    straight, straight_queues = train(tiny_config(root / 'fsdp'))
    # A job stopped after epoch 1, resumed with --resume (no path).
    if rank == 0:
        (root / 'resumed').mkdir()
        shutil.copy(root / 'fsdp' / 'epoch_1.pth', root / 'resumed')
        (root / 'resumed' / 'last_checkpoint').write_text('epoch_1.pth')
    torch_dist.barrier()
    resume_cfg = tiny_config(root / 'resumed')
    resume_cfg.resume = True
    resumed, resumed_queues = train(resume_cfg)
    ddp_cfg = tiny_config(root / 'ddp')
    ddp_cfg.strategy = dict(type='DDPStrategy')
    ddp, _ = train(ddp_cfg)
    # The shipped configs probe the frozen features during training.
    probed = tiny_config(root / 'probed')
    probed.train_cfg.max_epochs = 1
    probed.probe_dataloader = dict(
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='SyntheticShapes', num_samples=16, img_size=32,
            num_classes=6, seed=4, test_mode=True,
            pipeline=[dict(type='ResizeWithMask', size=32),
                      dict(type='PackDenseInputs')]))
    probed.custom_hooks.append(
        dict(type='ProbeHook', dataloader='probe_dataloader', interval=1,
             evaluator=[dict(type='KNNAccuracy', num_classes=6),
                        dict(type='LinearProbeAccuracy', num_classes=6)]))
    train(probed)
    probes = {name: MessageHub.get_current_instance().get_scalar(
        name).current() for name in ('knn/top1', 'linear_probe/top1')}
    # The key encoder's stem and neck left in the root FSDP unit with the
    # online ones: its shards no longer line up.
    misaligned = tiny_config(root / 'misaligned')
    misaligned.strategy.model_wrapper.auto_wrap_policy.module_types = [
        'mmpretrain.models.backbones.vision_transformer.'
        'TransformerEncoderLayer'
    ]
    try:
        train(misaligned)
        refusal = None
    except ValueError as exc:
        refusal = str(exc)
    results[rank] = dict(
        straight=(straight.losses, straight.ema_errors, straight.ema_moves,
                  straight.params),
        straight_queues=straight_queues,
        resumed=(resumed.losses, resumed.params),
        resumed_queues=resumed_queues,
        ddp=(ddp.losses, ddp.params),
        probes=probes,
        refusal=refusal)


def assert_same_params(ours: dict, theirs: dict, atol: float = 0.0):
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=atol,
                                   rtol=0, msg=name)


def test_densevit_trains_and_resumes_under_fsdp(tmp_path):
    results = start_ranks(train_under_strategies, str(tmp_path))
    losses, ema_errors, ema_moves, params = results[0]['straight']
    assert len(losses) == 4 and all(map(torch.isfinite, map(torch.tensor,
                                                            losses)))
    # The EMA of the shards is the EMA of the whole parameters.
    assert max(ema_errors) < 1e-6
    assert min(ema_moves[:2]) > 1e-3  # measurable steps (the cosine ends at 0)
    # Both ranks hold the same queues (and, gathered, the same model).
    for run in ('straight_queues', 'resumed_queues'):
        for loss, (keys, ptr) in results[0][run].items():
            other_keys, other_ptr = results[1][run][loss]
            assert torch.equal(keys, other_keys) and ptr == other_ptr
            assert ptr == 4 * 2 * 2 % 16  # 4 steps of 2 ranks x 2 images
    # Resuming from the epoch-1 checkpoint continues exactly.
    resumed_losses, resumed_params = results[0]['resumed']
    assert resumed_losses == losses[2:]
    for ours, straight in zip(resumed_params, params[2:]):
        assert_same_params(ours, straight)
    for loss, (keys, _) in results[0]['resumed_queues'].items():
        assert torch.equal(keys, results[0]['straight_queues'][loss][0])
    # Sharding changes nothing: DDP (same FlexibleRunner) trains alike.
    ddp_losses, ddp_params = results[0]['ddp']
    assert ddp_losses == pytest.approx(losses, abs=1e-6)
    assert_same_params(ddp_params[-1], params[-1], atol=1e-6)
    # One file by rank 0, the unwrapped layout, loadable weights-only, with
    # every optimizer state of its own.
    checkpoint = torch.load(tmp_path / 'fsdp' / 'epoch_1.pth',
                            weights_only=True)
    assert_same_params(
        {name: value for name, value in checkpoint['state_dict'].items()
         if name in params[1]}, params[1])
    assert params[1].keys() <= checkpoint['state_dict'].keys()
    states = checkpoint['optimizer']['state']
    assert not any(torch.equal(s['exp_avg'], s['exp_avg_sq'])
                   for s in states.values())
    assert len(checkpoint['rng_states']) == 2
    # ProbeHook's metrics (fitted on rank 0, broadcast) reach every rank.
    assert results[0]['probes'] == results[1]['probes']
    assert all(0 <= top1 <= 100 for top1 in results[0]['probes'].values())
    # A key encoder sharded unlike the online one is refused, on each rank.
    for rank in (0, 1):
        assert 'do not line up' in results[rank]['refusal']


def offloaded_optimizer_states(rank, results) -> None:
    torch.manual_seed(0)
    model = FullyShardedDataParallel(
        nn.Linear(3, 2), device_id='cpu', use_orig_params=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).square().sum().backward()
    optimizer.step()
    aliased = {}
    for offload in (True, False):
        FullyShardedDataParallel.set_state_dict_type(
            model, StateDictType.FULL_STATE_DICT,
            FullStateDictConfig(rank0_only=True, offload_to_cpu=offload),
            FullOptimStateDictConfig(rank0_only=True,
                                     offload_to_cpu=offload))
        # rank0_only: the other ranks get an empty dict.
        states = FullyShardedDataParallel.optim_state_dict(
            model, optimizer).get('state', {})
        aliased[offload] = [
            torch.equal(s['exp_avg'], s['exp_avg_sq'])
            for s in states.values()
        ]
    results[rank] = aliased


def test_stock_offloaded_optimizer_states_alias_on_cpu():
    """Premise (compat entry 10 (e)): torch's full optimizer state dict,
    offloaded to the CPU from CPU shards, gives every state of a parameter
    the values of the last one gathered; without the offload it does not."""
    aliased = start_ranks(offloaded_optimizer_states)[0]
    assert aliased[True] and all(aliased[True])
    assert aliased[False] and not any(aliased[False])
