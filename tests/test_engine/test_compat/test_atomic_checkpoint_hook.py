import errno
import glob
import os.path as osp

import pytest
import torch
from mmengine.fileio.backends import local_backend

from densevit.engine import AtomicCheckpointHook, CheckpointMismatchError
from densevit.engine.compat import atomic_local_backend

from engine_toys import ToyContrastiveModel


class FailingFile:
    """Writes half of what it is given, then fails like a full disk."""

    def __init__(self, path, mode):
        self._file = open(path, mode)

    def write(self, data):
        self._file.write(data[:len(data) // 2])
        self._file.flush()
        raise OSError(errno.ENOSPC, 'No space left on device')

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def fail_checkpoint_writes_after(monkeypatch, module, good_writes):
    """Make writing a ``.pth`` file with ``open`` in ``module`` fail after
    ``good_writes`` successful ones."""
    calls = []

    def fake_open(path, mode='r', *args, **kwargs):
        if '.pth' in str(path) and ('w' in mode or 'x' in mode):
            calls.append(path)
            if len(calls) > good_writes:
                return FailingFile(path, mode)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(module, 'open', fake_open, raising=False)


def test_failed_save_keeps_the_previous_checkpoint(make_runner, tmp_path,
                                                   monkeypatch):
    fail_checkpoint_writes_after(monkeypatch, atomic_local_backend, 1)
    runner = make_runner(
        tmp_path,
        max_iters=4,
        checkpoint=dict(
            type='AtomicCheckpointHook', interval=2, by_epoch=False,
            max_keep_ckpts=1),
        custom_hooks=[dict(type='TrainStateHook')])
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    # The only kept checkpoint survives and is complete; nothing partial.
    assert sorted(map(osp.basename, glob.glob(f'{tmp_path}/iter_*'))) == [
        'iter_2.pth'
    ]
    assert glob.glob(f'{tmp_path}/*.tmp-*') == []
    torch.load(osp.join(tmp_path, 'iter_2.pth'), weights_only=True)
    with open(osp.join(tmp_path, 'last_checkpoint')) as f:
        assert f.read() == 'iter_2.pth'  # relative to the work dir


def test_stock_checkpoint_hook_loses_the_checkpoint(make_runner, tmp_path,
                                                    monkeypatch):
    """Premise: mmengine's LocalBackend writes in place and CheckpointHook
    deletes the kept checkpoint before saving the next."""
    fail_checkpoint_writes_after(monkeypatch, local_backend, 1)
    runner = make_runner(
        tmp_path,
        max_iters=4,
        checkpoint=dict(
            type='CheckpointHook', interval=2, by_epoch=False,
            max_keep_ckpts=1))
    with pytest.raises(OSError):
        runner.train()
    # iter_2 was deleted before iter_4 was written, and iter_4 is truncated.
    assert not osp.exists(osp.join(tmp_path, 'iter_2.pth'))
    with pytest.raises(Exception):
        torch.load(osp.join(tmp_path, 'iter_4.pth'), weights_only=False)


def test_keeps_max_keep_ckpts_and_points_to_the_last(make_runner, tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=6,
        checkpoint=dict(
            type='AtomicCheckpointHook', interval=1, by_epoch=False,
            max_keep_ckpts=2))
    runner.train()
    hook = next(h for h in runner.hooks
                if isinstance(h, AtomicCheckpointHook))
    assert hook.backend_args == dict(backend='densevit_atomic_local')
    assert sorted(map(osp.basename, glob.glob(f'{tmp_path}/iter_*'))) == [
        'iter_5.pth', 'iter_6.pth'
    ]
    with open(osp.join(tmp_path, 'last_checkpoint')) as f:
        assert f.read() == 'iter_6.pth'
    assert runner.message_hub.get_info('keep_ckpt_ids') == [5, 6]


def test_remote_or_explicit_backends_are_left_alone(make_runner, tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=1,
        checkpoint=dict(
            type='AtomicCheckpointHook', interval=1, by_epoch=False,
            backend_args=dict(backend='local')))
    runner.train()
    hook = next(h for h in runner.hooks
                if isinstance(h, AtomicCheckpointHook))
    assert hook.backend_args == dict(backend='local')


def train_with_queue_len(make_runner, work_dir, queue_len):
    make_runner(work_dir, model=ToyContrastiveModel(queue_len=queue_len),
                max_iters=2, ckpt_interval=2,
                custom_hooks=[dict(type='TrainStateHook')]).train()
    return osp.join(work_dir, 'iter_2.pth')


def test_stock_load_keeps_wrongly_shaped_weights_silently(make_runner,
                                                          tmp_path):
    """Premise: the Runner loads load_from with strict=False and only warns:
    weights of another shape keep their initial values."""
    ckpt = train_with_queue_len(make_runner, tmp_path / 'a', 32)
    model = ToyContrastiveModel(queue_len=64)
    initial = model.global_loss.queue.keys.clone()
    runner = make_runner(
        tmp_path / 'b', model=model, load_from=ckpt,
        checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
    runner.load_or_resume()
    assert torch.equal(model.global_loss.queue.keys, initial)


def test_resume_with_other_queue_sizes_fails(make_runner, tmp_path):
    train_with_queue_len(make_runner, tmp_path, 64)
    model = ToyContrastiveModel(queue_len=32)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    resumed = make_runner(tmp_path, model=model, max_iters=4,
                          ckpt_interval=2, resume=True)
    with pytest.raises(CheckpointMismatchError) as error:
        resumed.train()
    message = str(error.value)
    assert f'{tmp_path}/iter_2.pth does not fit' in message
    assert 'global_loss.queue.keys: checkpoint [64, 4], model [32, 4]' in \
        message
    assert 'dense_loss.queue.keys' in message
    # Raised before any weight was loaded.
    for key, value in model.state_dict().items():
        assert torch.equal(value, initial[key]), key


def test_load_from_is_strict_unless_strict_load_is_off(make_runner,
                                                       tmp_path):
    ckpt = train_with_queue_len(make_runner, tmp_path / 'a', 32)
    runner = make_runner(tmp_path / 'b',
                         model=ToyContrastiveModel(queue_len=64),
                         load_from=ckpt)
    with pytest.raises(CheckpointMismatchError, match='--partial-load'):
        runner.load_or_resume()

    model = ToyContrastiveModel(queue_len=64)
    queue = model.global_loss.queue.keys.clone()
    runner = make_runner(
        tmp_path / 'c', model=model, load_from=ckpt,
        checkpoint=dict(type='AtomicCheckpointHook', interval=2,
                        by_epoch=False, strict_load=False))
    runner.load_or_resume()
    # The weights that fit are loaded, the queues keep their values.
    source = torch.load(ckpt)['state_dict']
    assert torch.equal(model.online[0].weight, source['online.0.weight'])
    assert torch.equal(model.global_loss.queue.keys, queue)


def test_resume_needs_a_training_checkpoint(make_runner, tmp_path):
    ckpt = train_with_queue_len(make_runner, tmp_path, 64)
    weights_only = tmp_path / 'weights.pth'
    torch.save({'state_dict': torch.load(ckpt)['state_dict']}, weights_only)
    resumed = make_runner(tmp_path / 'b', max_iters=4, resume=True,
                          load_from=str(weights_only))
    with pytest.raises(CheckpointMismatchError,
                       match='not a training checkpoint.*load_from='):
        resumed.train()


def test_ranks_wait_for_the_final_save_before_leaving(make_runner, tmp_path,
                                                      monkeypatch):
    """In a distributed run every rank waits at the end of the run, so none
    exits (and can take rank 0 down with it) while the last save runs."""
    from densevit.engine.compat import atomic_checkpoint_hook
    runner = make_runner(tmp_path, max_iters=1)
    hook = next(h for h in runner.hooks
                if isinstance(h, AtomicCheckpointHook))
    waits = []
    monkeypatch.setattr(atomic_checkpoint_hook, 'barrier',
                        lambda: waits.append('barrier'))
    hook.after_run(runner)
    assert waits == []  # one process: nothing to wait for
    monkeypatch.setattr(atomic_checkpoint_hook, 'get_world_size', lambda: 2)
    hook.after_run(runner)
    assert waits == ['barrier']
