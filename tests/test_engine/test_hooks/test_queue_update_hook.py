import pytest
import torch
from mmengine.model import MMDistributedDataParallel

from densevit.engine import QueueUpdateHook


def test_queue_pointer_moves_by_the_batch_each_iteration(make_runner,
                                                        tmp_path):
    runner = make_runner(
        tmp_path, max_iters=3, custom_hooks=[dict(type='QueueUpdateHook')])
    model = runner.model
    before = model.global_loss.queue.keys.clone()
    runner.train()
    # 3 iterations x batch 2 x 1 rank.
    for queue in (model.global_loss.queue, model.dense_loss.queue):
        assert int(queue.ptr) == 6
    keys = model.global_loss.queue.keys
    assert not torch.equal(keys[:6], before[:6])
    torch.testing.assert_close(keys[6:], before[6:])


def test_without_the_hook_the_queue_does_not_move(make_runner, tmp_path):
    runner = make_runner(tmp_path, max_iters=3)
    runner.train()
    assert int(runner.model.global_loss.queue.ptr) == 0


def test_reaches_the_model_inside_a_wrapper(make_runner, tmp_path):
    runner = make_runner(tmp_path, max_iters=1)
    model = runner.model
    model._pending = torch.ones(2, 4)
    # A wrapper only needs `.module` for is_model_wrapper; no process group.
    wrapper = MMDistributedDataParallel.__new__(MMDistributedDataParallel)
    torch.nn.Module.__init__(wrapper)
    wrapper.module = model
    runner.model = wrapper
    QueueUpdateHook().after_train_iter(runner, 0)
    assert int(model.global_loss.queue.ptr) == 2


def test_marks_the_model_for_the_run_only(make_runner, tmp_path):
    runner = make_runner(tmp_path, max_iters=1)
    model = runner.model
    QueueUpdateHook().before_train(runner)
    assert model.driving_hooks == {'QueueUpdateHook'}
    QueueUpdateHook().after_train(runner)
    assert model.driving_hooks == set()


def test_rejects_a_model_without_the_api(make_runner, tmp_path):
    runner = make_runner(tmp_path, max_iters=1)
    runner.model.update_queues = None
    with pytest.raises(TypeError, match='update_queues'):
        QueueUpdateHook().before_train(runner)
    del runner.model.update_queues  # the method again
    del runner.model.driving_hooks
    with pytest.raises(TypeError, match='driving_hooks'):
        QueueUpdateHook().before_train(runner)
