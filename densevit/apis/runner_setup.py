"""Turn a config plus command-line options into a ready Runner.

``tools/train.py`` and ``tools/test.py`` stay thin: they parse arguments and
call these functions, so the same logic is importable and tested.
"""
import argparse
import os.path as osp
import contextlib
from typing import Iterator, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from densevit.engine.compat import (CheckpointNotFoundError,
                                    UnreadableCheckpointError,
                                    clear_ddp_device_ids,
                                    read_last_checkpoint,
                                    start_cpu_process_group)
from densevit.engine.utils import CheckpointMismatchError
from densevit.engine.work_dir_lock import (WorkDirLockedError,
                                          lock_work_dir_for_training)
from densevit.registry import RUNNERS
from .config_check import ConfigError, check_config, check_train_batches
from .metric_table import metric_rows
from .strategy_setup import adapt_strategy
from .model_conversion import ConversionError


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` share."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=2')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local_rank; torchrun uses the env.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def apply_cli_options(cfg: Config,
                      config_path: str,
                      work_dir: Optional[str] = None,
                      resume: Optional[str] = None,
                      amp: bool = False,
                      auto_scale_lr: bool = False,
                      cfg_options: Optional[dict] = None,
                      launcher: str = 'none',
                      elastic_restart: bool = False) -> Config:
    """Merge mmpretrain-style command-line options into ``cfg``.

    Args:
        cfg (Config): the loaded config.
        config_path (str): its file (names the default work dir).
        work_dir (str, optional): ``--work-dir``; defaults to
            ``work_dirs/<config name>`` as in mmpretrain.
        resume (str, optional): ``--resume``: 'auto' for the latest
            checkpoint of the work dir, or a checkpoint path.
        amp (bool): ``--amp``: mixed precision (bf16 where supported).
        auto_scale_lr (bool): ``--auto-scale-lr``: scale the learning rate
            by the real batch size over ``auto_scale_lr.base_batch_size``.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        launcher (str): ``--launcher``.
        elastic_restart (bool): this process replaces one that failed
            (``torchrun --max-restarts``, ``tools/dist_train.sh`` with
            ``MAX_RESTARTS``): once the work dir has a checkpoint (its
            ``last_checkpoint`` pointer), training resumes from the newest
            one that loads, whatever ``resume`` and ``load_from`` say, so
            the job continues where it was saved last. Before the first
            save it starts as the first attempt did.
    """
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    if amp:
        wrapper = cfg.optim_wrapper
        if wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('dtype', 'bfloat16')
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    if elastic_restart and read_last_checkpoint(cfg.work_dir) is not None:
        cfg.resume = True
        cfg.load_from = None
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError(
                '--auto-scale-lr needs `auto_scale_lr = dict('
                'base_batch_size=...)` in the config (the batch size the '
                'learning rate was set for).')
        cfg.auto_scale_lr.enable = True
    return cfg


def adapt_to_device(cfg: Config) -> List[str]:
    """Make GPU-oriented settings run on a CPU-only machine; say what changed.

    Experiment configs ask for bf16 ``AmpOptimWrapper`` and NCCL, which only
    exist with a GPU. Without one, training falls back to fp32
    ``OptimWrapper`` and gloo (with ``device_ids=None`` for DDP, see
    :mod:`densevit.engine.compat`), and the returned notes are logged.
    """
    notes = []
    if torch.cuda.is_available():
        return notes
    wrapper = cfg.get('optim_wrapper')
    if wrapper is not None and wrapper.get('type') == 'AmpOptimWrapper':
        wrapper.type = 'OptimWrapper'
        for key in ('dtype', 'loss_scale', 'use_fsdp'):
            wrapper.pop(key, None)
        notes.append('no GPU: AmpOptimWrapper (bf16) replaced by fp32 '
                     'OptimWrapper')
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {})
    if dist_cfg.get('backend') == 'nccl':
        dist_cfg['backend'] = 'gloo'
        notes.append('no GPU: distributed backend nccl replaced by gloo')
    clear_ddp_device_ids(cfg)
    return notes


def relax_worker_settings(cfg: Config) -> List[str]:
    """Drop ``persistent_workers`` where a dataloader has no workers.

    Base configs keep workers alive between epochs; a user who sets
    ``num_workers=0`` (for debugging, or on a small machine) should not have
    to know that torch then refuses ``persistent_workers=True``.
    """
    notes = []
    for key in cfg.keys():
        loader = cfg.get(key)
        if not key.endswith('dataloader') or not isinstance(loader, dict):
            continue
        if loader.get('num_workers', 0) == 0 and loader.get(
                'persistent_workers', False):
            loader['persistent_workers'] = False
            notes.append(f'{key}: num_workers=0, so persistent_workers is '
                         'turned off')
    return notes


def build_runner(cfg: Config, training: bool = True) -> Runner:
    """Check the config, adapt it to this machine, and build the Runner.

    Args:
        cfg (Config): the merged config.
        training (bool): whether the runner will train (checks pretrained
            checkpoints too, and builds the training dataloader to check
            that an epoch holds a batch) or only test. Defaults to True.
    """
    check_config(cfg, training=training)
    notes = (adapt_to_device(cfg) + adapt_strategy(cfg) +
             relax_worker_settings(cfg))
    notes += start_cpu_process_group(cfg)
    if training:  # before the Runner writes logs into the work dir
        lock_work_dir_for_training(cfg)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    for note in notes:
        runner.logger.warning(note)
    if training:
        check_train_batches(runner)
    return runner


def report_metrics(metrics: dict, out: Optional[str] = None) -> dict:
    """Print metrics as a table; write them as JSON to ``out`` if given.

    Each quantity's row shows its chance level / baselines beside it (see
    :func:`~densevit.apis.metric_table.metric_rows`). Returns the metrics as
    plain floats (tensors and numpy scalars converted), the form the JSON
    file holds.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    plain = {}
    for name, value in metrics.items():
        if hasattr(value, 'item'):
            value = value.item()
        plain[name] = value
    table = Table(title='Evaluation')
    table.add_column('metric')
    table.add_column('value', justify='right')
    table.add_column('chance / baselines')
    for name, value, refs in metric_rows(plain):
        table.add_row(
            name, f'{value:.4f}' if isinstance(value, float) else str(value),
            refs)
    Console(width=120).print(table)
    if out:
        with open(out, 'w') as f:
            json.dump(plain, f, indent=2)
    return plain


#: Errors that explain a mistake in what the user asked for (a config, a
#: checkpoint, a work dir) with the fix: the tools print them without a
#: traceback, which would only bury the message.
USER_ERRORS = (ConfigError, CheckpointMismatchError, UnreadableCheckpointError,
               CheckpointNotFoundError,
               WorkDirLockedError, ConversionError)


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a :data:`USER_ERRORS` exception into ``SystemExit`` with its
    message (exit status 1); every other exception keeps its traceback.
    A context manager, or a decorator: ``@exit_on_user_error()``."""
    try:
        yield
    except USER_ERRORS as exc:
        raise SystemExit(f'{type(exc).__name__}: {exc}') from None
