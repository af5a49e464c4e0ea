"""Timing and peak-memory probes for the benchmark cases.

Timing: :func:`time_calls` runs ``warmup`` unmeasured calls, then
``torch.utils.benchmark.Timer.timeit(iters)``, which adds a short warm-up of
its own and then times ``iters`` back-to-back calls; the result is the mean
time per call. Its clock synchronises the accelerator before each reading,
so CUDA work is counted when it finishes, and nothing synchronises between
the timed calls.

Memory:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
  -- tensor memory only, exact.
- CPU: the peak resident set size of the process, ``VmHWM`` in
  ``/proc/self/status``. It is process-wide and only ever grows, so before a
  measurement freed heap memory is handed back to the OS (``malloc_trim``)
  and the high-water mark is reset to the current RSS by writing ``5`` to
  ``/proc/self/clear_refs`` (Linux >= 4.0). Where the reset is impossible the
  reading is the peak since process start; the benchmark therefore runs every
  CPU case in a fresh worker process by default, which makes both readings
  equal. Without ``/proc`` (macOS) ``resource.getrusage`` gives the peak,
  unreset.
"""
import ctypes
import gc
import resource
import sys
from typing import Callable, Dict, Optional

import torch
from torch.utils import benchmark

from bench_flops import benchmark_flops

_MIB = float(1 << 20)


def _proc_status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    """Hand memory freed by Python/torch back to the OS (glibc only)."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_rss_peak() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _rss_mib() -> float:
    kib = _proc_status_kib('VmRSS')
    if kib is not None:
        return kib * 1024 / _MIB
    # No /proc: fall back to the peak, the best current figure available.
    return _peak_rss_mib()


def _peak_rss_mib() -> float:
    kib = _proc_status_kib('VmHWM')
    if kib is not None:
        return kib * 1024 / _MIB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux, bytes on macOS.
    return peak / _MIB if sys.platform == 'darwin' else peak * 1024 / _MIB


class PeakMemory:
    """Peak memory of a block of work, absolute and above a baseline.

    Call :meth:`mark_runtime` before building anything the case owns (the
    interpreter, torch and imported libraries are not the case's memory),
    :meth:`start` once the case's inputs/model exist, and :meth:`stop` after
    the measured work.

    Args:
        device (torch.device): where the work runs.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == 'cuda'
        self.runtime_mib = 0.0
        self.baseline_mib = 0.0
        self.peak_reset = True

    def _current(self) -> float:
        if self.cuda:
            return torch.cuda.memory_allocated(self.device) / _MIB
        return _rss_mib()

    @property
    def method(self) -> str:
        if self.cuda:
            return 'torch.cuda.max_memory_allocated (tensor memory)'
        if _proc_status_kib('VmHWM') is not None:
            how = ('reset via /proc/self/clear_refs'
                   if self.peak_reset else 'NOT resettable: peak since start')
            return f'peak RSS, /proc/self/status VmHWM ({how})'
        return 'peak RSS, resource.getrusage ru_maxrss (since start)'

    def mark_runtime(self) -> None:
        """Memory that exists before the case builds anything."""
        if not self.cuda:
            _release_free_heap()
        else:
            torch.cuda.synchronize(self.device)
        self.runtime_mib = self._current()

    def start(self) -> None:
        """Baseline = memory now; peak counting restarts here."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _release_free_heap()
            self.peak_reset = _reset_rss_peak()
        self.baseline_mib = self._current()

    def stop(self) -> Dict[str, float]:
        """Peaks since :meth:`start`.

        Returns:
            dict: ``peak_mib`` (peak above the runtime mark: what the case
            itself held at its worst, comparable to CUDA tensor memory),
            ``extra_peak_mib`` (peak above the baseline: what the measured
            work added on top of its inputs/model), ``baseline_mib`` and
            ``runtime_mib``.
        """
        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / _MIB
        else:
            peak = _peak_rss_mib()
        return dict(
            peak_mib=peak - self.runtime_mib,
            extra_peak_mib=peak - self.baseline_mib,
            baseline_mib=self.baseline_mib - self.runtime_mib,
            runtime_mib=self.runtime_mib)


def time_calls(fn: Callable[[], object], iters: int, warmup: int) -> float:
    """Mean milliseconds per call of ``fn`` over ``iters`` timed calls.

    Args:
        fn: one iteration of the work (it need not synchronise).
        iters (int): timed calls, >= 1.
        warmup (int): untimed calls first (allocator, autotuning, lazily
            created optimiser state), before the Timer's own warm-up.
    """
    for _ in range(warmup):
        fn()
    # Timer runs its statement with 1 thread unless told otherwise; time with
    # the threads this run was configured for.
    timer = benchmark.Timer(
        stmt='fn()', globals=dict(fn=fn), num_threads=torch.get_num_threads())
    return timer.timeit(number=iters).mean * 1e3


def measure(fn: Callable[[], object], spec, memory: PeakMemory,
            flop_kind: str) -> Dict[str, object]:
    """Time ``fn``, read its peak memory and rate its FLOPs.

    Args:
        fn: one iteration of the case.
        spec (BenchmarkSpec): ``iters``, ``warmup``, sizes, ``peak_tflops``.
        memory (PeakMemory): marked before the case built its inputs; peak
            counting restarts here.
        flop_kind (str): the key of :func:`benchmark_flops` for one call.

    Returns:
        dict: ``ms_per_iter``, the :meth:`PeakMemory.stop` fields,
        ``memory_method``, ``model_tflop``, ``achieved_tflops`` and ``mfu``
        (``None`` without ``spec.peak_tflops``).
    """
    memory.start()
    ms = time_calls(fn, spec.iters, spec.warmup)
    result = dict(ms_per_iter=ms, **memory.stop())
    result['memory_method'] = memory.method
    flops = benchmark_flops(spec.arch_settings(), spec.img_size, spec.batch,
                            spec.queue_len, spec.feat_dim,
                            spec.hid_channels)[flop_kind]
    achieved = flops / (ms / 1e3) / 1e12
    result['model_tflop'] = flops / 1e12
    result['achieved_tflops'] = achieved
    result['mfu'] = achieved / spec.peak_tflops if spec.peak_tflops else None
    return result
