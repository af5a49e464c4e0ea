"""Resume is exact with the shipped dataloader settings (worker processes)."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from engine_toys import ToyDataset
from test_train_state_hook import (ALL_HOOKS, assert_same_training_state,
                                   run_straight_and_resumed)

CONFIGS = Path(__file__).parents[3] / 'configs'
SHIPPED = Config.fromfile(
    str(CONFIGS / '_base_' / 'datasets' / 'two_view_pipeline.py'))
WORKER_KEYS = ('num_workers', 'persistent_workers')


def worker_settings(loader: dict) -> dict:
    return {key: loader[key] for key in WORKER_KEYS if key in loader}


def test_shipped_workers_resume_from_an_epoch_checkpoint_exactly(
        make_runner, tmp_path):
    """3 epochs of 2 batches with the training loaders' worker settings,
    resumed from the checkpoint after epoch 1: bit-identical weights,
    queues and optimiser state."""
    settings = worker_settings(SHIPPED.train_loader_defaults)
    assert settings['num_workers'] > 0  # the toy draws in its workers
    straight, resumed = run_straight_and_resumed(
        make_runner, tmp_path, crash_at=2, ckpt_interval=1, max_iters=3,
        by_epoch=True, loop_type='EpochBasedTrainLoop', num_samples=4,
        loader_options=settings, custom_hooks=ALL_HOOKS)
    resumed.train()
    assert_same_training_state(straight, resumed, resume_at=2)


def test_probe_passes_see_the_same_random_samples():
    """Two passes of an evaluation loader with the shipped settings give the
    same (randomly jittered) samples, as the first pass of a resumed run
    does."""
    loader = Runner.build_dataloader(
        dict(
            worker_settings(SHIPPED.eval_loader_defaults),
            dataset=ToyDataset(8),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2),
        seed=0)
    first, second = ([batch['inputs'] for batch in loader] for _ in range(2))
    torch.testing.assert_close(second, first, rtol=0, atol=0)


def training_configs():
    for path in sorted(CONFIGS.glob('densevit/**/*.py')):
        cfg = Config.fromfile(str(path))
        if 'train_dataloader' in cfg:
            yield pytest.param(cfg.train_dataloader, id=path.name)


@pytest.mark.parametrize('loader', training_configs())
def test_no_training_config_keeps_workers_between_epochs(loader):
    assert not (loader.get('num_workers', 0) > 0
                and loader.get('persistent_workers', False))
