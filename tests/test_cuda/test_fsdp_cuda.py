"""The shipped FSDP config on a GPU: bf16 mixed precision (FSDP's and the
AmpOptimWrapper's), ``device_id`` from ``LOCAL_RANK``, full state dicts
offloaded to the CPU, and the resume from them.

One process (NCCL): FSDP does not shard over one rank, so this covers the
CUDA paths; the sharding itself is tested on two CPU processes
(``tests/test_engine/test_fsdp.py``). Skipped without a GPU;
``tools/device_check.sh`` runs it.
"""
import os
import shutil
import socket

import pytest
import torch
import torch.distributed as dist

from test_engine.fsdp_toys import tiny_config, train

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.fixture
def one_gpu_process(monkeypatch):
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


def one_process_config(work_dir):
    """``tiny_config`` with the batch of its two ranks in one process (2
    steps per epoch)."""
    cfg = tiny_config(work_dir)
    cfg.train_dataloader.batch_size = 4
    return cfg


def test_fsdp_config_trains_in_bf16_and_resumes(one_gpu_process, tmp_path):
    cfg = one_process_config(tmp_path / 'straight')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.strategy.model_wrapper.mixed_precision.param_dtype == \
        'bfloat16'
    straight, straight_queues = train(cfg)
    assert all(torch.isfinite(torch.tensor(straight.losses)))
    # The EMA runs on the fp32 weights, not the bf16 compute copies.
    assert max(straight.ema_errors) < 1e-6
    assert min(straight.ema_moves[:2]) > 1e-3  # a measurable EMA step
    checkpoint = torch.load(tmp_path / 'straight' / 'epoch_1.pth',
                            weights_only=True)
    for name, value in straight.params[1].items():
        torch.testing.assert_close(checkpoint['state_dict'][name],
                                   value.cpu(), rtol=0, atol=0, msg=name)
    states = checkpoint['optimizer']['state'].values()
    assert not any(torch.equal(s['exp_avg'], s['exp_avg_sq'])
                   for s in states)

    (tmp_path / 'resumed').mkdir()
    shutil.copy(tmp_path / 'straight' / 'epoch_1.pth', tmp_path / 'resumed')
    (tmp_path / 'resumed' / 'last_checkpoint').write_text('epoch_1.pth')
    resume_cfg = one_process_config(tmp_path / 'resumed')
    resume_cfg.resume = True
    resumed, resumed_queues = train(resume_cfg)
    # GPU kernels may sum in another order from run to run: bf16 tolerance.
    assert resumed.losses == pytest.approx(straight.losses[2:], rel=2e-2)
    for loss, (keys, ptr) in resumed_queues.items():
        assert ptr == straight_queues[loss][1]
    assert os.path.isfile(tmp_path / 'resumed' / 'epoch_2.pth')
