import logging

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


def _queue_notes_while(action):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler(level=logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        action()
    finally:
        logger.removeHandler(handler)
    return [m for m in messages if 'epochs of keys' in m]


@pytest.mark.parametrize('queue_len, warned', [(8, True), (64, True),
                                                (7, False)])
def test_notes_once_when_a_queue_holds_an_epoch_of_keys(
        make_runner, tmp_path, queue_len, warned):
    # 8 images, batch 2: 4 steps of 2 keys, an epoch is 8 keys per queue.
    from engine_toys import ToyContrastiveModel
    runner = make_runner(
        tmp_path, model=ToyContrastiveModel(queue_len=queue_len),
        max_iters=3, custom_hooks=[dict(type='QueueUpdateHook')])
    messages = _queue_notes_while(runner.train)
    if not warned:
        assert messages == []
        return
    assert len(messages) == 2  # one per queue, once per run
    assert any(f'model.global_loss.queue_len={queue_len} holds '
               f'{queue_len / 8:.1f} epochs' in m for m in messages)
    assert all('model.' in m and '_len=4 (half an epoch)' in m
               for m in messages)


def test_broadcasts_every_queue_from_rank_zero_when_distributed(
        make_runner, tmp_path, monkeypatch):
    from densevit.engine.hooks import queue_update_hook
    runner = make_runner(tmp_path, max_iters=1)
    sent = []
    monkeypatch.setattr(queue_update_hook, 'get_world_size', lambda: 2)
    monkeypatch.setattr(queue_update_hook, 'broadcast',
                        lambda tensor, src: sent.append((tensor, src)))
    QueueUpdateHook().before_train(runner)
    model = runner.model
    expected = [model.global_loss.queue.keys, model.global_loss.queue.ptr,
                model.dense_loss.queue.keys, model.dense_loss.queue.ptr]
    assert len(sent) == 4 and all(src == 0 for _, src in sent)
    assert all(any(t is e for t, _ in sent) for e in expected)
