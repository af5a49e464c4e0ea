"""Draw patch matches between two views, coloured by the crop geometry."""
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from densevit.evaluation.functional import (correspondence_correct,
                                            correspondence_ground_truth)
from .image_utils import (ImageLike, add_title, as_rgb_array, hstack,
                          resize_rgb, vstack)

Color = Tuple[int, int, int]

#: Line colours. Exact RGB values, so pictures (and tests) can count them.
CORRECT_COLOR: Color = (0, 255, 0)
WRONG_COLOR: Color = (255, 0, 0)
UNKNOWN_COLOR: Color = (128, 128, 128)
MATCH_COLOR: Color = (255, 255, 0)


def _grid(grid_hw: Sequence[int], name: str = 'grid_hw') -> Tuple[int, int]:
    if len(grid_hw) != 2 or int(grid_hw[0]) <= 0 or int(grid_hw[1]) <= 0:
        raise ValueError(f'`{name}` must be the (H, W) patch grid, two '
                         f'positive ints, got {tuple(grid_hw)}.')
    return int(grid_hw[0]), int(grid_hw[1])


def _flat(x, name: str, size: int, dtype: torch.dtype) -> Tensor:
    x = torch.as_tensor(x).detach().cpu().reshape(-1).to(dtype)
    if x.numel() != size:
        raise ValueError(f'`{name}` must have one entry per view-1 patch '
                         f'({size}), got {x.numel()}.')
    return x


def match_correctness(match: Tensor,
                      gt_index: Tensor,
                      valid: Tensor,
                      grid_hw: Sequence[int],
                      tolerance: int = 1) -> Tensor:
    """Per patch: is the match within ``tolerance`` patches of the truth.

    :func:`densevit.evaluation.functional.correspondence_correct` (the
    per-patch form of ``correspondence_hits``: Chebyshev distance on the
    view-2 grid), for colouring each line, with this module's input checks.

    Args:
        match (Tensor): (S,) predicted view-2 patch index per view-1 patch.
        gt_index (Tensor): (S,) true view-2 patch index (any value where
            not valid).
        valid (Tensor): (S,) bool, which patches have a truth.
        grid_hw (Sequence[int]): (H, W) of the view-2 patch grid.
        tolerance (int): largest Chebyshev distance counted as correct.
            Defaults to 1.

    Returns:
        Tensor: (S,) bool, False wherever ``valid`` is False.
    """
    grid = _grid(grid_hw)
    match = torch.as_tensor(match).reshape(-1).long().cpu()
    size = match.numel()
    gt = _flat(gt_index, 'gt_index', size, torch.long)
    valid = _flat(valid, 'valid', size, torch.bool)
    return correspondence_correct(match, gt, valid, grid, tolerance)


