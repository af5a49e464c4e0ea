import os.path as osp

import pytest

from densevit.engine import NonFiniteLossHook

from engine_toys import ToyContrastiveModel


@pytest.mark.parametrize('priority', [None, 'HIGHEST'])
def test_raises_naming_iteration_and_term(make_runner, tmp_path, priority):
    # 'HIGHEST' runs before RuntimeInfoHook: the tensor fallback path.
    hook = dict(type='NonFiniteLossHook')
    if priority:
        hook['priority'] = priority
    runner = make_runner(
        tmp_path,
        model=ToyContrastiveModel(nan_from=2),
        max_iters=5,
        ckpt_interval=1,
        custom_hooks=[hook])
    with pytest.raises(RuntimeError) as error:
        runner.train()
    message = str(error.value)
    assert 'Non-finite loss at iteration 3' in message
    assert 'loss_dense=nan' in message
    assert 'loss_global' not in message  # only the broken terms
    assert message.index('loss_dense') < message.index('loss=nan')
    # Raised before CheckpointHook could save the NaN state.
    assert osp.exists(osp.join(tmp_path, 'iter_2.pth'))
    assert not osp.exists(osp.join(tmp_path, 'iter_3.pth'))


def test_checks_every_interval(make_runner, tmp_path):
    runner = make_runner(
        tmp_path,
        model=ToyContrastiveModel(nan_from=2),
        max_iters=8,
        custom_hooks=[dict(type='NonFiniteLossHook', interval=2)])
    with pytest.raises(RuntimeError, match='iteration 4 '):
        runner.train()


def test_finite_losses_train_to_the_end(make_runner, tmp_path):
    runner = make_runner(
        tmp_path, max_iters=3, custom_hooks=[dict(type='NonFiniteLossHook')])
    runner.train()
    assert runner.iter == 3


def test_without_the_hook_training_continues_on_nan(make_runner, tmp_path):
    runner = make_runner(
        tmp_path, model=ToyContrastiveModel(nan_from=0), max_iters=2)
    runner.train()
    assert runner.iter == 2


def test_bad_interval():
    for bad in (0, -1, 1.0, True):
        with pytest.raises(ValueError, match='interval'):
            NonFiniteLossHook(interval=bad)
