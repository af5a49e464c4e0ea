"""Deterministic train/test split of collected probe samples."""
from typing import Tuple

import torch
from torch import Tensor


def probe_split(num_samples: int,
                train_fraction: float = 0.5,
                seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Split ``range(num_samples)`` into probe train and test indices.

    A seeded permutation, not the first ``train_fraction`` of the samples:
    datasets are often ordered by class, and a prefix split would then put
    whole classes only in one side. Same ``num_samples`` and ``seed`` give
    the same split on every run and rank.

    Args:
        num_samples (int): number of collected samples (>= 2).
        train_fraction (float): share used to fit the probe, in (0, 1).
            At least one sample lands on each side. Defaults to 0.5.
        seed (int): permutation seed. Defaults to 0.

    Returns:
        tuple[Tensor, Tensor]: sorted train and test indices.
    """
    if not 0 < train_fraction < 1:
        raise ValueError('train_fraction must be in (0, 1) (the share of '
                         'samples the probe is fitted on), but got '
                         f'{train_fraction}.')
    if num_samples < 2:
        raise ValueError(
            f'A probe needs at least 2 samples (one to fit, one to score), '
            f'but {num_samples} were collected. Evaluate on more samples.')
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_samples, generator=generator)
    num_train = min(
        max(round(num_samples * train_fraction), 1), num_samples - 1)
    return perm[:num_train].sort().values, perm[num_train:].sort().values
