"""Deterministic fit/score split of probe samples, and its chance level."""
from typing import Optional, Sequence, Tuple

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
        train_fraction (float): share used to fit the probe, in (0, 1)
            (checked by the metric that takes it). At least one sample lands
            on each side. Defaults to 0.5.
        seed (int): permutation seed. Defaults to 0.

    Returns:
        tuple[Tensor, Tensor]: sorted train and test indices.
    """
    if num_samples < 2:
        raise ValueError(
            f'A probe needs at least 2 samples (one to fit, one to score), '
            f'but {num_samples} were collected. Evaluate on more samples.')
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_samples, generator=generator)
    num_train = min(
        max(round(num_samples * train_fraction), 1), num_samples - 1)
    return perm[:num_train].sort().values, perm[num_train:].sort().values


def fit_score_split(num_samples: int,
                    train_fraction: float = 0.5,
                    seed: int = 0,
                    fit: Optional[Sequence[bool]] = None,
                    source: str = 'The fit flags') -> Tuple[Tensor, Tensor]:
    """Fit and score indices: given by ``fit`` flags, else seeded.

    Without ``fit`` this is :func:`probe_split`. With it (one flag per
    sample, e.g. whether the sample's path marks it as a fit image) the
    flagged samples fit and the others are scored.

    Args:
        num_samples (int): number of collected samples.
        train_fraction (float): share used to fit when ``fit`` is None.
            Defaults to 0.5.
        seed (int): permutation seed when ``fit`` is None. Defaults to 0.
        fit (Sequence[bool], optional): ``(num_samples,)`` flags.
        source (str): what set the flags, to name it in the error.

    Returns:
        tuple[Tensor, Tensor]: sorted fit and score indices.

    Raises:
        ValueError: the flags leave one side empty.
    """
    if fit is None:
        return probe_split(num_samples, train_fraction, seed)
    fit = torch.as_tensor(list(fit), dtype=torch.bool).reshape(-1)
    if fit.numel() != num_samples:
        raise ValueError(f'{source}: {fit.numel()} flags for {num_samples} '
                         'samples; one per sample is needed.')
    fit_idx, score_idx = fit.nonzero()[:, 0], (~fit).nonzero()[:, 0]
    if not len(fit_idx) or not len(score_idx):
        raise ValueError(
            f'{source} leaves {len(fit_idx)} samples to fit and '
            f'{len(score_idx)} to score; both need some.')
    return fit_idx, score_idx


def seeded_subsample(num_rows: int, max_rows: int, seed: int = 0) -> Tensor:
    """Sorted indices of at most ``max_rows`` of ``range(num_rows)``.

    All rows when ``num_rows <= max_rows``, else a seeded uniform draw
    without replacement: the same arguments give the same rows on every
    run and rank.

    Args:
        num_rows (int): rows to draw from.
        max_rows (int): how many to keep (>= 1).
        seed (int): seed of the draw. Defaults to 0.

    Returns:
        Tensor: long indices, ascending.
    """
    if num_rows <= max_rows:
        return torch.arange(num_rows)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(
        num_rows, generator=generator)[:max_rows].sort().values


def majority_class(labels: Tensor,
                   ignore_index: Optional[int] = None) -> Tuple[int, float]:
    """The most frequent label and its frequency: the best constant guess.

    Its frequency is the chance level a probe scored on ``labels`` has to
    beat (a probe that ignored its features could reach it by always
    answering this class).

    Args:
        labels (Tensor): integer labels, any shape.
        ignore_index (int, optional): label left out of the count.

    Returns:
        tuple[int, float]: (class id, its share of the counted labels);
        ties go to the lower class id.
    """
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if ignore_index is not None:
        labels = labels[labels != ignore_index]
    if labels.numel() == 0:
        raise ValueError('No labelled entry to take a chance level from: '
                         'the scored split is empty or all ignore_index.')
    counts = torch.bincount(labels)
    top = int(counts.argmax())
    return top, float(counts[top]) / labels.numel()
