import math

import pytest
import torch

from densevit.engine import MomentumUpdateHook


def ema_expected(key0, online, momenta):
    """key_n = online + prod(m_i) * (key_0 - online) for fixed online."""
    return online + math.prod(momenta) * (key0 - online)


def frozen_online_runner(make_runner, tmp_path, max_iters, hook, **kwargs):
    # lr=0: the online weights stay fixed, so the EMA has a closed form.
    return make_runner(
        tmp_path,
        max_iters=max_iters,
        custom_hooks=[hook],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        **kwargs)


@pytest.mark.parametrize('schedule', ['constant', 'cosine'])
def test_key_weights_move_by_the_expected_amount(make_runner, tmp_path,
                                                 schedule):
    hook = dict(type='MomentumUpdateHook', schedule=schedule,
                end_momentum=1.0)
    runner = frozen_online_runner(make_runner, tmp_path, 4, hook)
    model = runner.model
    # Start the key encoder away from the online one.
    with torch.no_grad():
        for p in model.key.parameters():
            p.add_(1.0)
    key0 = [p.clone() for p in model.key.parameters()]
    online = [p.clone() for p in model.online.parameters()]
    runner.train()

    base = model.base_momentum
    if schedule == 'constant':
        expected_m = [base] * 4
    else:
        expected_m = [
            1.0 - (1.0 - base) * (math.cos(math.pi * it / 4) + 1) / 2
            for it in range(4)
        ]
    assert model.momenta == pytest.approx(expected_m)
    for p, k0, o in zip(model.key.parameters(), key0, online):
        torch.testing.assert_close(p, ema_expected(k0, o, expected_m))
        assert not torch.allclose(p, k0)


def test_cosine_schedule_values():
    hook = MomentumUpdateHook(end_momentum=1.0, schedule='cosine')
    values = [hook.momentum_at(it, 100, 0.99) for it in range(101)]
    assert values[0] == pytest.approx(0.99)
    assert values[50] == pytest.approx(0.995)
    assert values[100] == pytest.approx(1.0)
    assert values[25] == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1)
                                       / 2)
    assert all(a < b for a, b in zip(values, values[1:]))
    constant = MomentumUpdateHook(end_momentum=0.5, schedule='constant')
    assert constant.momentum_at(70, 100, 0.99) == 0.99


def test_only_after_optimizer_steps_with_accumulation(make_runner, tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=4,
        custom_hooks=[dict(type='MomentumUpdateHook')],
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1), accumulative_counts=2))
    runner.train()
    assert len(runner.model.momenta) == 2


@pytest.mark.parametrize('kwargs,match', [
    (dict(schedule='linear'), 'schedule'),
    (dict(end_momentum=1.5), 'end_momentum'),
    (dict(end_momentum='1'), 'end_momentum'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MomentumUpdateHook(**kwargs)


def test_cosine_end_below_base_fails_before_training(make_runner, tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=1,
        custom_hooks=[
            dict(type='MomentumUpdateHook', schedule='cosine',
                 end_momentum=0.5)
        ])
    with pytest.raises(ValueError, match='end_momentum >= 0.9'):
        runner.train()
    assert runner.model.momenta == []
