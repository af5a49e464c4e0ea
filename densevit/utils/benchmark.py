"""Run the benchmark cases, put them side by side, and format the report.

``tools/benchmark.py`` is the command line; this module is what it calls, so
tests and notebooks can run the same thing in-process.
"""
import dataclasses
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
from typing import Dict, List, Optional

import mmengine
import mmpretrain
import torch

from .benchmark_cases import (LOSS_CASES, RESULT_MARKER, STEP_CASES,
                              BenchmarkSpec, run_case)

MODES = dict(
    loss=LOSS_CASES, step=STEP_CASES, all=LOSS_CASES + STEP_CASES)
# The targets: (what, section, ratio key, comparison, bound, the
# settings they are defined at). A target is judged only for a run at those
# settings; otherwise its value is shown for reference.
_CPU_LOSS = dict(device='cpu', batch=16, img_size=224, queue_len=65536,
                 feat_dim=128, precision='fp32')
_H200_STEP = dict(device='cuda', arch='small', batch=256, img_size=224,
                  queue_len=65536, feat_dim=128, precision='bf16')
TARGETS = [
    ('dense loss speed-up, fused vs materialised', 'loss', 'speedup', '>=',
     3.5, _CPU_LOSS),
    ('dense loss extra peak memory, materialised / fused', 'loss',
     'memory_reduction', '>=', 20.0, _CPU_LOSS),
    ('full step img/s, DenseViT / mmpretrain DenseCL', 'step',
     'img_per_s_ratio', '>=', 1.8, _H200_STEP),
    ('full step peak memory, DenseViT / mmpretrain DenseCL', 'step',
     'peak_memory_ratio', '<=', 0.25, _H200_STEP),
    ('DenseViT step time / backbone-alone step time', 'step',
     'step_over_backbone', '<=', 1.10, _H200_STEP),
]


