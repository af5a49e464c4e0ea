import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as mmengine_checkpoint

from densevit.engine import TrainStateHook

from engine_toys import Crash, CrashAt, ToyContrastiveModel

ALL_HOOKS = [
    dict(type='QueueUpdateHook'),
    dict(type='MomentumUpdateHook'),
    dict(type='LossWeightWarmupHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='TrainStateHook'),
]


def find_unsafe(obj, path='checkpoint'):
    """Paths of values that are not tensors / plain Python types."""
    if isinstance(obj, dict):
        return [
            p for k, v in obj.items() for p in find_unsafe(v, f'{path}.{k}')
        ]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj)
                for p in find_unsafe(v, f'{path}[{i}]')]
    if isinstance(obj, (np.ndarray, np.generic, HistoryBuffer)):
        return [f'{path}: {type(obj).__name__}']
    return []


def test_checkpoint_loads_with_weights_only(make_runner, tmp_path):
    runner = make_runner(
        tmp_path, max_iters=4, val_interval=2, custom_hooks=ALL_HOOKS)
    runner.train()
    checkpoint = torch.load(
        osp.join(tmp_path, 'iter_4.pth'), weights_only=True)
    assert find_unsafe(checkpoint) == []
    assert len(checkpoint['rng_states']) == 1
    # The NumPy dataset meta and the HistoryBuffers are there, encoded.
    assert checkpoint['meta']['dataset_meta']['palette']['data'].dtype == \
        torch.uint8
    assert 'train/loss' in checkpoint['message_hub']['log_scalars']


def test_stock_checkpoints_fail_weights_only_loading(make_runner, tmp_path):
    """Premise: stock mmengine checkpoints do not load with torch's default
    weights_only=True, so neither does a stock resume."""
    runner = make_runner(tmp_path, max_iters=2, ckpt_interval=2)
    runner.train()
    path = osp.join(tmp_path, 'iter_2.pth')
    assert find_unsafe(torch.load(path, weights_only=False)) != []
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # weights_only=True is torch's default
    # MMEngine's loader, which a stock resume uses (DenseViT registers its
    # own, which names the file: compat.checkpoint_files).
    with pytest.raises(pickle.UnpicklingError):
        mmengine_checkpoint.load_from_local(path, map_location='cpu')


def run_straight_and_resumed(make_runner, tmp_path, crash_at, **kwargs):
    """Build a run that trains in one go, and one that resumes after a crash
    before 0-based iteration ``crash_at`` (a checkpoint is saved there)."""
    straight = make_runner(tmp_path / 'straight', **kwargs)
    straight.train()
    hooks = kwargs.pop('custom_hooks')
    crashed = make_runner(
        tmp_path / 'resumed', custom_hooks=hooks + [CrashAt(crash_at)],
        **kwargs)
    with pytest.raises(Crash):
        crashed.train()
    # A new process: fresh model, resume='auto' finds last_checkpoint.
    resumed = make_runner(
        tmp_path / 'resumed',
        model=ToyContrastiveModel(),
        custom_hooks=hooks,
        resume=True,
        **kwargs)
    return straight, resumed


def assert_same_training_state(straight, resumed, resume_at):
    losses = straight.model.losses[resume_at:]
    assert len(losses) == len(resumed.model.losses) > 0
    np.testing.assert_allclose(resumed.model.losses, losses, rtol=0,
                               atol=1e-6)
    expected = straight.model.state_dict()
    actual = resumed.model.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:  # parameters, key encoder, both queues + pointers
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)
    torch.testing.assert_close(resumed.optim_wrapper.state_dict(),
                               straight.optim_wrapper.state_dict(),
                               rtol=0, atol=0)


@pytest.mark.parametrize(
    'num_samples',
    [8, 6],  # resume at an epoch boundary (4 iters/epoch) / mid-epoch
)
def test_resume_is_identical_to_uninterrupted_training(
        make_runner, tmp_path, num_samples):
    straight, resumed = run_straight_and_resumed(
        make_runner, tmp_path, crash_at=4, ckpt_interval=4, max_iters=8,
        num_samples=num_samples, val_interval=2, custom_hooks=ALL_HOOKS)
    warnings = []
    resumed.logger.warning = warnings.append
    resumed.train()
    assert_same_training_state(straight, resumed, resume_at=4)
    assert not [w for w in warnings if 'metainfo' in w]


def test_epoch_based_resume_is_identical(make_runner, tmp_path):
    # 3 epochs of 2 iterations; checkpoint after epoch 1 = iteration 2.
    straight, resumed = run_straight_and_resumed(
        make_runner, tmp_path, crash_at=2, ckpt_interval=1, max_iters=3,
        by_epoch=True, num_samples=4, custom_hooks=ALL_HOOKS)
    resumed.train()
    assert_same_training_state(straight, resumed, resume_at=2)


def test_resume_without_rng_states_diverges(make_runner, tmp_path,
                                            monkeypatch):
    """Control: the toy does depend on the restored RNG state."""
    straight, resumed = run_straight_and_resumed(
        make_runner, tmp_path, crash_at=4, ckpt_interval=4, max_iters=6,
        custom_hooks=ALL_HOOKS)
    original = TrainStateHook.after_load_checkpoint

    def drop_rng(self, runner, checkpoint):
        checkpoint.pop('rng_states')
        original(self, runner, checkpoint)

    monkeypatch.setattr(TrainStateHook, 'after_load_checkpoint', drop_rng)
    resumed.train()
    assert not np.allclose(resumed.model.losses, straight.model.losses[4:])


def test_mismatched_world_size_skips_rng_restore(make_runner, tmp_path):
    runner = make_runner(tmp_path, max_iters=1)
    warnings = []
    runner.logger.warning = warnings.append
    hook = TrainStateHook()
    checkpoint = dict(meta=dict(iter=2, epoch=0), rng_states=[{}, {}])
    hook.after_load_checkpoint(runner, checkpoint)
    assert hook._pending is None
    assert 'RNG states of 2 rank(s) but 1 are running' in warnings[0]


class RecordBatches(Hook):
    """Records the (randomly jittered) inputs of every trained batch."""

    def __init__(self) -> None:
        self.batches = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.batches.append(torch.stack(data_batch['inputs']))


def test_load_from_does_not_restore_the_rng(make_runner, tmp_path):
    """Fine-tuning from a checkpoint keeps the configured seed's randomness."""
    first = make_runner(tmp_path / 'a', max_iters=2, ckpt_interval=2,
                        custom_hooks=[dict(type='TrainStateHook')])
    first.train()
    runs = {}
    for name, load_from in (('fresh', None),
                            ('loaded', osp.join(tmp_path, 'a',
                                                'iter_2.pth'))):
        record = RecordBatches()
        runner = make_runner(
            tmp_path / name, max_iters=2, load_from=load_from,
            custom_hooks=[dict(type='TrainStateHook'), record])
        runner.train()
        runs[name] = record.batches
    for fresh, loaded in zip(runs['fresh'], runs['loaded']):
        torch.testing.assert_close(loaded, fresh, rtol=0, atol=0)
