"""FlexibleRunner and FSDPStrategy with DenseViT's checkpoint guarantees
(compat entry 10), and the upstream behaviour each fix answers."""
import copy
import os
import types
import uuid

import pytest
import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy as MMEngineFSDPStrategy
from mmengine.config import Config
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.runner import FlexibleRunner as MMEngineFlexibleRunner
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel

from densevit.engine.compat import (ATOMIC_LOCAL_BACKEND, FlexibleRunner,
                                    FSDPStrategy, adapt_strategy_to_cpu)
from engine_toys import ToyContrastiveModel, ToyDataset
from test_cpu_distributed import needs_no_gpu, torchrun_env  # noqa: F401

STRATEGY = dict(type='SingleDeviceStrategy')


def build(runner_cls, work_dir, max_iters=2, custom_hooks=(), **kwargs):
    """A one-process FlexibleRunner over the engine toys, checkpointing
    with AtomicCheckpointHook every 2 iterations (TrainStateHook makes the
    checkpoints weights-only)."""
    return runner_cls(
        model=ToyContrastiveModel(),
        work_dir=str(work_dir),
        experiment_name=f'test_flexible_runner_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=ToyDataset(8),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(
            type='AtomicCheckpointHook', interval=2, by_epoch=False)),
        strategy=STRATEGY,
        custom_hooks=[dict(type='TrainStateHook'), *custom_hooks],
        default_scope='densevit',
        log_level='WARNING',
        **kwargs)


class RecordBeforeRun(Hook):

    def __init__(self, events):
        self.events = events

    def before_run(self, runner):
        self.events.append('before_run')


def test_stock_flexible_runner_loads_before_before_run(tmp_path):
    """Premise (a): mmengine's FlexibleRunner loads or resumes before the
    before_run hooks, where AtomicCheckpointHook would choose the
    checkpoint."""
    events = []
    runner = build(MMEngineFlexibleRunner, tmp_path, max_iters=1,
                   custom_hooks=[RecordBeforeRun(events)])
    load_or_resume = runner.load_or_resume

    def recording_load_or_resume():
        events.append('load_or_resume')
        return load_or_resume()

    runner.load_or_resume = recording_load_or_resume
    runner.train()
    assert events == ['load_or_resume', 'before_run']


def test_automatic_resume_reads_the_relative_pointer(tmp_path, monkeypatch):
    build(FlexibleRunner, tmp_path, max_iters=2).train()
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_2.pth'
    # mmengine would read the pointer from the current directory.
    monkeypatch.chdir(tmp_path.parent)
    resumed = build(FlexibleRunner, tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert len(resumed.model.losses) == 2  # iterations 3 and 4 only
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_4.pth'


@pytest.fixture
def disk_full_mid_write(monkeypatch):
    """mmengine's local backend writes half of the bytes, then the disk is
    full."""

    def put(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(LocalBackend, 'put', put)


def save_again(runner, tmp_path):
    with pytest.raises(OSError, match='No space left'):
        runner.save_checkpoint(
            str(tmp_path), 'iter_2.pth', by_epoch=False,
            backend_args=dict(backend=ATOMIC_LOCAL_BACKEND))


def test_stock_strategy_writes_in_place(tmp_path, request):
    """Premise (b): the strategy writes with mmengine's in-place local
    backend although AtomicCheckpointHook asks for the atomic one, so a
    failed save leaves a truncated checkpoint."""
    runner = build(MMEngineFlexibleRunner, tmp_path)
    runner.train()
    request.getfixturevalue('disk_full_mid_write')
    save_again(runner, tmp_path)
    with pytest.raises(Exception):
        torch.load(tmp_path / 'iter_2.pth', weights_only=True)


def test_failed_save_keeps_the_checkpoint(tmp_path, request):
    runner = build(FlexibleRunner, tmp_path)
    runner.train()
    saved = (tmp_path / 'iter_2.pth').read_bytes()
    request.getfixturevalue('disk_full_mid_write')
    save_again(runner, tmp_path)
    assert (tmp_path / 'iter_2.pth').read_bytes() == saved
    assert not [p for p in os.listdir(tmp_path) if '.tmp-' in p]


def sharded_adamw(steps=2):
    """An FSDP linear layer on the CPU after ``steps`` AdamW steps, and its
    optimizer (in the one-process group of ``torchrun_env``)."""
    dist.init_process_group('gloo')
    torch.manual_seed(0)
    model = FullyShardedDataParallel(
        nn.Linear(3, 2), device_id='cpu', use_orig_params=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    for _ in range(steps):
        model(torch.randn(4, 3)).square().sum().backward()
        optimizer.step()
    return model, optimizer


@needs_no_gpu
def test_stock_fsdp_needs_a_device_on_cpu(torchrun_env):  # noqa: F811
    """Premise (d): FSDP refuses a CPU module without a device id, and
    mmengine's FSDPStrategy passes LOCAL_RANK, a GPU, otherwise."""
    dist.init_process_group('gloo')
    with pytest.raises(RuntimeError, match='non-CPU accelerator'):
        FullyShardedDataParallel(nn.Linear(2, 2), device_id=None)
    cfg = Config(dict(
        runner_type='FlexibleRunner', launcher='pytorch',
        strategy=dict(type='FSDPStrategy', state_dict_cfg='full')))
    assert adapt_strategy_to_cpu(cfg)
    assert cfg.strategy.model_wrapper == dict(device_id='cpu')
    wrapped = FullyShardedDataParallel(nn.Linear(2, 2),
                                       **cfg.strategy.model_wrapper)
    assert wrapped(torch.ones(1, 2)).shape == (1, 2)
    # Gathered on the CPU, without torch's aliasing offload (entry 10 (e)).
    for config in ('state_dict_config', 'optim_state_dict_config'):
        assert cfg.strategy.state_dict_cfg[config]['offload_to_cpu'] is False


@needs_no_gpu
def test_stock_fsdp_strategy_cannot_load_optimizer_state(
        torchrun_env):  # noqa: F811
    """Premise (c): mmengine's FSDPStrategy passes the optimizer state to
    torch 2's ``optim_state_dict_to_load`` as the model; DenseViT's
    FSDPStrategy restores it."""
    model, optimizer = sharded_adamw()
    # A copy: with one rank, the state dict holds the optimizer's tensors.
    saved = copy.deepcopy(
        FullyShardedDataParallel.optim_state_dict(model, optimizer))
    expected = {name: state['exp_avg'].clone()
                for name, state in saved['state'].items()}
    strategy = types.SimpleNamespace(
        model=model, optim_wrapper=OptimWrapper(optimizer))
    with pytest.raises(TypeError, match='unhashable'):
        MMEngineFSDPStrategy.load_optim_state_dict(strategy, saved)
    for state in optimizer.state.values():
        state['exp_avg'].zero_()
    FSDPStrategy.load_optim_state_dict(strategy, saved)
    restored = FullyShardedDataParallel.optim_state_dict(model, optimizer)
    for name, exp_avg in expected.items():
        assert exp_avg.abs().sum() > 0
        assert torch.equal(restored['state'][name]['exp_avg'], exp_avg)
