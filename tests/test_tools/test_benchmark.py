"""tools/benchmark/ at tiny sizes: outputs, correctness check, FLOP counts.

Timings are not asserted (they depend on the machine); what must hold is
that every case runs, reports its fields, and the fused loss agrees with the
materialised one.
"""
import importlib.util
import json
import math
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL_DIR = osp.join(ROOT, 'tools', 'benchmark')
# The tool's modules import each other as scripts beside benchmark.py do.
sys.path.insert(0, TOOL_DIR)

from bench_flops import benchmark_flops  # noqa: E402
from bench_measure import time_calls  # noqa: E402
from bench_run import failures, run_benchmark, run_isolated  # noqa: E402
from bench_spec import BenchmarkSpec  # noqa: E402
from bench_step import make_step, make_views  # noqa: E402

TINY_ARGS = [
    '--arch', 'deit-tiny', '--depth', '1', '--batch', '2', '--img-size', '32',
    '--queue-len', '64', '--feat-dim', '16', '--hid-channels', '64',
    '--iters', '2', '--warmup', '1'
]


def _tiny_spec(**kwargs) -> BenchmarkSpec:
    settings = dict(
        arch='deit-tiny',
        depth=1,
        batch=2,
        img_size=32,
        queue_len=64,
        feat_dim=16,
        hid_channels=64,
        iters=2,
        warmup=1)
    settings.update(kwargs)
    return BenchmarkSpec(**settings)


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'densevit_benchmark_tool', osp.join(TOOL_DIR, 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_timed(row: dict) -> None:
    assert 'error' not in row, row.get('error')
    assert row['ms_per_iter'] > 0
    for key in ('peak_mib', 'extra_peak_mib', 'model_tflop',
                'achieved_tflops', 'memory_method'):
        assert key in row


def test_cli_all_modes_in_process(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    results = _load_tool().main(TINY_ARGS +
                                ['--isolate', 'never', '--out', str(out)])
    report = capsys.readouterr().out

    loss = results['loss']
    assert loss['num_queries'] == 2 * 4  # 32 px -> a 2x2 grid
    assert loss['check']['passed'], loss['check']
    assert loss['check']['tolerance'] == 1e-4
    assert math.isclose(loss['check']['loss_fused'],
                        loss['check']['loss_materialised'], rel_tol=1e-4)
    _assert_timed(loss['fused'])
    _assert_timed(loss['materialised'])
    assert loss['speedup'] > 0 and loss['memory_reduction'] is not None

    step = results['step']
    for key in ('densevit', 'densecl', 'backbone'):
        _assert_timed(step[key])
        assert step[key]['img_per_s'] > 0
        assert step[key]['mfu'] is None  # CPU without --peak-tflops
    assert set(step['densevit']['losses']) == {
        'loss_global', 'loss_dense', 'dims_cls', 'dims_dense'}
    assert set(step['densecl']['losses']) == {'loss_single', 'loss_dense'}
    for losses in (step['densevit']['losses'], step['densecl']['losses']):
        assert all(math.isfinite(v) for v in losses.values())
    for key in ('img_per_s_ratio', 'peak_memory_ratio', 'step_over_backbone'):
        assert step[key] is not None and step[key] > 0

    assert failures(results) == []
    assert len(results['targets']) == 5
    # Targets are judged only at their own sizes, never at test sizes.
    assert all(not t['applies'] and t['met'] is None
               for t in results['targets'])
    assert results['meta']['arch_settings']['num_layers'] == 1
    assert 'PASSED' in report and 'mmpretrain DenseCL' in report
    on_disk = json.loads(out.read_text())
    assert on_disk['loss']['check']['passed']
    assert on_disk['meta']['command'].startswith(
        'python tools/benchmark/benchmark.py')


def test_isolated_worker_bf16_check():
    # The CPU path runs each case in a freshly spawned worker; bf16 uses
    # autocast and the looser tolerance.
    result = run_isolated('loss_check', _tiny_spec(precision='bf16'))
    assert 'error' not in result, result.get('error')
    assert result['tolerance'] == 2e-2
    assert result['passed'], result


@pytest.mark.parametrize('case,kind', [('step_densecl', 'step'),
                                       ('step_backbone', 'backbone')])
def test_analytic_flops_match_flop_counter(case, kind):
    # mmpretrain's DenseCL runs every product as a countable matmul (the
    # materialised loss included); with the math SDPA backend attention does
    # too, so the analytic count must agree with FlopCounterMode.
    spec = _tiny_spec(batch=4, img_size=64, queue_len=256, feat_dim=32)
    step, _ = make_step(case, spec, *make_views(spec))
    step()  # the EMA's first update is a copy; count a steady-state step
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        step()
    expected = benchmark_flops(spec.arch_settings(), spec.img_size,
                               spec.batch, spec.queue_len, spec.feat_dim,
                               spec.hid_channels)[kind]
    assert fc.get_total_flops() == pytest.approx(expected, rel=1e-3)


def test_failures_reports_errors_and_failed_check():
    results = dict(
        loss=dict(
            check=dict(passed=False), fused=dict(error='boom'),
            materialised={}),
        step=dict(densevit={}, densecl={}, backbone={}))
    problems = failures(results)
    assert len(problems) == 2 and 'loss fused: boom' in problems[1]


@pytest.mark.parametrize('kwargs,match', [
    (dict(batch=3, queue_len=64), 'queue-len'),
    (dict(img_size=40), 'img-size'),
    (dict(precision='fp16'), 'precision'),
    (dict(loss_impl='triton'), 'loss-impl'),
    (dict(temperature=0.0), 'temperature'),
])
def test_invalid_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_benchmark(_tiny_spec(**kwargs), mode='all', log=None)


def test_queue_constraint_only_for_step_modes():
    # queue_len % batch == 0 is DenseCL's rule; the loss alone does not need
    # it, so only the step modes enforce it.
    spec = _tiny_spec(batch=3, queue_len=64)
    spec.validate(step_cases=False)
    with pytest.raises(ValueError, match='DenseCL'):
        spec.validate(step_cases=True)


def test_loss_impl_chunked_times_the_fallback_path(monkeypatch, capsys):
    import densevit.models.losses.fused_info_nce as fused_module
    calls = []
    chunked = fused_module._chunked_lse_and_output

    def spy(*args):
        calls.append(args[0].shape)
        return chunked(*args)

    monkeypatch.setattr(fused_module, '_chunked_lse_and_output', spy)
    results = _load_tool().main(TINY_ARGS + [
        '--mode', 'loss', '--loss-impl', 'chunked', '--isolate', 'never'
    ])
    report = capsys.readouterr().out
    # check + warm-up (ours, then the Timer's) + timed iterations, all
    # through the chunked path.
    assert len(calls) >= 1 + 1 + 2
    assert results['loss']['check']['passed']
    assert 'info_nce impl=chunked (DenseViT)' in report
    assert all(t['met'] is None for t in results['targets'])


def test_cli_bad_option_exits_2_with_the_fix_not_a_traceback():
    proc = subprocess.run(
        [sys.executable, osp.join(TOOL_DIR, 'benchmark.py'),
         '--mode', 'loss', '--img-size', '40'],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert '--img-size must be a multiple' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_time_calls_reports_mean_ms_per_call_with_the_run_threads():
    calls, threads = [], []

    def fn():
        calls.append(None)
        threads.append(torch.get_num_threads())
        time.sleep(0.01)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ms = time_calls(fn, iters=3, warmup=1)
    finally:
        torch.set_num_threads(before)
    # Milliseconds per call, not seconds or a total over the calls.
    assert 10 <= ms < 100
    # At least our warm-up and the timed calls (the Timer adds its own).
    assert len(calls) >= 1 + 3
    # Timer would run the statement single-threaded unless told otherwise.
    assert set(threads) == {2}
