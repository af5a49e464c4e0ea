"""Training curves from MMEngine's scalar log (``vis_data/scalars.json``)."""
import glob
import json
import math
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

LogLike = Union[str, Sequence[dict]]

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


def load_scalars(path: str, runs: str = 'latest') -> List[dict]:
    """Read MMEngine's scalar log: one JSON dict per line.

    Args:
        path (str): see :func:`find_scalar_logs`.
        runs (str): 'latest' reads the newest run of a work dir; 'all'
            concatenates every run in time order (a resumed training
            continues in a new run folder). Defaults to 'latest'.

    Returns:
        list[dict]: the records, in file order.
    """
    if runs not in ('latest', 'all'):
        raise ValueError(f"`runs` must be 'latest' or 'all', got {runs!r}.")
    files = find_scalar_logs(path)
    if runs == 'latest':
        files = files[-1:]
    records = []
    for file in files:
        with open(file) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    # The last line of a log still being written may be cut.
                    raise ValueError(f'{file}:{number} is not a JSON dict '
                                     f'({e}).') from e
    return records


def _epoch_to_iter(train: List[dict]):
    """Map an epoch number to the iteration it ends at, from train logs."""
    ends: Dict[int, int] = {}
    for rec in train:
        if 'epoch' in rec and 'iter' in rec:
            ends[rec['epoch']] = max(ends.get(rec['epoch'], 0), rec['iter'])
    if not ends:
        return None
    # The last logged iteration of an epoch is its end (LoggerHook logs at
    # every epoch end); epochs without a training log are extrapolated.
    last = max(ends)
    per_epoch = ends[last] / last if last else 0

    def convert(epoch: float) -> float:
        return ends.get(epoch, epoch * per_epoch)

    return convert


def split_series(records: Sequence[dict]) -> Dict[str, Dict[str, Tuple]]:
    """Group the plottable series of a scalar log by panel.

    Training records (those with a loss or learning rate) give the
    ``loss`` and ``lr`` panels against their ``iter`` (else ``step``).
    Every other record holds evaluation results (validation metrics,
    ``LinearProbeHook``'s ``probe/*``); their numbers form the ``metrics``
    panel (values within [0, 1]) and the ``other`` panel (anything else,
    e.g. percentages). They are put on the iteration axis too: mmengine
    logs by-epoch validation at ``step=epoch``, which is converted to the
    epoch's last iteration when training was by epoch, while ``probe/*``
    records are logged at ``step=iteration`` already.

    Args:
        records (Sequence[dict]): from :func:`load_scalars`.

    Returns:
        dict: panel → {key: (x ndarray, y ndarray)}; panels without
        series are left out.
    """
    train = [r for r in records
             if any(_is_loss(k) or _is_lr(k) for k in r)
             and not any(k.startswith('val/') or k.startswith('test/')
                         for k in r)]
    train_ids = {id(r) for r in train}
    epoch_to_iter = _epoch_to_iter(train)
    points = defaultdict(lambda: defaultdict(list))
    for rec in records:
        is_train = id(rec) in train_ids
        for key, value in rec.items():
            if key in _SKIP or not _is_number(value):
                continue
            if 'iter' in rec:
                x = rec['iter']
            elif (not is_train and epoch_to_iter is not None
                  and not key.startswith('probe/')):
                x = epoch_to_iter(rec.get('step', 0))
            else:
                x = rec.get('step', 0)
            if _is_loss(key):
                panel = 'loss'
            elif _is_lr(key):
                panel = 'lr'
            elif is_train:
                continue  # grad_norm, momentum...: not asked for
            else:
                panel = 'metrics'
            points[panel][key].append((x, value))
    series = {}
    for panel in ('loss', 'lr', 'metrics'):
        for key, xy in points.get(panel, {}).items():
            x, y = (np.asarray(v, dtype=float) for v in zip(*xy))
            if panel == 'metrics' and (y.min() < 0 or y.max() > 1):
                series.setdefault('other', {})[key] = (x, y)
            else:
                series.setdefault(panel, {})[key] = (x, y)
    return {p: series[p] for p in ('loss', 'lr', 'metrics', 'other')
            if p in series}


_TITLES = {
    'loss': 'Losses',
    'lr': 'Learning rate',
    'metrics': 'Evaluation',
    'other': 'Other metrics',
}


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
        log (str | Sequence[dict]): a work dir / ``scalars.json`` path (see
            :func:`find_scalar_logs`) or the records themselves.
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

    records = load_scalars(log, runs) if isinstance(log, str) else list(log)
    if not all(isinstance(r, dict) for r in records):
        raise TypeError('`log` must be a path or a list of dicts (one per '
                        'scalars.json line).')
    series = split_series(records)
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
