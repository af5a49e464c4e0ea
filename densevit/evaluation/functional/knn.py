"""Weighted k-NN classification on frozen features (InstDisc / DINO)."""
import torch
import torch.nn.functional as F
from torch import Tensor

from .linear_probe import check_features_labels


def knn_predict(train_x: Tensor,
                train_y: Tensor,
                test_x: Tensor,
                num_classes: int,
                k: int = 20,
                temperature: float = 0.07,
                chunk_size: int = 256) -> Tensor:
    """Predicted class per test row by temperature-weighted k-NN vote.

    Each of the ``k`` training rows with the highest cosine similarity
    ``s`` to a test row votes for its label with weight ``exp(s / T)``.
    Similarities are computed ``chunk_size`` test rows at a time, so memory
    is ``O(chunk_size * N_train)``.

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
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, but got {chunk_size}.')

    train_n = F.normalize(train_x.float(), dim=1)
    train_y = train_y.to(train_n.device)
    k = min(k, train_n.shape[0])
    preds = []
    for chunk in test_x.float().to(train_n.device).split(chunk_size):
        sim = F.normalize(chunk, dim=1) @ train_n.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(chunk.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, train_y[top_idx], weights)
        preds.append(votes.argmax(dim=1))
    if not preds:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(preds)


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
