import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as mmengine_checkpoint

from densevit.engine.compat import (UnreadableCheckpointError,
                                    find_resumable_checkpoint,
                                    last_checkpoint_entry,
                                    read_last_checkpoint,
                                    remove_stale_temp_files)

from engine_toys import ToyContrastiveModel


class RunsCode:
    """Unpickling it calls a function: weights-only loading must refuse."""

    def __reduce__(self):
        return (print, ('unpickled',))


def write_bad_files(folder):
    """name -> path of an empty, a random, two truncated and an unsafe
    file."""
    good = osp.join(folder, 'good.pth')
    torch.save({'state_dict': {'w': torch.zeros(64)}, 'meta': {}}, good)
    paths = {name: osp.join(folder, f'{name}.pth')
             for name in ('empty', 'random', 'truncated', 'unsafe',
                          'legacy_truncated')}
    open(paths['empty'], 'wb').close()
    with open(paths['random'], 'wb') as f:
        f.write(bytes(range(256)) * 4)
    with open(good, 'rb') as f:
        data = f.read()
    with open(paths['truncated'], 'wb') as f:
        f.write(data[:len(data) // 2])
    torch.save({'state_dict': {'w': RunsCode()}}, paths['unsafe'])
    # torch's pre-1.6 format, cut in its tensor data.
    torch.save({'state_dict': {'w': torch.zeros(64)}, 'meta': {}},
               paths['legacy_truncated'], _use_new_zipfile_serialization=False)
    with open(paths['legacy_truncated'], 'rb') as f:
        data = f.read()
    with open(paths['legacy_truncated'], 'wb') as f:
        f.write(data[:-10])
    return paths


def save_training_checkpoint(path, step):
    torch.save({'meta': {'iter': step}, 'state_dict': {}}, path)


def test_stock_local_loader_errors_do_not_name_the_file(tmp_path):
    """Premise: mmengine's load_from_local calls a bare torch.load: an empty
    file gives a bare EOFError, garbage torch's advice to load unsafely."""
    paths = write_bad_files(str(tmp_path))
    with pytest.raises(EOFError) as empty:
        mmengine_checkpoint.load_from_local(paths['empty'], 'cpu')
    assert str(tmp_path) not in str(empty.value)
    with pytest.raises(pickle.UnpicklingError,
                       match='`weights_only` set to `False`'):
        mmengine_checkpoint.load_from_local(paths['random'], 'cpu')


@pytest.mark.parametrize('name, reason', [
    ('empty', r'is empty \(0 bytes\)'),
    ('random', 'is truncated or corrupted'),
    ('truncated', 'is truncated or corrupted'),
    ('legacy_truncated', 'is truncated or corrupted'),
    ('unsafe', r'holds Python objects \(print\)'),
])
def test_unreadable_checkpoints_name_the_file_and_not_unsafe_loading(
        tmp_path, name, reason):
    paths = write_bad_files(str(tmp_path))
    # The loader MMEngine uses for local paths (load_from, resume,
    # Pretrained, init_model) is DenseViT's.
    with pytest.raises(UnreadableCheckpointError, match=reason) as error:
        CheckpointLoader.load_checkpoint(paths[name], map_location='cpu')
    message = str(error.value)
    assert message.startswith(f'Checkpoint {paths[name]} ')
    assert 'Fix:' in message
    assert 'weights_only=False' not in message
    assert 'weights_only` set to `False' not in message
    assert 'safe_globals' not in message
    assert error.value.path == paths[name]


def test_missing_checkpoint_is_named(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match=f'Checkpoint {missing}'):
        CheckpointLoader.load_checkpoint(missing)


def test_stock_pointer_is_taken_verbatim(tmp_path):
    """Premise: find_latest_checkpoint returns last_checkpoint's text as it
    is, so a copied work dir points into the original one."""
    copy = tmp_path / 'copy'
    copy.mkdir()
    original = str(tmp_path / 'original' / 'iter_4.pth')
    (copy / 'last_checkpoint').write_text(original)
    (copy / 'iter_4.pth').write_bytes(b'')
    assert mmengine_checkpoint.find_latest_checkpoint(str(copy)) == original


def test_pointer_is_relative_inside_the_work_dir(tmp_path):
    work_dir = str(tmp_path / 'run')
    assert last_checkpoint_entry(work_dir,
                                 osp.join(work_dir, 'iter_4.pth')) == \
        'iter_4.pth'
    assert last_checkpoint_entry(work_dir, osp.join(
        work_dir, 'ckpts', 'iter_4.pth')) == osp.join('ckpts', 'iter_4.pth')
    # Elsewhere (out_dir) or remote: as it is.
    outside = str(tmp_path / 'run2' / 'iter_4.pth')
    assert last_checkpoint_entry(work_dir, outside) == outside
    assert last_checkpoint_entry(work_dir, 's3://b/run/iter_4.pth') == \
        's3://b/run/iter_4.pth'


def test_read_last_checkpoint_resolves_in_the_current_work_dir(tmp_path):
    work_dir = tmp_path / 'copy'
    work_dir.mkdir()
    assert read_last_checkpoint(str(work_dir)) is None
    (work_dir / 'last_checkpoint').write_text('iter_4.pth')
    assert read_last_checkpoint(str(work_dir)) == str(work_dir / 'iter_4.pth')
    # An absolute pointer of an older run into the original work dir: the
    # copy's own file wins when it is there...
    original = tmp_path / 'original'
    original.mkdir()
    (original / 'iter_4.pth').write_bytes(b'x')
    (work_dir / 'last_checkpoint').write_text(str(original / 'iter_4.pth'))
    assert read_last_checkpoint(str(work_dir)) == str(original / 'iter_4.pth')
    (work_dir / 'iter_4.pth').write_bytes(b'x')
    assert read_last_checkpoint(str(work_dir)) == str(work_dir / 'iter_4.pth')
    # ... a remote pointer is left alone.
    (work_dir / 'last_checkpoint').write_text('s3://b/iter_4.pth')
    assert read_last_checkpoint(str(work_dir)) == 's3://b/iter_4.pth'


def test_find_resumable_checkpoint_skips_bad_newest_ones(tmp_path):
    folder = str(tmp_path)
    for step in (2, 4, 6, 10):
        save_training_checkpoint(osp.join(folder, f'iter_{step}.pth'), step)
    paths = write_bad_files(folder)
    shutil.copy(paths['empty'], osp.join(folder, 'iter_6.pth'))
    shutil.copy(paths['truncated'], osp.join(folder, 'iter_4.pth'))
    # iter_8.pth is named by the pointer but missing (a moved file).
    (tmp_path / 'last_checkpoint').write_text('iter_8.pth')
    path, skipped = find_resumable_checkpoint(folder, 'iter_{}.pth')
    # iter_10 is numbered above the pointer: left from an earlier run.
    assert path == osp.join(folder, 'iter_2.pth')
    assert [(osp.basename(p), reason.split(' (')[0]) for p, reason in
            skipped] == [('iter_8.pth', 'does not exist'),
                         ('iter_6.pth', 'is empty'),
                         ('iter_4.pth', 'is truncated or corrupted')]
    # A loadable file that is not a training checkpoint is skipped too.
    torch.save({'w': torch.zeros(1)}, osp.join(folder, 'iter_2.pth'))
    path, skipped = find_resumable_checkpoint(folder, 'iter_{}.pth')
    assert path is None and 'not a training checkpoint' in skipped[-1][1]
    # No pointer: nothing to resume (MMEngine then starts afresh).
    os.remove(tmp_path / 'last_checkpoint')
    assert find_resumable_checkpoint(folder, 'iter_{}.pth') == (None, [])


def test_resume_skips_a_bad_newest_checkpoint(make_runner, tmp_path):
    hooks = [dict(type='TrainStateHook')]
    make_runner(tmp_path, max_iters=4, ckpt_interval=2,
                custom_hooks=hooks).train()
    (tmp_path / 'iter_4.pth').write_bytes(b'')  # e.g. a full disk on copy
    resumed = make_runner(tmp_path, model=ToyContrastiveModel(), max_iters=6,
                          ckpt_interval=2, custom_hooks=hooks, resume=True)
    warnings = []
    resumed.logger.warning = warnings.append
    resumed.train()
    # Resumed from iteration 2: four more steps.
    assert len(resumed.model.losses) == 4
    assert any(str(tmp_path / 'iter_4.pth') in w and 'is empty' in w
               for w in warnings)
    assert torch.load(tmp_path / 'iter_6.pth')['meta']['iter'] == 6


def test_resume_fails_clearly_when_no_checkpoint_loads(make_runner,
                                                       tmp_path):
    make_runner(tmp_path, max_iters=2, ckpt_interval=2,
                custom_hooks=[dict(type='TrainStateHook')]).train()
    (tmp_path / 'iter_2.pth').write_bytes(b'\x00' * 100)
    resumed = make_runner(tmp_path, max_iters=4, ckpt_interval=2,
                          resume=True)
    with pytest.raises(RuntimeError, match='no checkpoint of .* loads'):
        resumed.train()


def test_explicit_resume_path_is_not_replaced(make_runner, tmp_path):
    make_runner(tmp_path, max_iters=4, ckpt_interval=2,
                custom_hooks=[dict(type='TrainStateHook')]).train()
    bad = tmp_path / 'iter_4.pth'
    bad.write_bytes(b'')
    resumed = make_runner(tmp_path / 'next', max_iters=6, ckpt_interval=2,
                          resume=True, load_from=str(bad))
    with pytest.raises(UnreadableCheckpointError, match=f'{bad} is empty'):
        resumed.train()


def test_moved_work_dir_resumes_from_its_own_checkpoint(make_runner,
                                                         tmp_path):
    hooks = [dict(type='TrainStateHook')]
    make_runner(tmp_path / 'before', max_iters=4, ckpt_interval=2,
                custom_hooks=hooks).train()
    os.rename(tmp_path / 'before', tmp_path / 'after')
    resumed = make_runner(tmp_path / 'after', model=ToyContrastiveModel(),
                          max_iters=6, ckpt_interval=2, custom_hooks=hooks,
                          resume=True)
    resumed.train()
    assert len(resumed.model.losses) == 2  # iterations 4 and 5


def dead_pid():
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def test_remove_stale_temp_files(tmp_path):
    dead, alive = dead_pid(), os.getppid()
    names = {
        f'iter_4.pth.tmp-{dead}-0123abcd': False,
        f'last_checkpoint.tmp-{dead}-ffffffff': False,
        f'iter_6.pth.tmp-{alive}-0123abcd': True,  # a save in progress
        f'iter_6.pth.tmp-{os.getpid()}-0123abcd': True,
        'iter_4.pth': True,
        'notes.tmp-old': True,
        f'iter_4.pth.tmp-{dead}-XYZ': True,  # not the writer's pattern
    }
    for name in names:
        (tmp_path / name).write_bytes(b'x')
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(map(osp.basename, removed)) == sorted(
        name for name, kept in names.items() if not kept)
    assert sorted(os.listdir(tmp_path)) == sorted(
        name for name, kept in names.items() if kept)


def test_training_removes_stale_temp_files(make_runner, tmp_path):
    stale = tmp_path / f'iter_2.pth.tmp-{dead_pid()}-0123abcd'
    tmp_path.mkdir(exist_ok=True)
    stale.write_bytes(b'x' * 10)
    runner = make_runner(tmp_path, max_iters=1, ckpt_interval=1)
    warnings = []
    runner.logger.warning = warnings.append
    runner.train()
    assert not stale.exists()
    assert any(str(stale) in w for w in warnings)
