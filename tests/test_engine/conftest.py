import types

import pytest
from mmengine.runner import loops

from engine_toys import build_runner


@pytest.fixture(autouse=True)
def no_epoch_transition_sleep(monkeypatch):
    """IterBasedTrainLoop sleeps 2 s at every dataloader restart (a guard
    for worker processes); the toys load in-process, so skip it."""
    monkeypatch.setattr(loops, 'time',
                        types.SimpleNamespace(sleep=lambda seconds: None))


@pytest.fixture
def make_runner():
    """``make_runner(work_dir, **options)`` -> Runner; see build_runner."""
    return build_runner
