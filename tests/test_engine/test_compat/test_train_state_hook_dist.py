"""Two CPU ranks (gloo): every rank's RNG state is saved and restored."""
import os
import socket

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.runner import loops

from engine_toys import Crash, CrashAt, ToyContrastiveModel, build_runner

HOOKS = [
    dict(type='QueueUpdateHook'),
    dict(type='MomentumUpdateHook'),
    dict(type='TrainStateHook'),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_rank(rank, world_size, port, work_dir, results):
    os.environ.update(
        MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
        LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    loops.time.sleep = lambda seconds: None  # forked child: no 2 s pauses
    torch_dist.init_process_group('gloo', rank=rank, world_size=world_size)
    dist_args = dict(
        launcher='pytorch',
        # Runner reads the wrapper from cfg; device_ids=None for CPU DDP.
        cfg=dict(model_wrapper_cfg=dict(
            type='MMDistributedDataParallel', device_ids=None)),
        # Each rank its own random stream, as in real data-parallel training.
        randomness=dict(seed=0, diff_rank_seed=True),
        max_iters=6, ckpt_interval=3, val_interval=3)
    try:
        straight = build_runner(
            f'{work_dir}/straight', custom_hooks=HOOKS, **dist_args)
        straight.train()
        crashed = build_runner(
            f'{work_dir}/resumed', custom_hooks=HOOKS + [CrashAt(3)],
            **dist_args)
        try:
            crashed.train()
        except Crash:
            pass
        model = ToyContrastiveModel()
        resumed = build_runner(
            f'{work_dir}/resumed', model=model, custom_hooks=HOOKS,
            resume=True, **dist_args)
        resumed.train()
        results[rank] = (straight.model.module.losses[3:], model.losses)
    finally:
        torch_dist.destroy_process_group()


def test_two_ranks_resume_identically(tmp_path):
    results = mp.Manager().dict()
    mp.start_processes(
        run_rank, args=(2, free_port(), str(tmp_path), results), nprocs=2,
        start_method='fork')
    checkpoint = torch.load(
        tmp_path / 'resumed' / 'iter_3.pth', weights_only=True)
    states = checkpoint['rng_states']
    assert len(states) == 2
    assert not torch.equal(states[0]['torch'], states[1]['torch'])
    for rank in range(2):
        straight, resumed = results[rank]
        assert len(resumed) == 3
        assert resumed == pytest.approx(straight, abs=1e-6)
