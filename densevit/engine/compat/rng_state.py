"""Capture and restore the global random number generators of one process.

The state is made of tensors and plain Python types only, so a checkpoint
holding it loads with ``torch.load(path, weights_only=True)``.
"""
import random
from typing import Any, Dict

import numpy as np
import torch


def get_rng_state() -> Dict[str, Any]:
    """Return the state of Python's ``random``, NumPy's global generator,
    torch's CPU generator and, once CUDA is in use, the current CUDA device's
    generator."""
    version, mt_state, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = dict(
        python=dict(
            version=version,
            state=torch.tensor(mt_state, dtype=torch.int64),
            gauss_next=gauss_next),
        numpy=dict(
            kind=str(kind),
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached_gaussian)),
        torch=torch.get_rng_state())
    # Only when CUDA is already initialised: querying it otherwise would
    # create a CUDA context in CPU-only runs on GPU machines.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore generators from :func:`get_rng_state`'s output.

    Tensors may come back on a GPU (``Runner.resume`` loads checkpoints with
    ``map_location`` set to the device), so they are moved to the CPU first.
    """
    py = state['python']
    random.setstate((int(py['version']),
                     tuple(int(v) for v in py['state'].cpu().tolist()),
                     py['gauss_next']))
    npy = state['numpy']
    np.random.set_state(
        (npy['kind'], npy['keys'].cpu().numpy().astype(np.uint32),
         int(npy['pos']), int(npy['has_gauss']),
         float(npy['cached_gaussian'])))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())
