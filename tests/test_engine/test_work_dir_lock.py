"""One training run per work dir."""
import errno
import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from densevit.apis import build_runner
from densevit.engine import work_dir_lock
from densevit.engine.work_dir_lock import (WorkDirLockedError, lock_work_dir,
                                           lock_work_dir_for_training)

DEMO = (Path(__file__).parents[2] / 'configs' / 'densevit' /
        'densevit_vit-tiny-d4-p8_1xb32-demo-coslr-4e_synthetic-64px.py')
# Another training process: takes the lock, forks a dataloader-like worker,
# says so and waits. The module is loaded from its file (stdlib only), so
# the process starts in a blink.
HOLDER = '''
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location('lock', sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.lock_work_dir(sys.argv[2])
worker = os.fork()
if worker == 0:
    time.sleep(60)
    os._exit(0)
print('locked', worker, flush=True)
time.sleep(60)
'''


@pytest.fixture
def other_run(tmp_path):
    """A process holding the lock of ``tmp_path``; yields (process, pid of
    its forked worker)."""
    holder = subprocess.Popen(
        [sys.executable, '-c', HOLDER, work_dir_lock.__file__,
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    words = holder.stdout.readline().split()
    assert words[0] == 'locked'
    worker = int(words[1])
    yield holder, worker
    holder.kill()
    holder.wait()
    try:
        os.kill(worker, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_second_run_fails_at_once_and_a_killed_run_leaves_no_lock(
        tmp_path, other_run):
    holder, worker = other_run
    with pytest.raises(WorkDirLockedError) as error:
        lock_work_dir(tmp_path)
    message = str(error.value)
    assert f'The work dir {os.path.realpath(tmp_path)} is in use' in message
    assert f'pid {holder.pid} on ' in message
    assert '--work-dir DIR' in message
    holder.send_signal(signal.SIGKILL)  # a crash: no clean-up runs
    holder.wait()
    os.kill(worker, 0)  # its forked worker still lives...
    lock = lock_work_dir(tmp_path)  # ...and the lock is free
    assert lock.path == os.path.join(os.path.realpath(tmp_path), '.lock')
    lock.release()


def test_build_runner_refuses_a_work_dir_in_use(tmp_path, other_run):
    holder, _ = other_run
    cfg = Config.fromfile(str(DEMO))
    cfg.work_dir = str(tmp_path)
    cfg.launcher = 'none'
    with pytest.raises(WorkDirLockedError, match=f'pid {holder.pid} '):
        build_runner(cfg)
    assert os.listdir(tmp_path) == ['.lock']  # no log dir written


def test_one_process_may_build_several_runners_in_a_work_dir(tmp_path):
    lock = lock_work_dir(tmp_path)
    assert lock_work_dir(str(tmp_path) + '/.') is lock
    lock.release()
    # Released: another process can lock it.
    subprocess.run(
        [sys.executable, '-c', HOLDER.replace('time.sleep(60)', 'pass'),
         work_dir_lock.__file__, str(tmp_path)], check=True,
        stdout=subprocess.DEVNULL)


@pytest.mark.parametrize('rank, locked', [('0', True), ('1', False)])
def test_only_rank_0_locks(tmp_path, monkeypatch, rank, locked):
    monkeypatch.setenv('RANK', rank)
    cfg = Config(dict(work_dir=str(tmp_path), launcher='pytorch'))
    lock_work_dir_for_training(cfg)
    held = work_dir_lock._held.pop(os.path.realpath(tmp_path), None)
    assert (held is not None) == locked
    if held:
        held.release()


def test_a_file_system_without_flock_warns(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, 'Function not implemented')

    monkeypatch.setattr(fcntl, 'flock', no_flock)
    with pytest.warns(UserWarning, match='Cannot lock the work dir .* make '
                      'sure no other run trains in it'):
        lock_work_dir(tmp_path).release()