def device_name(device: str) -> str:
    """'NVIDIA H200' or the CPU model from /proc/cpuinfo."""
    if device == 'cuda':
        return torch.cuda.get_device_name()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run_isolated(case: str, spec: BenchmarkSpec) -> Dict[str, object]:
    """One case in a fresh interpreter: its peak RSS is its own."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (root, env.get('PYTHONPATH')) if p)
    proc = subprocess.run(
        [sys.executable, '-m', 'densevit.utils.benchmark_cases', case,
         spec.to_json()],
        capture_output=True,
        text=True,
        env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return dict(error=f'subprocess exited {proc.returncode}: ' +
                ' | '.join(tail))


def _run_in_process(case: str, spec: BenchmarkSpec) -> Dict[str, object]:
    try:
        return run_case(case, spec)
    except RuntimeError as err:  # includes torch.OutOfMemoryError
        return dict(error=f'{type(err).__name__}: {err}'.splitlines()[0])
    finally:
        gc.collect()
        if spec.device == 'cuda':
            torch.cuda.empty_cache()


def autocast_normalize_dtype(spec: BenchmarkSpec) -> Optional[str]:
    """The dtype ``F.normalize`` gives a bf16 tensor under the run's autocast.

    Both losses L2-normalise their bf16 projections under autocast before
    the InfoNCE; this is the dtype the fused kernel then receives, which
    decides between the bf16 flash and the fp32 kernels. (CUDA's autocast
    is expected to compute the norm in fp32, after which the division
    promotes to fp32; CPU's keeps bf16.)
    """
    if spec.precision != 'bf16':
        return None
    x = torch.randn(2, 8, device=spec.device, dtype=torch.bfloat16)
    with torch.autocast(spec.device, dtype=torch.bfloat16):
        return str(torch.nn.functional.normalize(x, dim=1).dtype)


def _load_average() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _ratio(num: Optional[dict], den: Optional[dict],
           key: str) -> Optional[float]:
    if not num or not den or key not in num or key not in den:
        return None
    return num[key] / den[key] if den[key] > 0 else None


def _progress(message: str) -> None:
    print(message, flush=True)


def run_benchmark(spec: BenchmarkSpec,
                  mode: str = 'all',
                  isolate: str = 'auto',
                  log=_progress) -> Dict[str, object]:
    """Run the cases of ``mode`` and return every measurement and ratio.

    Args:
        spec (BenchmarkSpec): sizes and settings.
        mode (str): 'loss', 'step' or 'all'.
        isolate (str): 'auto' (a subprocess per case on CPU, where peak RSS
            cannot be reset reliably otherwise; in-process on CUDA),
            'always' or 'never'.
        log (callable): progress messages; ``None`` for silence.

    Returns:
        dict: ``meta``, ``loss`` and/or ``step`` sections and ``targets``.
    """
    if mode not in MODES:
        raise ValueError(f"--mode must be one of {sorted(MODES)}, got "
                         f'{mode!r}.')
    if isolate not in ('auto', 'always', 'never'):
        raise ValueError("--isolate must be 'auto', 'always' or 'never', "
                         f'got {isolate!r}.')
    spec.validate(step_cases=mode != 'loss')
    if spec.device == 'cuda' and spec.peak_tflops is None:
        spec = dataclasses.replace(spec, peak_tflops=989.0)
    isolated = isolate == 'always' or (isolate == 'auto'
                                       and spec.device == 'cpu')
    runner = _run_isolated if isolated else _run_in_process

    # Other processes on the machine skew CPU timings; record how busy it was.
    load_before = _load_average()
    cases: Dict[str, Dict[str, object]] = {}
    for case in MODES[mode]:
        if log:
            log(f'[benchmark] {case} ...')
        cases[case] = runner(case, spec)
        if log and 'error' in cases[case]:
            log(f'[benchmark] {case} failed: {cases[case]["error"]}')

    results: Dict[str, object] = dict(
        meta=dict(
            date=datetime.date.today().isoformat(),
            device=spec.device,
            device_name=device_name(spec.device),
            threads=spec.threads or torch.get_num_threads(),
            torch=torch.__version__,
            mmpretrain=mmpretrain.__version__,
            mmengine=mmengine.__version__,
            python=platform.python_version(),
            mode=mode,
            isolated_subprocesses=isolated,
            load_average_1min=dict(before=load_before, after=_load_average()),
            autocast_normalize_dtype=autocast_normalize_dtype(spec),
            spec=dataclasses.asdict(spec),
            arch_settings=spec.arch_settings()))
    if mode in ('loss', 'all'):
        fused = cases.get('loss_fused')
        mat = cases.get('loss_materialised')
        results['loss'] = dict(
            num_queries=spec.num_queries,
            batch=spec.batch,
            num_patches=spec.num_patches,
            queue_len=spec.queue_len,
            feat_dim=spec.feat_dim,
            check=cases.get('loss_check'),
            fused=fused,
            materialised=mat,
            speedup=_ratio(mat, fused, 'ms_median'),
            # Below 1 MiB a CPU RSS reading is noise; the floor keeps the
            # ratio finite and conservative.
            memory_reduction=(
                mat['extra_peak_mib'] / max(fused['extra_peak_mib'], 1.0)
                if fused and mat and 'extra_peak_mib' in fused
                and 'extra_peak_mib' in mat else None))
    if mode in ('step', 'all'):
        dv = cases.get('step_densevit')
        cl = cases.get('step_densecl')
        bb = cases.get('step_backbone')
        results['step'] = dict(
            densevit=dv,
            densecl=cl,
            backbone=bb,
            img_per_s_ratio=_ratio(dv, cl, 'img_per_s'),
            peak_memory_ratio=_ratio(dv, cl, 'peak_mib'),
            step_over_backbone=_ratio(dv, bb, 'ms_median'))
    results['targets'] = _targets(results)
    return results


def failures(results: Dict[str, object]) -> List[str]:
    """Cases that errored and a correctness check that did not pass."""
    problems = []
    loss = results.get('loss') or {}
    check = loss.get('check') or {}
    if loss and not check.get('passed'):
        problems.append('loss check: ' + str(check.get('error') or 'FAILED'))
    for section, keys in (('loss', ('fused', 'materialised')),
                          ('step', ('densevit', 'densecl', 'backbone'))):
        for key in keys:
            row = (results.get(section) or {}).get(key) or {}
            if 'error' in row:
                problems.append(f"{section} {key}: {row['error']}")
    return problems


def _targets(results: Dict[str, object]) -> List[Dict[str, object]]:
    spec = results['meta']['spec']
    rows = []
    for what, section, key, op, bound, settings in TARGETS:
        if section not in results:
            continue
        value = results[section][key]
        # The targets are for the default model and the fused loss path.
        applies = all(spec.get(k) == v for k, v in settings.items()) and \
            spec.get('depth') is None and \
            spec.get('loss_impl', 'auto') != 'chunked'
        met = None
        if applies and value is not None:
            met = value >= bound if op == '>=' else value <= bound
        rows.append(
            dict(
                target=what,
                value=value,
                bound=f'{op} {bound}',
                applies=applies,
                met=met,
                defined_at=', '.join(f'{k}={v}'
                                     for k, v in settings.items())))
    return rows


def _fmt(value, spec: str = '.1f', none: str = '-') -> str:
    return none if value is None else format(value, spec)


def format_report(results: Dict[str, object]) -> str:
    """The human-readable tables printed by ``tools/benchmark.py``."""
    meta = results['meta']
    spec = meta['spec']
    arch = meta['arch_settings']
    load = meta['load_average_1min']
    where = ('separate subprocesses'
             if meta['isolated_subprocesses'] else 'this process')
    lines = [
        f"DenseViT benchmark {meta['date']}  device={meta['device']} "
        f"({meta['device_name']}, {meta['threads']} threads)  "
        f"precision={spec['precision']}  torch {meta['torch']}  "
        f"mmpretrain {meta['mmpretrain']}",
        f"iters={spec['iters']} (median reported) warmup={spec['warmup']}  "
        f"cases in {where}; 1-min load average {load['before']} before, "
        f"{load['after']} after",
    ]
    if meta['autocast_normalize_dtype']:
        lines.append('F.normalize of a bf16 tensor under this autocast -> '
                     f"{meta['autocast_normalize_dtype']} (the dtype the "
                     'InfoNCE receives)')
    loss = results.get('loss')
    if loss:
        lines += [
            '',
            f"Dense InfoNCE forward+backward: N = B*S = {loss['batch']}*"
            f"{loss['num_patches']} = {loss['num_queries']} queries, "
            f"K = {loss['queue_len']}, D = {loss['feat_dim']}",
        ]
        check = loss['check'] or {}
        if 'error' in check or not check:
            lines.append(f"  check: FAILED TO RUN ({check.get('error')})")
        else:
            lines.append(
                f"  check: loss fused {check['loss_fused']:.6f} vs "
                f"materialised {check['loss_materialised']:.6f} (rel "
                f"{check['loss_rel_err']:.1e}); grad(q) rel "
                f"{check['grad_rel_err']:.1e}; tolerance "
                f"{check['tolerance']:.0e} -> "
                f"{'PASSED' if check['passed'] else 'FAILED'}")
        lines.append(f"  {'implementation':<34}{'ms (median)':>12}"
                     f"{'extra peak MiB':>16}{'TFLOP/s':>9}")
        impl = spec.get('loss_impl', 'auto')
        fused_name = ('fused info_nce (DenseViT)' if impl == 'auto' else
                      f'info_nce impl={impl} (DenseViT)')
        for name, key in ((fused_name, 'fused'),
                          ('materialised (DenseCL einsum + CE)',
                           'materialised')):
            row = loss[key] or {}
            if 'error' in row:
                lines.append(f"  {name:<34}ERROR {row['error']}")
                continue
            lines.append(
                f"  {name:<34}{_fmt(row.get('ms_median')):>12}"
                f"{_fmt(row.get('extra_peak_mib')):>16}"
                f"{_fmt(row.get('achieved_tflops'), '.3f'):>9}")
        lines.append(
            f"  speed-up {_fmt(loss['speedup'], '.2f')}x; extra peak memory "
            f"1/{_fmt(loss['memory_reduction'], '.0f')} of materialised")
    step = results.get('step')
    if step:
        lines += [
            '',
            f"Training step: ViT {spec['arch']} ({arch['embed_dims']}-d, "
            f"{arch['num_layers']} layers), B={spec['batch']}, "
            f"{spec['img_size']} px (S={spec['img_size'] // 16}^2), "
            f"K={spec['queue_len']}, D={spec['feat_dim']}, neck hidden "
            f"{spec['hid_channels']}",
            f"  {'case':<22}{'ms/step':>10}{'img/s':>9}{'peak MiB':>10}"
            f"{'extra MiB':>11}{'TFLOP/step':>11}{'TFLOP/s':>9}{'MFU':>7}",
        ]
        for name, key in (('DenseViT', 'densevit'),
                          ('mmpretrain DenseCL', 'densecl'),
                          ('backbone alone', 'backbone')):
            row = step[key] or {}
            if 'error' in row:
                lines.append(f"  {name:<22}ERROR {row['error']}")
                continue
            mfu = row.get('mfu')
            mfu_text = '-' if mfu is None else f'{100 * mfu:.1f}%'
            lines.append(
                f"  {name:<22}{_fmt(row.get('ms_median')):>10}"
                f"{_fmt(row.get('img_per_s'), '.2f'):>9}"
                f"{_fmt(row.get('peak_mib'), '.0f'):>10}"
                f"{_fmt(row.get('extra_peak_mib'), '.0f'):>11}"
                f"{_fmt(row.get('model_tflop'), '.3f'):>11}"
                f"{_fmt(row.get('achieved_tflops'), '.3f'):>9}"
                f'{mfu_text:>7}')
        lines.append(
            '  DenseViT / DenseCL: img/s '
            f"{_fmt(step['img_per_s_ratio'], '.2f')}x, peak memory "
            f"{_fmt(step['peak_memory_ratio'], '.3f')}x; DenseViT step / "
            f"backbone alone: {_fmt(step['step_over_backbone'], '.2f')}x")
        if meta['device'] == 'cpu':
            lines.append('  (peak = peak RSS above the interpreter + '
                         'libraries; MFU needs --peak-tflops on CPU)')
    if results['targets']:
        lines += ['', 'Targets (from the issue; judged only at their '
                  'settings):']
        for row in results['targets']:
            met = {True: 'met', False: 'MISSED'}.get(
                row['met'], 'not judged: this run is not at these settings'
                if not row['applies'] else 'n/a')
            lines.append(
                f"  {row['target']}: {_fmt(row['value'], '.3f')} "
                f"(target {row['bound']}, at {row['defined_at']}) {met}")
    return '\n'.join(lines)
