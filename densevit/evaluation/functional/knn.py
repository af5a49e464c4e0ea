"""Weighted k-NN classification on frozen features (InstDisc / DINO)."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .linear_probe import check_features_labels


def cosine_topk(memory: Tensor,
                queries: Tensor,
                k: int,
                query_chunk_size: int = 256,
                memory_chunk_size: int = 16384) -> Tuple[Tensor, Tensor]:
    """The ``k`` memory rows of highest cosine similarity to each query.

    Similarities are computed one ``query_chunk_size x memory_chunk_size``
    block at a time, keeping a running top-``k`` per query, so the working
    memory is ``O(query_chunk_size * (memory_chunk_size + k))`` however
    large the memory is (the normalised memory itself is one ``(N, C)``
    copy). The blocks give the same neighbours as one full similarity
    matrix, except that among exactly equal similarities another row may
    be picked.

    Args:
        memory (Tensor): ``(N, C)`` features, N >= 1.
        queries (Tensor): ``(M, C)`` features.
        k (int): neighbours per query (>= 1); clipped to N.
        query_chunk_size (int): queries per block. Defaults to 256.
        memory_chunk_size (int): memory rows per block. Defaults to 16384.

    Returns:
        tuple[Tensor, Tensor]: ``(M, min(k, N))`` similarities, highest
        first, and the long indices of their memory rows.
    """
    if query_chunk_size < 1 or memory_chunk_size < 1:
        raise ValueError('query_chunk_size and memory_chunk_size must be >= '
                         f'1, but got {query_chunk_size} and '
                         f'{memory_chunk_size}.')
    memory_n = F.normalize(memory.float(), dim=1)
    k = min(k, memory_n.shape[0])
    all_sims, all_idx = [], []
    for chunk in queries.float().to(memory_n.device).split(query_chunk_size):
        chunk = F.normalize(chunk, dim=1)
        best_sim = chunk.new_empty(chunk.shape[0], 0)
        best_idx = torch.empty(
            chunk.shape[0], 0, dtype=torch.long, device=chunk.device)
        for start in range(0, memory_n.shape[0], memory_chunk_size):
            block = memory_n[start:start + memory_chunk_size]
            sim, idx = (chunk @ block.T).topk(min(k, block.shape[0]), dim=1)
            sim = torch.cat([best_sim, sim], 1)
            best_sim, order = sim.topk(min(k, sim.shape[1]), dim=1)
            best_idx = torch.cat([best_idx, idx + start], 1).gather(1, order)
        all_sims.append(best_sim)
        all_idx.append(best_idx)
    if not all_sims:
        return (memory_n.new_zeros(0, k),
                torch.zeros(0, k, dtype=torch.long, device=memory_n.device))
    return torch.cat(all_sims), torch.cat(all_idx)


def knn_predict(train_x: Tensor,
                train_y: Tensor,
                test_x: Tensor,
                num_classes: int,
                k: int = 20,
                temperature: float = 0.07,
                chunk_size: int = 256,
                memory_chunk_size: int = 16384) -> Tensor:
    """Predicted class per test row by temperature-weighted k-NN vote.

    Each of the ``k`` training rows with the highest cosine similarity
    ``s`` to a test row votes for its label with weight
    ``softmax(s / T)`` over those ``k`` (proportional to ``exp(s / T)``;
    the softmax subtracts the largest ``s / T`` first, so a small ``T``
    does not overflow). Neighbours are searched by :func:`cosine_topk`,
    ``chunk_size`` test rows x ``memory_chunk_size`` training rows at a
    time.

    Args:
        train_x (Tensor): ``(N, C)`` training features.
        train_y (Tensor): ``(N,)`` labels in ``[0, num_classes)``.
        test_x (Tensor): ``(M, C)`` test features.
        num_classes (int): number of classes.
        k (int): neighbours (>= 1, checked by the caller that takes it from
            the user); clipped to N. Defaults to 20.
        temperature (float): vote temperature T (> 0, likewise). Defaults
            to 0.07.
        chunk_size (int): test rows per similarity block. Defaults to 256.
        memory_chunk_size (int): training rows per similarity block.
            Defaults to 16384.

    Returns:
        Tensor: ``(M,)`` long predictions (ties go to the lower class id).
    """
    train_x = torch.as_tensor(train_x)
    train_y = torch.as_tensor(train_y).long()
    test_x = torch.as_tensor(test_x)
    check_features_labels(train_x, train_y, num_classes)
    if test_x.dim() != 2 or test_x.shape[1] != train_x.shape[1]:
        raise ValueError(
            f'test features must be (M, {train_x.shape[1]}) like the '
            f'training features, but got shape {tuple(test_x.shape)}.')
    top_sim, top_idx = cosine_topk(train_x, test_x, k, chunk_size,
                                   memory_chunk_size)
    weights = (top_sim / temperature).softmax(dim=1)
    votes = weights.new_zeros(top_sim.shape[0], num_classes)
    votes.scatter_add_(1, train_y.to(top_idx.device)[top_idx], weights)
    return votes.argmax(dim=1)


def knn_top1(train_x: Tensor,
             train_y: Tensor,
             test_x: Tensor,
             test_y: Tensor,
             num_classes: int,
             k: int = 20,
             temperature: float = 0.07,
             chunk_size: int = 256) -> float:
    """Top-1 accuracy in ``[0, 1]`` of :func:`knn_predict` on the test split.

    Args:
        train_x (Tensor): ``(N, C)`` training features.
        train_y (Tensor): ``(N,)`` training labels.
        test_x (Tensor): ``(M, C)`` test features.
        test_y (Tensor): ``(M,)`` test labels.
        num_classes (int): number of classes.
        k (int): neighbours. Defaults to 20.
        temperature (float): vote temperature. Defaults to 0.07.
        chunk_size (int): test rows per similarity block. Defaults to 256.

    Returns:
        float: top-1 accuracy.
    """
    test_y = torch.as_tensor(test_y).long()
    check_features_labels(
        torch.as_tensor(test_x), test_y, num_classes, name='test')
    pred = knn_predict(train_x, train_y, test_x, num_classes, k, temperature,
                       chunk_size)
    return (pred == test_y.to(pred.device)).float().mean().item()
