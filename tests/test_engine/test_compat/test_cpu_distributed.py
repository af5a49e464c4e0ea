import logging
import socket
import types

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

needs_no_gpu = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the workaround is for CPU machines')


@pytest.fixture
def torchrun_env(monkeypatch):
    """The environment torchrun gives a single process; the process group
    started under it is destroyed afterwards."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(port))
    for name in ('RANK', 'LOCAL_RANK'):
        monkeypatch.setenv(name, '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
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


def test_mmengine_init_dist_needs_a_gpu(torchrun_env, monkeypatch):
    """Premise: mmengine calls torch.cuda.set_device even for gloo, which
    raises on a machine without a GPU."""

    def set_device(device):
        raise SetDeviceCalled(device)

    monkeypatch.setattr(torch.cuda, 'set_device', set_device)
    with pytest.raises(SetDeviceCalled):
        init_dist('pytorch', backend='gloo')
    assert not dist.is_initialized()


@needs_no_gpu
def test_cpu_process_group_and_ddp_wrapper(torchrun_env):
    cfg = Config(dict(launcher='pytorch'))
    assert start_cpu_process_group(cfg) == [
        'no GPU: gloo process group started for the torchrun launcher'
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


def test_nothing_changes_without_a_launcher():
    cfg = Config(dict(launcher='none'))
    clear_ddp_device_ids(cfg)
    assert start_cpu_process_group(cfg) == []
    assert 'model_wrapper_cfg' not in cfg
    assert not dist.is_initialized()
