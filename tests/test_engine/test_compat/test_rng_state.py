import io
import random

import numpy as np
import torch

from densevit.engine.compat import get_rng_state, set_rng_state


def draw():
    return (random.random(), random.gauss(0, 1), float(np.random.rand()),
            float(np.random.randn()), torch.rand(3).tolist())


def test_restores_every_generator_through_a_weights_only_checkpoint():
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    np.random.randn()  # and in NumPy's
    buffer = io.BytesIO()
    torch.save(get_rng_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    expected = draw()
    draw()  # move on
    set_rng_state(state)
    assert draw() == expected


def test_cuda_state_is_saved_once_cuda_is_in_use(monkeypatch):
    """No GPU here: a fake CUDA generator checks the 'cuda' entry."""
    fake = {'state': torch.tensor([1, 2], dtype=torch.uint8)}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_rng_state',
                        lambda: fake['state'].clone())
    monkeypatch.setattr(torch.cuda, 'set_rng_state',
                        lambda state: fake.update(state=state))
    state = get_rng_state()
    assert torch.equal(state['cuda'], torch.tensor([1, 2], dtype=torch.uint8))
    fake['state'] = torch.tensor([9, 9], dtype=torch.uint8)
    set_rng_state(state)
    assert torch.equal(fake['state'], torch.tensor([1, 2], dtype=torch.uint8))

    # An idle CUDA runtime is not initialised just to read its state.
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: False)
    assert 'cuda' not in get_rng_state()
