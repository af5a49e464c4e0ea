"""Epoch-based training resumed from a checkpoint saved mid-epoch."""
import pytest

from densevit.engine.compat import ResumableEpochBasedTrainLoop

from engine_toys import Crash, CrashAt, ToyContrastiveModel
from test_train_state_hook import (ALL_HOOKS, assert_same_training_state,
                                   run_straight_and_resumed)

# 2 epochs of 4 batches (8 samples, batch 2); a checkpoint every 2 iterations.
ITER_CHECKPOINTS = dict(
    max_iters=2,
    num_samples=8,
    checkpoint=dict(type='AtomicCheckpointHook', interval=2, by_epoch=False),
    custom_hooks=ALL_HOOKS)


def test_stock_loop_replays_the_resumed_epoch(make_runner, tmp_path):
    """Premise: mmengine's EpochBasedTrainLoop resumes a mid-epoch
    checkpoint from the epoch's first batch: 2 + 8 steps instead of 8."""
    straight, resumed = run_straight_and_resumed(
        make_runner, tmp_path, crash_at=2, by_epoch=True, **ITER_CHECKPOINTS)
    assert type(resumed.train_loop).__name__ == 'EpochBasedTrainLoop'
    assert not isinstance(resumed.train_loop, ResumableEpochBasedTrainLoop)
    resumed.train()
    assert len(straight.model.losses) == 8
    assert len(resumed.model.losses) == 8  # should be 6
    assert resumed.iter == 10


@pytest.mark.parametrize(
    'crash_at, num_workers',
    [(2, 0), (2, 2), (4, 0)],  # mid-epoch (with workers), after the last
)                              # batch of an epoch, before its end hooks
def test_resume_continues_after_the_last_trained_batch(
        make_runner, tmp_path, crash_at, num_workers):
    straight, resumed = run_straight_and_resumed(
        make_runner, tmp_path, crash_at=crash_at,
        loop_type='EpochBasedTrainLoop',
        loader_options=dict(num_workers=num_workers), **ITER_CHECKPOINTS)
    assert isinstance(resumed.train_loop, ResumableEpochBasedTrainLoop)
    resumed.train()
    assert resumed.iter == straight.iter == 8
    assert_same_training_state(straight, resumed, resume_at=crash_at)


def test_resume_with_another_epoch_length_is_refused(make_runner, tmp_path):
    options = dict(
        ITER_CHECKPOINTS, max_iters=3, loop_type='EpochBasedTrainLoop')
    crashed = make_runner(
        tmp_path, **dict(options, custom_hooks=ALL_HOOKS + [CrashAt(6)]))
    with pytest.raises(Crash):
        crashed.train()  # iter_6.pth: epoch 2, 2 of its 4 batches trained
    # 2 batches per epoch: iteration 6 is past epoch 2's end.
    resumed = make_runner(
        tmp_path, model=ToyContrastiveModel(), resume=True,
        **dict(options, num_samples=4))
    with pytest.raises(ValueError, match='Cannot resume epoch 2 at iteration '
                       '6: with 2 batches per epoch .* load_from'):
        resumed.train()
