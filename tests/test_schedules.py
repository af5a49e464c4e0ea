"""The demo schedule stays whole at any training length."""
import math
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

SCHEDULE = (Path(__file__).resolve().parents[1] / 'configs' / '_base_' /
            'schedules' / 'adamw_coslr-4e.py')


class LinearModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=self.linear(inputs).pow(2).mean())


class RecordLR(Hook):

    def __init__(self):
        self.lrs = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])


def run_schedule(tmp_path, num_batches):
    cfg = Config.fromfile(str(SCHEDULE))
    record = RecordLR()
    runner = Runner(
        model=LinearModel(),
        work_dir=str(tmp_path),
        experiment_name=f'schedule_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=[dict(inputs=torch.ones(2))] * num_batches,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=cfg.optim_wrapper,
        param_scheduler=cfg.param_scheduler,
        train_cfg=cfg.train_cfg,
        custom_hooks=[record],
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='densevit')
    runner.train()
    return record.lrs, cfg.optim_wrapper.optimizer.lr


@pytest.mark.parametrize('num_batches', [10, 150])
def test_warmup_then_cosine_to_the_last_iteration(tmp_path, num_batches):
    lrs, base = run_schedule(tmp_path, num_batches)
    total = 4 * num_batches
    assert len(lrs) == total
    assert lrs[0] == pytest.approx(base * 1e-2)
    # Whatever the length, it ends at the bottom of the cosine (eta_min)...
    assert lrs[-1] == pytest.approx(1e-5, rel=0.1)
    # ...and within the 200-step warm-up the lr is the warm-up factor times
    # the cosine (up to the eta_min floor, which the chained cosine keeps
    # unscaled).
    if total > 200:
        step = 100
        warmup = 1e-2 + (1 - 1e-2) * step / 200
        cosine = base * (1 + math.cos(math.pi * step / total)) / 2
        assert lrs[step] == pytest.approx(warmup * cosine, rel=3e-2)
        assert max(lrs) == pytest.approx(lrs[200], rel=1e-2)
