import errno
import glob
import os

import pytest
from mmengine.fileio import get_file_backend

from densevit.engine.compat import (ATOMIC_LOCAL_BACKEND,
                                    AtomicLocalBackend, atomic_write_bytes)


def test_replaces_the_file(tmp_path):
    path = tmp_path / 'sub' / 'ckpt.pth'
    atomic_write_bytes(b'old', path)
    atomic_write_bytes(b'new', path)
    assert path.read_bytes() == b'new'
    assert os.listdir(path.parent) == ['ckpt.pth']


def test_failure_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'ckpt.pth'
    path.write_bytes(b'old checkpoint')

    def failing_fsync(fd):
        raise OSError(errno.EIO, 'I/O error')

    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='I/O error'):
        atomic_write_bytes(b'new checkpoint', path)
    assert path.read_bytes() == b'old checkpoint'
    assert glob.glob(f'{tmp_path}/*.tmp-*') == []


def test_registered_as_a_file_backend(tmp_path):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend=ATOMIC_LOCAL_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put_text('pointer', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'pointer'
