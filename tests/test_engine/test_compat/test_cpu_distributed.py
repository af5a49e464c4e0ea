import logging
import os
import socket
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dist import init_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import Runner
from torch import nn

from densevit.engine.compat import (clear_ddp_device_ids,
                                    start_cpu_process_group)

# Stand-ins for srun and scontrol.
FAKE_SLURM = Path(__file__).resolve().parents[2] / 'fake_slurm'

needs_no_gpu = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the workaround is for CPU machines')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def unset_during_test(monkeypatch, *names):
    """Unset ``names``; what the code under test sets them to is undone
    after the test (monkeypatch restores the value before its first
    change)."""
    for name in names:
        monkeypatch.setenv(name, '')
        monkeypatch.delenv(name)


# set_multi_processing (as the Runner calls it) sets these for a
# distributed run: they must not leak into the tests that follow.
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')


@pytest.fixture
def torchrun_env(monkeypatch):
    """The environment torchrun gives a single process; the process group
    started under it is destroyed afterwards."""
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    for name in ('RANK', 'LOCAL_RANK'):
        monkeypatch.setenv(name, '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    unset_during_test(monkeypatch, *THREAD_VARIABLES)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture
def slurm_env(monkeypatch):
    """What srun gives the one task of a one-task job, and an ``scontrol``
    that names this machine for the node list (mmengine asks it for the
    master address); the environment mmengine derives from them and the
    process group are undone afterwards."""
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_LOCALID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'localhost')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    monkeypatch.setenv('PATH', f'{FAKE_SLURM}{os.pathsep}{os.environ["PATH"]}')
    # mmengine derives these from the Slurm variables.
    unset_during_test(monkeypatch, 'MASTER_ADDR', 'RANK', 'LOCAL_RANK',
                      'WORLD_SIZE', *THREAD_VARIABLES)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model_wrapper_cfg):
    """``Runner.wrap_model`` of a distributed runner, without building one."""
    runner = types.SimpleNamespace(
        distributed=True, cfg=Config(), logger=logging.getLogger(__name__))
    return Runner.wrap_model(runner, model_wrapper_cfg, nn.Linear(2, 2))


class SetDeviceCalled(Exception):
    pass


@pytest.mark.parametrize('launcher', ['pytorch', 'slurm'])
def test_mmengine_init_dist_needs_a_gpu(launcher, request, monkeypatch):
    """Premise: mmengine calls torch.cuda.set_device even for gloo, for the
    torchrun and the Slurm launcher, which raises on a machine without a
    GPU."""
    request.getfixturevalue(dict(pytorch='torchrun_env',
                                 slurm='slurm_env')[launcher])

    def set_device(device):
        raise SetDeviceCalled(device)

    monkeypatch.setattr(torch.cuda, 'set_device', set_device)
    with pytest.raises(SetDeviceCalled):
        init_dist(launcher, backend='gloo')
    assert not dist.is_initialized()


@needs_no_gpu
def test_cpu_process_group_and_ddp_wrapper(torchrun_env):
    cfg = Config(dict(launcher='pytorch'))
    assert start_cpu_process_group(cfg) == [
        'no GPU: gloo process group started for the pytorch launcher'
    ]
    assert dist.get_backend() == 'gloo'
    assert start_cpu_process_group(cfg) == []  # already started
    # Premise: mmengine's default wrapper gets device_ids=[LOCAL_RANK].
    with pytest.raises(ValueError, match='device_ids'):
        wrap(None)
    clear_ddp_device_ids(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', device_ids=None)
    assert isinstance(wrap(cfg.model_wrapper_cfg), MMDistributedDataParallel)


@needs_no_gpu
def test_cpu_process_group_for_the_slurm_launcher(slurm_env):
    """``--launcher slurm`` (tools/slurm_train.sh) on a CPU machine: rank,
    world size and master address come from srun's variables and
    ``scontrol``, as mmengine reads them; the config's ``dist_cfg`` is
    honoured, except for its GPU backend."""
    cfg = Config(dict(
        launcher='slurm',
        env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=600))))
    set_device = torch.cuda.set_device
    assert start_cpu_process_group(cfg) == [
        'no GPU: gloo process group started for the slurm launcher'
    ]
    assert dist.get_backend() == 'gloo'
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
    assert os.environ['MASTER_ADDR'] == 'localhost'
    assert torch.cuda.set_device is set_device  # restored


def test_nothing_changes_without_a_launcher():
    cfg = Config(dict(launcher='none'))
    clear_ddp_device_ids(cfg)
    assert start_cpu_process_group(cfg) == []
    assert 'model_wrapper_cfg' not in cfg
    assert not dist.is_initialized()
