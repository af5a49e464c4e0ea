"""Ground-truth patch correspondence between two crops of one image.

Coordinates are continuous pixel coordinates: pixel ``x`` covers
``[x, x + 1)``, so a crop box ``[x1, y1, x2, y2]`` (x2/y2 exclusive) covers
``[x1, x2) x [y1, y2)`` and resizing maps it linearly onto the view. A
horizontal flip applied after crop + resize maps the view fraction ``u`` to
``1 - u``.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from densevit.models.utils.view_geometry import (cell_distance,
                                                 locate_in_other_view)


def _check_grid(grid_hw: Sequence[int],
                name: str = 'grid_hw') -> Tuple[int, int]:
    if len(grid_hw) != 2 or int(grid_hw[0]) <= 0 or int(grid_hw[1]) <= 0:
        raise ValueError(f'{name} must be two positive ints (H, W) of the '
                         f'patch grid, but got {tuple(grid_hw)}.')
    return int(grid_hw[0]), int(grid_hw[1])


def _check_views(view_boxes: Tensor, view_flips: Tensor) -> None:
    if view_boxes.shape != (2, 4):
        raise ValueError(
            'view_boxes must be a (2, 4) tensor of [x1, y1, x2, y2] crop '
            'boxes (original image pixels) for the two views, but got shape '
            f'{tuple(view_boxes.shape)}.')
    if view_flips.numel() != 2:
        raise ValueError(
            'view_flips must hold one horizontal-flip flag per '
            f'view (2,), but got shape {tuple(view_flips.shape)}.')
    widths = view_boxes[:, 2] - view_boxes[:, 0]
    heights = view_boxes[:, 3] - view_boxes[:, 1]
    if (widths <= 0).any() or (heights <= 0).any():
        raise ValueError('view_boxes must have x2 > x1 and y2 > y1, but got '
                         f'{view_boxes.tolist()}.')


def correspondence_ground_truth(
        view_boxes: Tensor,
        view_flips: Tensor,
        grid_hw: Sequence[int],
        grid_hw2: Optional[Sequence[int]] = None
) -> Tuple[Tensor, Tensor, Tensor]:
    """Which view-2 patch each view-1 patch centre falls into.

    For view-1 patch ``i`` (row-major over ``grid_hw``) its centre is mapped
    view-1 → original image (through view 1's box and flip) → view 2
    (through view 2's box and flip). A point exactly on a patch border
    belongs to the patch on its right / below.

    Args:
        view_boxes (Tensor): ``(2, 4)`` crop boxes ``[x1, y1, x2, y2]`` in
            original image pixels, x2/y2 exclusive.
        view_flips (Tensor): ``(2,)`` bool, horizontal flip of each view,
            applied after cropping and resizing.
        grid_hw (Sequence[int]): ``(H, W)`` patch grid of view 1.
        grid_hw2 (Sequence[int], optional): patch grid of view 2. Defaults
            to ``grid_hw``.

    Returns:
        tuple[Tensor, Tensor, Tensor]:
        - ``gt_index`` ``(S,)`` long, row-major view-2 patch index, ``-1``
          where not valid;
        - ``valid`` ``(S,)`` bool, the centre lies inside both views;
        - ``gt_rowcol`` ``(S, 2)`` long, view-2 patch ``(row, col)``,
          ``-1`` where not valid.
    """
    h1, w1 = _check_grid(grid_hw)
    h2, w2 = _check_grid(grid_hw if grid_hw2 is None else grid_hw2, 'grid_hw2')
    # float64: centres exactly on a border must not drift across it.
    boxes = torch.as_tensor(view_boxes).detach().cpu().to(torch.float64)
    flips = torch.as_tensor(view_flips).detach().cpu().reshape(-1).bool()
    _check_views(boxes, flips)
    position, inside = locate_in_other_view(boxes[None], flips[None],
                                            (h1, w1), (h2, w2))
    valid = inside[0]
    row2 = torch.floor(position[0, :, 0]).long().clamp(0, h2 - 1)
    col2 = torch.floor(position[0, :, 1]).long().clamp(0, w2 - 1)
    gt_index = torch.where(valid, row2 * w2 + col2, torch.full_like(col2, -1))
    gt_rowcol = torch.stack([row2, col2], dim=1)
    gt_rowcol[~valid] = -1
    return gt_index, valid, gt_rowcol


def correspondence_correct(pred: Tensor,
                           gt: Tensor,
                           valid: Tensor,
                           grid_hw: Sequence[int],
                           tolerance: int = 1) -> Tensor:
    """Per patch: is the prediction within ``tolerance`` patches of the truth.

    Distance is Chebyshev (max of row and column offset) on the view-2 grid,
    :func:`densevit.models.utils.view_geometry.cell_distance`.

    Args:
        pred (Tensor): ``(S,)`` predicted view-2 patch index per view-1 patch.
        gt (Tensor): ``(S,)`` true view-2 patch index (any value where not
            valid).
        valid (Tensor): ``(S,)`` bool, which patches have a truth.
        grid_hw (Sequence[int]): ``(H, W)`` of the view-2 patch grid.
        tolerance (int): largest Chebyshev distance counted as correct.

    Returns:
        Tensor: ``(S,)`` bool on the CPU, False wherever ``valid`` is False.
    """
    _, w = _check_grid(grid_hw)
    pred = torch.as_tensor(pred).reshape(-1).long().cpu()
    gt = torch.as_tensor(gt).reshape(-1).long().cpu()
    valid = torch.as_tensor(valid).reshape(-1).bool().cpu()
    if not pred.shape == gt.shape == valid.shape:
        raise ValueError(
            'pred, gt and valid must have the same number of patches, but got '
            f'{pred.numel()}, {gt.numel()} and {valid.numel()}.')
    return (cell_distance(pred, gt, w) <= tolerance) & valid


def correspondence_hits(pred: Tensor,
                        gt: Tensor,
                        valid: Tensor,
                        grid_hw: Sequence[int],
                        tolerance: int = 1) -> Tuple[int, int]:
    """Count valid patches whose prediction is within ``tolerance`` patches.

    The count of :func:`correspondence_correct` (Chebyshev distance on the
    view-2 grid).

    Args:
        pred (Tensor): ``(S,)`` predicted view-2 patch index per view-1 patch.
        gt (Tensor): ``(S,)`` true view-2 patch index.
        valid (Tensor): ``(S,)`` bool, which patches have a truth.
        grid_hw (Sequence[int]): ``(H, W)`` of the view-2 patch grid.
        tolerance (int): largest Chebyshev distance counted as correct.

    Returns:
        tuple[int, int]: (correct, number of valid patches).
    """
    correct = correspondence_correct(pred, gt, valid, grid_hw, tolerance)
    valid = torch.as_tensor(valid).reshape(-1).bool()
    return int(correct.sum()), int(valid.sum())


def correspondence_position_prediction(grid_hw: Sequence[int]) -> Tensor:
    """The geometry-only guess: every view-1 patch matched to its own cell.

    View-1 patch ``i`` (row-major) is predicted to be view-2 patch ``i`` (the
    same ``(row, col)``), which is right whenever the two crops coincide; it
    is the baseline a feature matcher has to beat.

    Args:
        grid_hw (Sequence[int]): ``(H, W)`` patch grid of both views.

    Returns:
        Tensor: ``(H * W,)`` long, ``arange(H * W)``.
    """
    h, w = _check_grid(grid_hw)
    return torch.arange(h * w)


def correspondence_random_hits(gt: Tensor,
                               valid: Tensor,
                               grid_hw: Sequence[int],
                               tolerance: int = 1) -> Tuple[float, int]:
    """Expected hits of a uniformly random view-2 patch per valid patch.

    For a view-1 patch whose truth is view-2 cell ``(r, c)``, a uniform
    guess is correct with probability (cells of the view-2 grid within
    Chebyshev ``tolerance`` of ``(r, c)``) / ``H * W``; the sum over valid
    patches is the expected number of hits, exactly (no sampling).

    Args:
        gt (Tensor): ``(S,)`` true view-2 patch index.
        valid (Tensor): ``(S,)`` bool, which patches have a truth.
        grid_hw (Sequence[int]): ``(H, W)`` of the view-2 patch grid.
        tolerance (int): largest Chebyshev distance counted as correct.

    Returns:
        tuple[float, int]: (expected correct, number of valid patches).
    """
    h, w = _check_grid(grid_hw)
    gt = torch.as_tensor(gt).reshape(-1).long().cpu()
    valid = torch.as_tensor(valid).reshape(-1).bool().cpu()
    gt = gt[valid]
    rows, cols = gt // w, gt % w
    # Neighbourhood size, clipped at the grid border.
    top, bottom = (rows - tolerance).clamp(min=0), (rows + tolerance).clamp(
        max=h - 1)
    left, right = (cols - tolerance).clamp(min=0), (cols + tolerance).clamp(
        max=w - 1)
    n_rows, n_cols = bottom - top + 1, right - left + 1
    return float((n_rows * n_cols).sum()) / (h * w), int(gt.numel())