def _centres(index: Tensor, grid_hw: Tuple[int, int], hw: Tuple[int, int],
             x0: float) -> np.ndarray:
    """Pixel centres (x, y) of patches ``index`` in a view drawn at hw."""
    gh, gw = grid_hw
    rows = (index // gw).double()
    cols = (index % gw).double()
    x = x0 + (cols + 0.5) * hw[1] / gw
    y = (rows + 0.5) * hw[0] / gh
    return torch.stack([x, y], dim=1).numpy()


def _pick(valid: Tensor, max_lines: Optional[int], show_invalid: bool,
          seed: int) -> np.ndarray:
    """Indices to draw: patches with a truth first, then the others."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(valid.numpy())]
    if show_invalid:
        groups.append(np.flatnonzero(~valid.numpy()))
    chosen = []
    budget = np.inf if max_lines is None else max_lines
    for group in groups:
        take = int(min(budget, len(group)))
        if take < len(group):
            group = rng.choice(group, take, replace=False)
        chosen.append(np.sort(group))
        budget -= take
    return np.concatenate(chosen).astype(np.int64)


def draw_correspondences(view1: ImageLike,
                         view2: ImageLike,
                         match: Tensor,
                         grid_hw: Sequence[int],
                         correct: Optional[Tensor] = None,
                         valid: Optional[Tensor] = None,
                         max_lines: Optional[int] = 64,
                         grid_hw2: Optional[Sequence[int]] = None,
                         display_size: Optional[int] = None,
                         show_invalid: bool = True,
                         line_width: int = 1,
                         point_radius: int = 2,
                         gap: int = 8,
                         seed: int = 0,
                         title: Optional[str] = None) -> np.ndarray:
    """The two views side by side with a line per matched patch pair.

    Each line joins the centre of view-1 patch ``i`` to the centre of its
    matched view-2 patch ``match[i]``: :data:`CORRECT_COLOR` (green) where
    ``correct[i]``, :data:`WRONG_COLOR` (red) where not,
    :data:`UNKNOWN_COLOR` (grey) where ``valid[i]`` is False (no truth, e.g.
    the patch is outside view 2) and :data:`MATCH_COLOR` (yellow) for every
    line when ``correct`` is None. Grey lines are drawn first, red last, so
    errors stay visible.

    Args:
        view1 (ndarray | PIL.Image): (H, W, 3) RGB view 1.
        view2 (ndarray | PIL.Image): (H, W, 3) RGB view 2.
        match (Tensor): (S,) view-2 patch index (row-major) per view-1
            patch, e.g. ``pred_corr_backbone``; S = H1·W1 of ``grid_hw``.
        grid_hw (Sequence[int]): (H, W) patch grid of view 1.
        correct (Tensor, optional): (S,) bool, see
            :func:`match_correctness`. Defaults to None.
        valid (Tensor, optional): (S,) bool, which patches have a truth.
            Defaults to None (all).
        max_lines (int, optional): draw at most this many lines (a fixed
            random subset, patches with a truth first). Defaults to 64;
            None draws all.
        grid_hw2 (Sequence[int], optional): patch grid of view 2. Defaults
            to ``grid_hw``.
        display_size (int, optional): draw each view this many pixels high
            (aspect kept, bilinear). Defaults to None (as given).
        show_invalid (bool): draw lines of patches without a truth in grey.
            Defaults to True.
        line_width (int): line width in pixels. Defaults to 1.
        point_radius (int): radius of the dots at line ends. Defaults to 2.
        gap (int): white pixels between the views. Defaults to 8.
        seed (int): seed of the ``max_lines`` subset. Defaults to 0.
        title (str, optional): a caption strip above the views.

    Returns:
        ndarray: (H, W1 + gap + W2, 3) uint8 RGB (plus the caption strip).
    """
    grid1 = _grid(grid_hw)
    grid2 = grid1 if grid_hw2 is None else _grid(grid_hw2, 'grid_hw2')
    size = grid1[0] * grid1[1]
    match = _flat(match, 'match', size, torch.long)
    if match.numel() and (match.min() < 0
                          or match.max() >= grid2[0] * grid2[1]):
        raise ValueError('`match` holds view-2 patch indices, which must be '
                         f'in [0, {grid2[0] * grid2[1]}) for grid {grid2}.')
    valid = (torch.ones(size, dtype=torch.bool) if valid is None else
             _flat(valid, 'valid', size, torch.bool))
    if correct is not None:
        correct = _flat(correct, 'correct', size, torch.bool) & valid
    if max_lines is not None and max_lines < 0:
        raise ValueError(f'`max_lines` must be >= 0 or None, got '
                         f'{max_lines}.')

    views = [as_rgb_array(view1, 'view1'), as_rgb_array(view2, 'view2')]
    if display_size is not None:
        views = [
            resize_rgb(v, (display_size,
                           max(1, round(v.shape[1] * display_size /
                                        v.shape[0]))), 'bilinear')
            for v in views
        ]
    canvas = Image.fromarray(hstack(views, gap=gap))
    draw = ImageDraw.Draw(canvas)

    index = torch.from_numpy(_pick(valid, max_lines, show_invalid, seed))
    starts = _centres(index, grid1, views[0].shape[:2], 0.0)
    ends = _centres(match[index], grid2, views[1].shape[:2],
                    float(views[0].shape[1] + gap))
    if correct is None:
        colours = [MATCH_COLOR if valid[i] else UNKNOWN_COLOR for i in index]
    else:
        colours = [(CORRECT_COLOR if correct[i] else WRONG_COLOR)
                   if valid[i] else UNKNOWN_COLOR for i in index]
    order = {UNKNOWN_COLOR: 0, MATCH_COLOR: 1, CORRECT_COLOR: 1,
             WRONG_COLOR: 2}
    r = point_radius
    for k in sorted(range(len(index)), key=lambda k: order[colours[k]]):
        (x1, y1), (x2, y2) = starts[k], ends[k]
        draw.line([(x1, y1), (x2, y2)], fill=colours[k], width=line_width)
        for x, y in ((x1, y1), (x2, y2)):
            if r > 0:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colours[k])
    image = np.asarray(canvas).copy()
    return image if title is None else add_title(image, title)


def draw_correspondence_rows(view1: ImageLike,
                             view2: ImageLike,
                             matches: Mapping[str, Tensor],
                             grid_hw: Sequence[int],
                             view_boxes: Optional[Tensor] = None,
                             view_flips: Optional[Tensor] = None,
                             tolerance: int = 1,
                             gap: int = 8,
                             **kwargs) -> np.ndarray:
    """One :func:`draw_correspondences` row per kind of match, scored.

    The truth comes from the two views' crop boxes and flips through
    :func:`densevit.evaluation.functional.correspondence_ground_truth`; each
    row's caption gives its name and accuracy (as ``CorrespondenceAccuracy``
    computes it).

    Args:
        view1 (ndarray | PIL.Image): (H, W, 3) RGB view 1.
        view2 (ndarray | PIL.Image): (H, W, 3) RGB view 2.
        matches (Mapping[str, Tensor]): name → (S,) matches, e.g.
            ``{'backbone': pred_corr_backbone, 'dense': pred_corr_dense}``.
        grid_hw (Sequence[int]): (H, W) patch grid of both views.
        view_boxes (Tensor, optional): (2, 4) crop boxes ``[x1, y1, x2,
            y2]`` in original image pixels. Defaults to None (no truth:
            lines are drawn yellow).
        view_flips (Tensor, optional): (2,) bool horizontal flips. Defaults
            to no flips.
        tolerance (int): Chebyshev distance in patches counted as correct.
            Defaults to 1.
        gap (int): white pixels between views and rows. Defaults to 8.
        **kwargs: passed on to :func:`draw_correspondences` (``max_lines``,
            ``display_size``, ``show_invalid``, ``line_width``...).

    Returns:
        ndarray: uint8 RGB, one captioned row per entry of ``matches``.
    """
    if not matches:
        raise ValueError('`matches` is empty: give at least one (S,) tensor '
                         "of matches, e.g. {'backbone': pred_corr_backbone}.")
    grid = _grid(grid_hw)
    gt = valid = None
    if view_boxes is not None:
        flips = (torch.zeros(2, dtype=torch.bool)
                 if view_flips is None else view_flips)
        gt, valid, _ = correspondence_ground_truth(view_boxes, flips, grid)
    rows = []
    for name, match in matches.items():
        correct = caption = None
        if gt is not None:
            correct = match_correctness(match, gt, valid, grid, tolerance)
            total = int(valid.sum())
            hits = int(correct.sum())
            score = f'{100.0 * hits / total:.0f}%' if total else 'n/a'
            caption = (f'{name}: {hits}/{total} within {tolerance} patch '
                       f'({score})')
        rows.append(
            draw_correspondences(
                view1, view2, match, grid, correct=correct, valid=valid,
                gap=gap, title=caption or name, **kwargs))
    return vstack(rows, gap=gap)
