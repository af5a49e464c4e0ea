"""Training curves from MMEngine's scalar log (``vis_data/scalars.json``)."""
import glob
import json
import math
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmpretrain.utils import load_json_log
from PIL import Image

# A path (see find_scalar_logs) or the {'train': [...], 'val': [...]} dict
# of load_scalars / mmpretrain's load_json_log.
LogLike = Union[str, Mapping[str, Sequence[dict]]]

# Bookkeeping values every record carries; never plotted.
_SKIP = frozenset({'step', 'iter', 'epoch', 'time', 'data_time', 'memory',
                   'eta'})


def _is_loss(key: str) -> bool:
    return 'loss' in key


def _is_lr(key: str) -> bool:
    return key in ('lr', 'base_lr') or key.endswith(('_lr', '/lr'))


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def find_scalar_logs(path: str) -> List[str]:
    """The ``scalars.json`` files of a work dir, oldest run first.

    Args:
        path (str): a ``scalars.json`` file, a run folder
            (``<work_dir>/<timestamp>``) or a work dir holding run folders.

    Returns:
        list[str]: paths; raises FileNotFoundError when there are none.
    """
    if osp.isfile(path):
        return [path]
    candidates = [osp.join(path, 'vis_data', 'scalars.json'),
                  osp.join(path, 'scalars.json')]
    found = [c for c in candidates if osp.isfile(c)]
    if not found:
        # Run folders are named by their start time (YYYYMMDD_HHMMSS), so
        # sorting by name sorts them by time.
        found = sorted(
            glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise FileNotFoundError(
            f'No scalar log under {path!r}. Fix: pass a work dir holding '
            '<timestamp>/vis_data/scalars.json (written by LocalVisBackend) '
            'or the scalars.json file itself.')
    return found


def load_scalars(path: str, runs: str = 'latest') -> Dict[str, List[dict]]:
    """Read MMEngine's scalar log with mmpretrain's ``load_json_log``.

    Args:
        path (str): see :func:`find_scalar_logs`.
        runs (str): 'latest' reads the newest run of a work dir; 'all'
            concatenates every run in time order (a resumed training
            continues in a new run folder). Defaults to 'latest'.

    Returns:
        dict: ``train`` (the records with an ``lr``) and ``val`` (the
        others, e.g. validation metrics and probes), in file order.
    """
    if runs not in ('latest', 'all'):
        raise ValueError(f"`runs` must be 'latest' or 'all', got {runs!r}.")
    files = find_scalar_logs(path)
    if runs == 'latest':
        files = files[-1:]
    log = dict(train=[], val=[])
    for file in files:
        try:
            part = load_json_log(file)
        except json.JSONDecodeError as e:
            # The last line of a log still being written may be cut.
            raise ValueError(f'{file} is not one JSON dict per line '
                             f'({e}).') from e
        for mode in log:
            log[mode] += part[mode]
    return log


_TITLES = {
    'loss': 'Losses',
    'lr': 'Learning rate',
    'metrics': 'Evaluation',
    'other': 'Other metrics',
}


def split_series(log: Mapping[str, Sequence[dict]]
                 ) -> Dict[str, Dict[str, Tuple]]:
    """Group the plottable series of a scalar log by panel.

    Losses form the ``loss`` panel and training learning rates the ``lr``
    panel. The other numbers of ``val`` records (validation metrics and
    ``ProbeHook``'s probes) form the ``metrics`` panel (values
    within [0, 1]) and the ``other`` panel (anything else, e.g.
    percentages). Every series is put on the iteration axis: a record's
    ``iter`` when it has one; mmengine logs by-epoch validation at
    ``step=epoch`` (so does ``ProbeHook``), which is converted to the
    epoch's last iteration when training was by epoch.

    Args:
        log (Mapping[str, Sequence[dict]]): ``train`` and ``val`` records,
            from :func:`load_scalars` or mmpretrain's ``load_json_log``.

    Returns:
        dict: panel → {key: (x ndarray, y ndarray)}; panels without
        series are left out.
    """
    # The last logged iteration of an epoch is its end (LoggerHook logs at
    # every epoch end); epochs without a training log are extrapolated.
    ends: Dict[int, int] = {}
    for rec in log['train']:
        if 'epoch' in rec and 'iter' in rec:
            ends[rec['epoch']] = max(ends.get(rec['epoch'], 0), rec['iter'])
    last = max(ends, default=0)
    per_epoch = ends[last] / last if last else 0
    points = defaultdict(list)
    for mode in ('train', 'val'):
        for rec in log[mode]:
            for key, value in rec.items():
                if key in _SKIP or not _is_number(value):
                    continue
                if _is_loss(key):
                    panel = 'loss'
                elif mode == 'val':
                    panel = 'metrics'
                elif _is_lr(key):
                    panel = 'lr'
                else:
                    continue  # grad_norm, momentum...: not asked for
                step = rec.get('step', 0)
                if 'iter' in rec:
                    x = rec['iter']
                elif mode == 'val' and ends:
                    x = ends.get(step, step * per_epoch)
                else:
                    x = step
                points[panel, key].append((x, value))
    series = defaultdict(dict)
    for (panel, key), xy in points.items():
        x, y = (np.asarray(v, dtype=float) for v in zip(*xy))
        if panel == 'metrics' and (y.min() < 0 or y.max() > 1):
            panel = 'other'
        series[panel][key] = (x, y)
    return {p: series[p] for p in _TITLES if p in series}


def plot_training_curves(log: LogLike,
                         out_file: Optional[str] = None,
                         runs: str = 'latest',
                         title: Optional[str] = None,
                         panel_size: Tuple[float, float] = (4.5, 3.2),
                         dpi: int = 100) -> np.ndarray:
    """Plot the losses, learning rate and evaluation metrics of a run.

    Keys that are absent are skipped; panels without any series are left
    out (see :func:`split_series`).

    Args:
        log (str | Mapping[str, Sequence[dict]]): a work dir /
            ``scalars.json`` path (see :func:`find_scalar_logs`) or the
            ``train``/``val`` records of :func:`load_scalars`.
        out_file (str, optional): also save the picture here as PNG.
        runs (str): for a work dir, 'latest' or 'all' runs. Defaults to
            'latest'.
        title (str, optional): a title over the panels.
        panel_size (tuple[float, float]): inches per panel. Defaults to
            (4.5, 3.2).
        dpi (int): resolution. Defaults to 100.

    Returns:
        ndarray: (H, W, 3) uint8 RGB.
    """
    # Matplotlib's object API with the Agg canvas: no pyplot state, no
    # display needed, whatever backend the process selected.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if isinstance(log, str):
        log = load_scalars(log, runs)
    elif not (isinstance(log, Mapping) and {'train', 'val'} <= set(log)):
        raise TypeError('`log` must be a path or a dict with `train` and '
                        '`val` record lists (see load_scalars), but got '
                        f'{type(log)}.')
    series = split_series(log)
    if not series:
        raise ValueError(
            'Nothing to plot: the log has no numeric loss, lr or metric '
            'values. Fix: point at a scalars.json written during training.')

    # Two panels per row keeps the picture readable in docs.
    ncols = min(2, len(series))
    nrows = math.ceil(len(series) / ncols)
    fig = Figure(
        figsize=(panel_size[0] * ncols, panel_size[1] * nrows), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    for ax, (panel, curves) in zip(axes, series.items()):
        for key, (x, y) in sorted(curves.items()):
            # Sparse series (a probe every few epochs) get markers.
            marker = 'o' if len(x) <= 20 else None
            ax.plot(x, y, label=key, marker=marker, markersize=3,
                    linewidth=1.2)
        ax.set_title(_TITLES[panel])
        ax.set_xlabel('iteration')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel == 'metrics':
            ax.set_ylim(-0.02, 1.02)
        if panel == 'lr':
            ax.ticklabel_format(axis='y', style='sci', scilimits=(-2, 3))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    if out_file is not None:
        Image.fromarray(image).save(out_file)
    return image
