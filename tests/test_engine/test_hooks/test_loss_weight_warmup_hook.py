import pytest

from densevit.engine import LossWeightWarmupHook

from engine_toys import Crash, CrashAt, ToyContrastiveModel


def test_lambda_is_zero_during_warmup_then_base(make_runner, tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=6,
        custom_hooks=[dict(type='LossWeightWarmupHook')])
    logged = []
    runner.logger.info = logged.append
    runner.train()
    assert runner.model.lambdas == [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.5),
                                    (4, 0.5), (5, 0.5)]
    switches = [m for m in logged if 'LossWeightWarmupHook' in m]
    assert len(switches) == 2
    assert 'dense_weight_scale = 0.0 from iteration 1' in switches[0]
    assert 'dense_weight_scale = 1.0 from iteration 4' in switches[1]
    # λ is the model's own value throughout; the scale is back to 1.
    assert runner.model.loss_lambda == 0.5
    assert runner.model.dense_weight_scale == 1.0


@pytest.mark.parametrize('resume_at,expected', [
    (4, [(4, 0.5), (5, 0.5)]),  # resumed after the warm-up
    (2, [(2, 0.0), (3, 0.5), (4, 0.5), (5, 0.5)]),  # resumed inside it
])
def test_lambda_after_resume(make_runner, tmp_path, resume_at, expected):
    hooks = [dict(type='LossWeightWarmupHook'),
             dict(type='TrainStateHook')]
    first = make_runner(
        tmp_path, max_iters=6, ckpt_interval=resume_at,
        custom_hooks=hooks + [CrashAt(resume_at)])
    with pytest.raises(Crash):
        first.train()
    # A fresh model starts with the configured lambda, as after a restart.
    model = ToyContrastiveModel()
    resumed = make_runner(
        tmp_path, model=model, max_iters=6, ckpt_interval=resume_at,
        custom_hooks=hooks, resume=True)
    resumed.train()
    assert model.lambdas == expected


def test_geometric_positives_during_their_warmup(make_runner, tmp_path):
    model = ToyContrastiveModel(dense_warmup_iters=1,
                                geometric_warmup_iters=4)
    runner = make_runner(
        tmp_path,
        model=model,
        max_iters=6,
        custom_hooks=[dict(type='LossWeightWarmupHook')])
    logged = []
    runner.logger.info = logged.append
    runner.train()
    # Counted from the first iteration, whatever the dense warm-up.
    assert model.geometric == [(0, True), (1, True), (2, True), (3, True),
                               (4, False), (5, False)]
    assert [lam for _, lam in model.lambdas] == [0.0] + [0.5] * 5
    switches = [m for m in logged if 'geometric_warmup_iters' in m]
    assert len(switches) == 2
    assert 'crop geometry alone from iteration 1' in switches[0]
    assert "own positives from iteration 5" in switches[1]
    assert model.dense_loss.geometric_only is False


def test_no_geometric_warmup_leaves_the_positives_alone(make_runner,
                                                        tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=3,
        custom_hooks=[dict(type='LossWeightWarmupHook')])
    logged = []
    runner.logger.info = logged.append
    runner.train()
    assert not any(flag for _, flag in runner.model.geometric)
    assert not any('geometric_warmup_iters' in m for m in logged)


def test_geometric_warmup_after_resume(make_runner, tmp_path):
    hooks = [dict(type='LossWeightWarmupHook'),
             dict(type='TrainStateHook')]
    first = make_runner(
        tmp_path, model=ToyContrastiveModel(geometric_warmup_iters=4),
        max_iters=6, ckpt_interval=2, custom_hooks=hooks + [CrashAt(2)])
    with pytest.raises(Crash):
        first.train()
    model = ToyContrastiveModel(geometric_warmup_iters=4)
    resumed = make_runner(
        tmp_path, model=model, max_iters=6, ckpt_interval=2,
        custom_hooks=hooks, resume=True)
    resumed.train()
    assert model.geometric == [(2, True), (3, True), (4, False), (5, False)]


def test_rejects_a_model_without_the_api(make_runner, tmp_path):
    runner = make_runner(tmp_path, max_iters=1)
    del runner.model.dense_weight_scale
    with pytest.raises(TypeError, match='dense_weight_scale'):
        LossWeightWarmupHook().before_train(runner)


def test_warmup_length_belongs_to_the_model():
    with pytest.raises(ValueError, match='dense_warmup_iters'):
        LossWeightWarmupHook(warmup_iters=3)
