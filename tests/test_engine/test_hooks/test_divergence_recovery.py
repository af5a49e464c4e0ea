"""Every divergence ends with NonFiniteLossHook's error, and its advice
(which checkpoint to resume, with a lower learning rate) works."""
import os.path as osp
import warnings

import pytest
import torch
from mmengine.model import BaseModel
from torch import nn

from engine_toys import ToyContrastiveModel

HOOKS = [dict(type='NonFiniteLossHook'), dict(type='TrainStateHook')]
START_AGAIN = ('No checkpoint was written before the divergence: train again '
               'from the start with a lower learning rate')


class SquareModel(BaseModel):
    """loss = w², w = 1 at first: plain SGD with lr 10 multiplies w by -19
    every step, so w² overflows float32 at the 17th loss (w = 19¹⁶), while
    the weights stay finite."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=self.w**2)


def train(make_runner, work_dir, lr, clip_grad=None, **kwargs):
    runner = make_runner(
        work_dir, model=SquareModel(), custom_hooks=HOOKS,
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=lr), clip_grad=clip_grad),
        **kwargs)
    runner.train()
    return runner


def test_names_the_last_checkpoint_from_before_the_divergence(
        make_runner, tmp_path):
    with pytest.raises(RuntimeError) as error:
        train(make_runner, tmp_path, lr=10, max_iters=20, ckpt_interval=4)
    # iter_16.pth holds w = 19^16, whose loss is the first infinite one.
    before, after = (osp.join(tmp_path, f'iter_{i}.pth') for i in (12, 16))
    message = str(error.value)
    assert message.startswith('Non-finite loss at iteration 17 (epoch 1): '
                              'loss=inf. Training was stopped before')
    assert f'The newest checkpoint, {after}, was written after' in message
    assert f'Continue from {before}, the newest checkpoint from' in message
    assert f'--resume {before} --cfg-options optim_wrapper.clip_grad' in \
        message
    assert f'--cfg-options load_from={before} optim_wrapper.optimizer.lr=' \
        in message

    # The advice works: a resume with gradient clipping...
    resumed = train(make_runner, tmp_path / 'clipped', lr=10, max_iters=20,
                    clip_grad=dict(max_norm=1.0), resume=True,
                    load_from=before)
    assert resumed.iter == 20
    # ...or its weights with a lower learning rate and a new schedule...
    restarted = train(make_runner, tmp_path / 'lower_lr', lr=0.1,
                      max_iters=20, load_from=before)
    assert restarted.iter == 20
    assert abs(float(restarted.model.w.detach())) < 1e14
    assert 'step' not in vars(restarted.optim_wrapper)  # unwrapped at the end
    # ...while a resume keeps the checkpoint's learning rate (10, not 0.1),
    # and resuming the newest checkpoint diverges at once.
    for load_from in (before, after):
        with pytest.raises(RuntimeError, match='at iteration 17 '):
            train(make_runner, tmp_path / 'resumed', lr=0.1, max_iters=20,
                  resume=True, load_from=load_from)


def test_says_to_start_again_without_a_checkpoint_from_before(
        make_runner, tmp_path):
    """The issue's case: the first step explodes the weights (finite, 2e19),
    and the checkpoint of iteration 1 holds them."""
    with pytest.raises(RuntimeError) as error:
        train(make_runner, tmp_path, lr=1e19, max_iters=4, ckpt_interval=1)
    message = str(error.value)
    assert message.startswith('Non-finite loss at iteration 2 ')
    assert osp.join(tmp_path, 'iter_1.pth') in message
    assert START_AGAIN in message
    assert '--resume' not in message and 'load_from' not in message


def test_optimizer_overflow_ends_with_the_same_error(make_runner, tmp_path):
    """lr=1e40 overflows float32 inside AdamW's step."""
    runner = make_runner(
        tmp_path, model=ToyContrastiveModel(), custom_hooks=HOOKS,
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e40)))
    with pytest.raises(RuntimeError) as error:
        runner.train()
    message = str(error.value)
    assert message.startswith(
        'Non-finite optimizer update at iteration 1 (epoch 1): value cannot '
        'be converted to type float without overflow')
    assert START_AGAIN in message
    assert 'without overflow' in str(error.value.__cause__)


def test_other_optimizer_errors_pass_through(make_runner, tmp_path):
    runner = make_runner(tmp_path, custom_hooks=HOOKS, max_iters=1)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)

    def broken_step(**kwargs):
        raise RuntimeError('something else')

    runner.optim_wrapper.step = broken_step
    with pytest.raises(RuntimeError, match='^something else$'):
        runner.train()


def test_parameter_schedulers_keep_their_step_counter(make_runner, tmp_path):
    runner = make_runner(
        tmp_path, custom_hooks=HOOKS, max_iters=2,
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                             end=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        runner.train()
    assert not [w for w in caught if 'overridden' in str(w.message)]
    assert runner.optim_wrapper.step._with_counter  # the scheduler's, back
