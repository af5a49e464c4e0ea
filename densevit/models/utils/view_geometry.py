"""Where each view-1 patch lies in view 2, from the recorded crop geometry.

Conventions are those of ``TwoViewCrop``: a crop box ``[x1, y1, x2, y2]`` in
original-image pixels (x2/y2 exclusive) is resized onto the whole view, and a
horizontal flip, applied after the resize, maps the view fraction ``u`` to
``1 - u``. Everything is batched and stays on the device, so the training
step reads no value back to the host.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def locate_in_other_view(
        view_boxes: Tensor,
        view_flips: Tensor,
        grid_hw: Sequence[int],
        grid_hw2: Optional[Sequence[int]] = None) -> Tuple[Tensor, Tensor]:
    """Map the centre of every view-1 patch into view 2's patch grid.

    Computed in float32, or in float64 for float64 boxes (evaluation wants
    centres exactly on a border to stay on their side).

    Args:
        view_boxes (Tensor): ``(B, 2, 4)`` crop boxes of view 1 and view 2.
        view_flips (Tensor): ``(B, 2)`` bool horizontal flips of the views.
        grid_hw (Sequence[int]): ``(H, W)`` patch grid of view 1.
        grid_hw2 (Sequence[int], optional): patch grid of view 2. Defaults
            to ``grid_hw``.

    Returns:
        tuple[Tensor, Tensor]:
        - ``position`` ``(B, H·W, 2)``: (row, col) of each view-1 patch
          centre in view-2 grid units (cell ``(r, c)`` spans
          ``[r, r+1) x [c, c+1)``), row-major over view-1 patches;
        - ``inside`` ``(B, H·W)`` bool: the centre lies inside view 2.
    """
    height, width = int(grid_hw[0]), int(grid_hw[1])
    height2, width2 = (height, width) if grid_hw2 is None else (
        int(grid_hw2[0]), int(grid_hw2[1]))
    boxes = view_boxes.to(torch.promote_types(view_boxes.dtype,
                                              torch.float32))
    flips = view_flips.to(torch.bool)
    rows, cols = torch.meshgrid(
        torch.arange(height, device=boxes.device, dtype=boxes.dtype),
        torch.arange(width, device=boxes.device, dtype=boxes.dtype),
        indexing='ij')
    u1 = ((cols + 0.5) / width).reshape(1, -1)
    v1 = ((rows + 0.5) / height).reshape(1, -1)
    u1 = torch.where(flips[:, :1], 1.0 - u1, u1)

    box1, box2 = boxes[:, 0, :, None], boxes[:, 1, :, None]
    x = box1[:, 0] + u1 * (box1[:, 2] - box1[:, 0])
    y = box1[:, 1] + v1 * (box1[:, 3] - box1[:, 1])
    u2 = (x - box2[:, 0]) / (box2[:, 2] - box2[:, 0])
    v2 = (y - box2[:, 1]) / (box2[:, 3] - box2[:, 1])
    inside = (u2 >= 0) & (u2 < 1) & (v2 >= 0) & (v2 < 1)
    u2 = torch.where(flips[:, 1:], 1.0 - u2, u2)
    position = torch.stack([v2 * height2, u2 * width2], dim=-1)
    return position, inside


def cell_index(position: Tensor, grid_hw: Sequence[int]) -> Tensor:
    """The view-2 cell holding each mapped position, as a row-major index.

    Positions outside the grid (patches outside view 2) are clamped to the
    nearest border cell.

    Args:
        position (Tensor): ``(B, S, 2)`` from :func:`locate_in_other_view`.
        grid_hw (Sequence[int]): ``(H, W)`` of view 2's grid.

    Returns:
        LongTensor: ``(B, S)`` indices in ``[0, H·W)``.
    """
    return _cell(position, grid_hw).long()


def _cell(position: Tensor, grid_hw: Sequence[int]) -> Tensor:
    """:func:`cell_index` in ``position``'s float dtype (NaN stays NaN)."""
    height, width = int(grid_hw[0]), int(grid_hw[1])
    row = position[..., 0].floor().clamp(0, height - 1)
    col = position[..., 1].floor().clamp(0, width - 1)
    return row * width + col


def cell_distance(index_a: Tensor, index_b: Tensor, width: int) -> Tensor:
    """Chebyshev distance between cells of a grid given by row-major index.

    Cell ``i`` of a grid ``width`` cells wide is at row ``i // width``,
    column ``i % width``; the distance between two cells is the larger of
    their row and column offsets, so the 8 neighbours of a cell are at
    distance 1.

    Args:
        index_a (Tensor): row-major cell indices, of an integer dtype or
            whole numbers in a floating dtype (exact up to ``2**24`` cells in
            float32).
        index_b (Tensor): row-major cell indices, broadcastable with
            ``index_a``.
        width (int): number of columns of the grid.

    Returns:
        Tensor: the distances, in the broadcast shape of ``index_a`` and
        ``index_b``, of their (promoted) dtype and on their device.
    """
    width = int(width)
    return torch.maximum((index_a // width - index_b // width).abs(),
                         (index_a % width - index_b % width).abs())


def window_mask(position: Tensor, grid_hw: Sequence[int],
                radius: int) -> Tensor:
    """View-2 cells within ``radius`` cells of each mapped position.

    A cell is allowed when the cell holding the position
    (:func:`cell_index`) is at Chebyshev distance (:func:`cell_distance`)
    ``<= radius`` from it; ``radius=0`` allows only that cell.

    Args:
        position (Tensor): ``(B, S, 2)`` from :func:`locate_in_other_view`.
        grid_hw (Sequence[int]): ``(H, W)`` of view 2's grid.
        radius (int): window half-size in cells, >= 0.

    Returns:
        Tensor: ``(B, S, H·W)`` bool, on ``position``'s device.
    """
    height, width = int(grid_hw[0]), int(grid_hw[1])
    # In the positions' float dtype, at least float32 (every cell index
    # exact): the (B, S, H·W) distances are the largest tensors here, and a
    # NaN position allows no cell.
    dtype = torch.promote_types(position.dtype, torch.float32)
    index = _cell(position.to(dtype), grid_hw)
    cells = torch.arange(height * width, device=position.device, dtype=dtype)
    return cell_distance(index[..., None], cells, width) <= radius
