"""The CUDA code paths, which the CPU suite cannot reach.

Skipped without a GPU; ``tools/device_check.sh`` runs them on one (with the
H200 benchmark). They hold the CUDA kernels to the same standards as the CPU
tests: fp32 exact to 1e-5 against float64, bf16 within 1e-2, any query
layout, an empty bank, and a bf16 training step that never waits on the GPU.
"""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from densevit.models.losses import info_nce, info_nce_reference
from densevit.registry import MODELS

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')


def unit(*shape):
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=-1)


def relative_error(value, reference):
    return ((value.double().cpu() - reference).norm() /
            reference.norm()).item()


def float64_reference(q, k, negatives, tau):
    q, k = q.clone().requires_grad_(), k.clone().requires_grad_()
    loss = info_nce_reference(q, k, negatives, tau)
    return (loss.detach(), *torch.autograd.grad(loss, [q, k]))


# 37 rows: the memory-efficient kernel pads its logsumexp to 32-row tiles.
@pytest.mark.parametrize('rows', [37, 1000])
@pytest.mark.parametrize('impl', ['fused', 'chunked'])
@pytest.mark.parametrize('tau', [0.1, 0.2])
def test_fp32_matches_float64(rows, impl, tau):
    torch.manual_seed(0)
    q64, k64, n64 = unit(rows, 128), unit(rows, 128), unit(4096, 128)
    ref_loss, ref_gq, ref_gk = float64_reference(q64, k64, n64, tau)
    q = q64.float().cuda().requires_grad_()
    k = k64.float().cuda().requires_grad_()
    loss = info_nce(q, k, n64.float().cuda(), tau, impl=impl)
    loss.backward()
    assert abs(loss.item() - ref_loss.item()) / ref_loss.item() <= 1e-5
    assert relative_error(q.grad, ref_gq) <= 1e-5
    assert relative_error(k.grad, ref_gk) <= 1e-5


@pytest.mark.parametrize('impl', ['fused', 'chunked'])
def test_bf16_within_one_percent(impl):
    torch.manual_seed(1)
    q64, k64, n64 = unit(500, 128), unit(500, 128), unit(4096, 128)
    ref_loss, ref_gq, _ = float64_reference(q64, k64, n64, 0.2)
    q = q64.cuda().bfloat16().requires_grad_()
    loss = info_nce(q, k64.cuda().bfloat16(), n64.cuda().bfloat16(), 0.2,
                    impl=impl)
    loss.backward()
    assert abs(loss.item() - ref_loss.item()) / ref_loss.item() <= 1e-2
    assert q.grad.dtype == torch.bfloat16
    assert relative_error(q.grad, ref_gq) <= 2e-2


def test_transposed_queries_and_empty_bank():
    torch.manual_seed(2)
    q64 = F.normalize(torch.randn(128, 37, dtype=torch.float64).T, dim=1)
    k64, n64 = unit(37, 128), unit(1000, 128)
    ref_loss, ref_gq, _ = float64_reference(q64, k64, n64, 0.2)
    q = q64.float().cuda().requires_grad_()
    assert not q.is_contiguous()
    loss = info_nce(q, k64.float().cuda(), n64.float().cuda(), 0.2)
    loss.backward()
    assert abs(loss.item() - ref_loss.item()) / ref_loss.item() <= 1e-5
    assert relative_error(q.grad, ref_gq) <= 1e-5
    empty = info_nce(q, k64.float().cuda(), torch.zeros(0, 128).cuda(), 0.2)
    assert empty.item() == 0.0


def test_bf16_training_step_never_waits_on_the_gpu(tiny_model_cfg):
    cfg = copy.deepcopy(tiny_model_cfg)
    model = MODELS.build(cfg).cuda()
    model.init_weights()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=0.03, momentum=0.9, weight_decay=1e-4)
    views = [torch.randn(4, 3, 32, 32, device='cuda') for _ in range(2)]

    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            losses = model(views, mode='loss')
        optimizer.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        model.update_queues()
        model.momentum_update()
        return losses

    step()  # first-call set-up (cuBLAS handles, optimiser state) may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        losses = step()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert all(torch.isfinite(v).item() for v in losses.values())
    assert int(model.dense_loss.queue.ptr) == 8


def test_benchmark_cuda_path_at_tiny_sizes(monkeypatch):
    monkeypatch.syspath_prepend(
        str(Path(__file__).resolve().parents[2] / 'tools' / 'benchmark'))
    from bench_run import failures, run_benchmark
    from bench_spec import BenchmarkSpec
    spec = BenchmarkSpec(
        arch='deit-tiny', depth=1, batch=2, img_size=32, queue_len=64,
        feat_dim=16, hid_channels=64, iters=2, warmup=1, device='cuda',
        precision='bf16')
    results = run_benchmark(spec, mode='all', isolate='auto', log=None)
    assert failures(results) == []
    assert results['loss']['check']['passed']
    for case in ('densevit', 'densecl', 'backbone'):
        row = results['step'][case]
        assert 'cuda' in row['memory_method']
        assert row['ms_per_iter'] > 0 and row['mfu'] is not None
