"""Run the benchmark cases, put them side by side and judge the targets.

``benchmark.py`` is the command line; :func:`run_benchmark` is what it
calls, so tests can run the same thing in-process.
"""
import dataclasses
import datetime
import gc
import multiprocessing
import os
import platform
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, List, Optional

import mmengine
import mmpretrain
import torch

from bench_loss import LOSS_CASES, run_loss_case, run_loss_check
from bench_spec import BenchmarkSpec
from bench_step import STEP_CASES, run_step_case

MODES = dict(
    loss=LOSS_CASES, step=STEP_CASES, all=LOSS_CASES + STEP_CASES)
# The targets: (what, section, ratio key, comparison, bound, the settings
# they are defined at). A target is judged only for a run at those settings;
# otherwise its value is shown for reference. docs/performance.md states them.
_CPU_LOSS = dict(device='cpu', batch=16, img_size=224, queue_len=65536,
                 feat_dim=128, precision='fp32')
_H200_STEP = dict(device='cuda', arch='deit-small', batch=256, img_size=224,
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


def run_case(case: str, spec: BenchmarkSpec) -> Dict[str, object]:
    """Run one named case in this process and return its measurements."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    if case == 'loss_check':
        return run_loss_check(spec)
    if case in ('loss_fused', 'loss_materialised'):
        return run_loss_case(spec, fused=case == 'loss_fused')
    if case in STEP_CASES:
        return run_step_case(case, spec)
    raise ValueError(f'Unknown benchmark case {case!r}; expected one of '
                     f'{LOSS_CASES + STEP_CASES}.')


def run_in_process(case: str, spec: BenchmarkSpec) -> Dict[str, object]:
    """:func:`run_case`, with a runtime error (e.g. out of memory) as a row."""
    try:
        return run_case(case, spec)
    except RuntimeError as err:  # includes torch.OutOfMemoryError
        return dict(error=f'{type(err).__name__}: {err}'.splitlines()[0])
    finally:
        gc.collect()
        if spec.device == 'cuda':
            torch.cuda.empty_cache()


def run_isolated(case: str, spec: BenchmarkSpec) -> Dict[str, object]:
    """One case in a freshly spawned worker process: its peak RSS is its own.

    The worker imports this module from the parent's ``sys.path``.
    """
    context = multiprocessing.get_context('spawn')
    try:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            return pool.submit(run_in_process, case, spec).result()
    except BrokenProcessPool as err:  # e.g. killed by the OOM killer
        return dict(error=f'worker process died: {err}')
    except Exception as err:  # noqa: BLE001 -- one case must not end the run
        return dict(error=f'{type(err).__name__}: {err}'.splitlines()[0])


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
        isolate (str): 'auto' (a worker process per case on CPU, where peak RSS
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
    runner = run_isolated if isolated else run_in_process

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
            speedup=_ratio(mat, fused, 'ms_per_iter'),
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
            step_over_backbone=_ratio(dv, bb, 'ms_per_iter'))
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
