"""Timing and peak-memory probes for ``tools/benchmark.py``.

Timing: wall clock around each iteration on CPU; a pair of CUDA events per
iteration on CUDA (the device time between them, read after one final
synchronisation), so host-side launch overhead that overlaps with device
work is not counted twice. Results are medians over the measured iterations,
after ``warmup`` unmeasured ones.

Memory:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
  -- tensor memory only, exact.
- CPU: the peak resident set size of the process, ``VmHWM`` in
  ``/proc/self/status``. It is process-wide and only ever grows, so before a
  measurement freed heap memory is handed back to the OS (``malloc_trim``)
  and the high-water mark is reset to the current RSS by writing ``5`` to
  ``/proc/self/clear_refs`` (Linux >= 4.0). Where the reset is impossible the
  reading is the peak since process start; the benchmark therefore runs every
  CPU case in a fresh subprocess by default, which makes both readings equal.
  Without ``/proc`` (macOS) ``resource.getrusage`` gives the peak, unreset.
"""
import ctypes
import gc
import resource
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

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


def time_iterations(fn: Callable[[], None], iters: int, warmup: int,
                    device: torch.device) -> List[float]:
    """Seconds taken by each of ``iters`` calls of ``fn`` after ``warmup``.

    Args:
        fn: one iteration of the work (it must not synchronise for us).
        iters (int): measured iterations, >= 1.
        warmup (int): unmeasured iterations first (allocator, autotuning,
            lazily created optimiser state).
        device (torch.device): CUDA devices are timed with events.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        events = [(torch.cuda.Event(enable_timing=True),
                   torch.cuda.Event(enable_timing=True))
                  for _ in range(iters)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) / 1e3 for start, end in events]
    times = []
    for _ in range(iters):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return times


def summarise_times(times: List[float]) -> Dict[str, object]:
    """Median / min / all of a list of seconds, in milliseconds."""
    return dict(
        ms_median=statistics.median(times) * 1e3,
        ms_min=min(times) * 1e3,
        ms_all=[round(t * 1e3, 3) for t in times])
