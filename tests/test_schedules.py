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
    # ...rises through the 200-step warm-up and falls after it.
    if total > 200:
        peak = max(range(total), key=lrs.__getitem__)
        assert 150 <= peak <= 200
        assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
        assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
        # The peak is the warm-up's end on the cosine, not the base lr.
        assert lrs[peak] < base * (1 + math.cos(math.pi * 150 / total)) / 2
