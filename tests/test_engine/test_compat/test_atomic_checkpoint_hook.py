import errno
import glob
import os.path as osp

import pytest
import torch
from mmengine.fileio.backends import local_backend

from densevit.engine import AtomicCheckpointHook
from densevit.engine.compat import atomic_local_backend


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
        assert f.read() == osp.join(tmp_path, 'iter_2.pth')


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
        assert f.read() == osp.join(tmp_path, 'iter_6.pth')
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
