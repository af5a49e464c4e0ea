import math

import pytest
import torch
from mmpretrain.models.utils import CosineEMA

from densevit.engine import MomentumUpdateHook

from engine_toys import ToyContrastiveModel


def ema_expected(key0, online, momenta):
    """key_n = online + prod(1 - m_i) * (key_0 - online) for fixed online."""
    return online + math.prod(1 - m for m in momenta) * (key0 - online)


def cosine_ema_momenta(steps, momentum, end_momentum):
    """What mmpretrain's CosineEMA applies at each of ``steps`` (its
    ``steps`` buffer), read off a scalar averaged from 0 towards 1; uses the
    current MessageHub's ``max_iters`` as CosineEMA does."""
    source = torch.nn.Linear(1, 1, bias=False).double()
    ema = CosineEMA(source, momentum=momentum, end_momentum=end_momentum)
    momenta = []
    for step in steps:
        ema.steps.fill_(step)
        with torch.no_grad():
            ema.module.weight.zero_()
            source.weight.fill_(1.0)
        ema.update_parameters(source)
        momenta.append(ema.module.weight.item())
    return momenta


def frozen_online_runner(make_runner, tmp_path, max_iters, model, **kwargs):
    # lr=0: the online weights stay fixed, so the EMA has a closed form.
    return make_runner(
        tmp_path,
        model=model,
        max_iters=max_iters,
        custom_hooks=[dict(type='MomentumUpdateHook')],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        **kwargs)


@pytest.mark.parametrize('end_momentum', [None, 0.0])
def test_key_weights_move_by_the_expected_amount(make_runner, tmp_path,
                                                 end_momentum):
    model = ToyContrastiveModel(momentum=0.1, end_momentum=end_momentum)
    runner = frozen_online_runner(make_runner, tmp_path, 4, model)
    # Start the key encoder away from the online one.
    with torch.no_grad():
        for p in model.key.parameters():
            p.add_(1.0)
    key0 = [p.clone() for p in model.key.parameters()]
    online = [p.clone() for p in model.online.parameters()]
    runner.train()

    if end_momentum is None:
        expected_m = [0.1] * 4
    else:
        # The update after the k-th optimizer step uses CosineEMA's
        # momentum at steps == k: no lag of one update.
        expected_m = cosine_ema_momenta(range(1, 5), 0.1, end_momentum)
        assert expected_m[-1] == pytest.approx(0.0)
    assert model.momenta == pytest.approx(expected_m, rel=1e-6, abs=1e-9)
    for p, k0, o in zip(model.key.parameters(), key0, online):
        torch.testing.assert_close(p, ema_expected(k0, o, model.momenta))
        assert not torch.allclose(p, k0)


def test_only_after_optimizer_steps_with_accumulation(make_runner, tmp_path):
    model = ToyContrastiveModel(momentum=0.1, end_momentum=0.0)
    runner = make_runner(
        tmp_path,
        model=model,
        max_iters=4,
        custom_hooks=[dict(type='MomentumUpdateHook')],
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1), accumulative_counts=2))
    runner.train()
    # Optimizer steps after iterations 2 and 4 (1-based).
    assert model.momenta == pytest.approx(
        cosine_ema_momenta([2, 4], 0.1, 0.0), rel=1e-6, abs=1e-9)


def test_marks_the_model_for_the_run_only(make_runner, tmp_path):
    seen = []

    class Spy(ToyContrastiveModel):

        def forward(self, *args, **kwargs):
            seen.append(set(self.driving_hooks))
            return super().forward(*args, **kwargs)

    runner = make_runner(
        tmp_path, model=Spy(), max_iters=1,
        custom_hooks=[dict(type='MomentumUpdateHook')])
    runner.train()
    assert seen == [{'MomentumUpdateHook'}]
    assert runner.model.driving_hooks == set()


def test_schedule_arguments_point_to_the_model():
    with pytest.raises(TypeError, match='end_momentum=0.0'):
        MomentumUpdateHook(schedule='cosine', end_momentum=1.0)


def test_rejects_a_model_without_the_api(make_runner, tmp_path):
    runner = make_runner(tmp_path, max_iters=1)
    del runner.model.driving_hooks
    with pytest.raises(TypeError, match='driving_hooks'):
        MomentumUpdateHook().before_train(runner)
