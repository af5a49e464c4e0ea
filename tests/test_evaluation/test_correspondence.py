import pytest
import torch

from densevit.evaluation.functional import (
    correspondence_ground_truth, correspondence_hits,
    correspondence_position_prediction, correspondence_random_hits)

GRID = (4, 4)
FULL = [0., 0., 64., 64.]  # 64 px crop -> 4x4 patches of 16 original px


def _truth(box1, box2, flip1=False, flip2=False, grid=GRID):
    return correspondence_ground_truth(
        torch.tensor([box1, box2]), torch.tensor([flip1, flip2]), grid)


def correspondence_accuracy(pred, gt, valid, grid, tolerance=1):
    correct, total = correspondence_hits(pred, gt, valid, grid, tolerance)
    return correct / total if total else float('nan')


def _rc(grid=GRID):
    rows, cols = torch.meshgrid(
        torch.arange(grid[0]), torch.arange(grid[1]), indexing='ij')
    return rows.reshape(-1), cols.reshape(-1)


def test_identity_maps_every_patch_to_itself():
    gt, valid, rowcol = _truth(FULL, FULL)
    assert valid.all()
    assert torch.equal(gt, torch.arange(16))
    rows, cols = _rc()
    assert torch.equal(rowcol, torch.stack([rows, cols], 1))


def test_identity_on_offset_non_square_crop():
    box = [10., 20., 74., 52.]  # 64 x 32 px, grid 2 x 4
    gt, valid, _ = _truth(box, box, grid=(2, 4))
    assert valid.all()
    assert torch.equal(gt, torch.arange(8))


def test_shift_right_by_one_patch():
    # view 2 starts 16 px (one patch) to the right of view 1.
    gt, valid, rowcol = _truth(FULL, [16., 0., 80., 64.])
    rows, cols = _rc()
    assert torch.equal(valid, cols >= 1)
    assert torch.equal(gt[valid], (rows * 4 + cols - 1)[valid])
    assert (gt[~valid] == -1).all() and (rowcol[~valid] == -1).all()


def test_shift_down_by_one_patch():
    gt, valid, _ = _truth(FULL, [0., 16., 64., 80.])
    rows, cols = _rc()
    assert torch.equal(valid, rows >= 1)
    assert torch.equal(gt[valid], ((rows - 1) * 4 + cols)[valid])


def test_view2_zoomed_in_x2():
    # view 2 covers the top-left quarter of view 1 at twice the scale.
    gt, valid, _ = _truth(FULL, [0., 0., 32., 32.])
    rows, cols = _rc()
    assert torch.equal(valid, (rows < 2) & (cols < 2))
    assert torch.equal(gt[valid], ((2 * rows + 1) * 4 + 2 * cols + 1)[valid])


def test_view1_zoomed_in_x2():
    gt, valid, _ = _truth([0., 0., 32., 32.], FULL)
    rows, cols = _rc()
    assert valid.all()
    assert torch.equal(gt, (rows // 2) * 4 + cols // 2)


@pytest.mark.parametrize('flip1,flip2', [(False, True), (True, False)])
def test_one_view_flipped_mirrors_columns(flip1, flip2):
    gt, valid, _ = _truth(FULL, FULL, flip1, flip2)
    rows, cols = _rc()
    assert valid.all()
    assert torch.equal(gt, rows * 4 + (3 - cols))


def test_both_views_flipped_is_identity():
    gt, valid, _ = _truth(FULL, FULL, True, True)
    assert valid.all() and torch.equal(gt, torch.arange(16))


def test_shift_and_flip_of_view2():
    gt, valid, _ = _truth(FULL, [16., 0., 80., 64.], False, True)
    rows, cols = _rc()
    assert torch.equal(valid, cols >= 1)
    assert torch.equal(gt[valid], (rows * 4 + 4 - cols)[valid])


def test_centre_on_border_goes_to_right_patch():
    # Half-patch shift: each centre lands exactly on a view-2 patch border.
    gt, valid, _ = _truth(FULL, [8., 0., 72., 64.])
    rows, cols = _rc()
    assert valid.all()
    assert torch.equal(gt, rows * 4 + cols)


def test_bad_boxes_raise():
    with pytest.raises(ValueError, match='view_boxes'):
        correspondence_ground_truth(
            torch.zeros(4), torch.tensor([False, False]), GRID)
    with pytest.raises(ValueError, match='x2 > x1'):
        _truth([10., 0., 10., 64.], FULL)
    with pytest.raises(ValueError, match='grid_hw'):
        _truth(FULL, FULL, grid=(0, 4))


def test_accuracy_tolerance():
    gt, valid, _ = _truth(FULL, FULL)
    assert correspondence_accuracy(gt, gt, valid, GRID, tolerance=0) == 1.0
    rows, cols = _rc()
    # One column to the left (clamped at 0): Chebyshev distance <= 1.
    off_by_one = rows * 4 + (cols - 1).clamp(min=0)
    assert correspondence_accuracy(off_by_one, gt, valid, GRID, 1) == 1.0
    assert correspondence_accuracy(off_by_one, gt, valid, GRID,
                                   0) == pytest.approx(4 / 16)
    off_by_two = ((rows + 2) % 4) * 4 + cols
    assert correspondence_accuracy(off_by_two, gt, valid, GRID, 1) == 0.0


def test_accuracy_uses_grid_distance_not_index_distance():
    gt = torch.tensor([3])  # row 0, col 3
    pred = torch.tensor([4])  # row 1, col 0: index +1, but 3 columns away
    assert correspondence_accuracy(pred, gt, torch.tensor([True]), GRID,
                                   1) == 0.0


def test_accuracy_skips_invalid_patches():
    gt, valid, _ = _truth(FULL, [16., 0., 80., 64.])
    pred = torch.where(valid, gt, torch.zeros_like(gt) + 15)
    correct, total = correspondence_hits(pred, gt, valid, GRID, 0)
    assert (correct, total) == (12, 12)
    none_valid = torch.zeros(16, dtype=torch.bool)
    assert torch.isnan(
        torch.tensor(correspondence_accuracy(pred, gt, none_valid, GRID)))


def test_ground_truth_agrees_with_two_view_crop():
    """Contract with TwoViewCrop: boxes in original pixels, flip after resize.

    Pixels of a coordinate image hold their own (x, y); for every valid
    view-1 patch the original point under its centre must appear in the
    view-2 patch the ground truth names (within nearest-resize rounding).
    """
    import numpy as np

    from densevit.datasets import TwoViewCrop

    size = 96
    ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing='ij')
    img = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)
    crop = TwoViewCrop(
        size=64, interpolation='nearest', antialias=False, min_overlap=0.3)
    np.random.seed(0)
    checked = 0
    for _ in range(50):
        out = crop(
            dict(img=img.copy(), img_shape=img.shape[:2],
                 ori_shape=img.shape[:2]))
        view1, view2 = out['img']
        _, valid, rowcol = correspondence_ground_truth(
            torch.as_tensor(out['view_boxes']),
            torch.as_tensor(out['view_flips']), GRID)
        for i in valid.nonzero().flatten().tolist():
            r, c = divmod(i, 4)
            x0, y0 = view1[r * 16 + 8, c * 16 + 8, :2].astype(int)
            r2, c2 = rowcol[i].tolist()
            patch = view2[r2 * 16:(r2 + 1) * 16,
                          c2 * 16:(c2 + 1) * 16, :2].astype(int)
            dist = np.maximum(
                abs(patch[..., 0] - x0), abs(patch[..., 1] - y0)).min()
            assert dist <= 3, (out['view_boxes'], out['view_flips'], i)
            checked += 1
    assert checked > 200


def test_position_prediction_is_right_exactly_for_identical_crops():
    pred = correspondence_position_prediction(GRID)
    gt, valid, _ = _truth(FULL, FULL)
    assert correspondence_hits(pred, gt, valid, GRID, 0) == (16, 16)
    # View 2 shifted one patch (16 px) right: every truth is one column to
    # the left of the own cell, so only a tolerance of 1 forgives it.
    gt, valid, _ = _truth(FULL, [16., 0., 80., 64.])
    assert correspondence_hits(pred, gt, valid, GRID, 0) == (0, 12)
    assert correspondence_hits(pred, gt, valid, GRID, 1) == (12, 12)
    # A flipped identical crop: only a column that maps onto itself or its
    # neighbour counts (cols 1 and 2 of 0..3, tolerance 1).
    gt, valid, _ = _truth(FULL, FULL, flip2=True)
    assert correspondence_hits(pred, gt, valid, GRID, 1) == (8, 16)


def test_random_hits_count_the_neighbourhood_exactly():
    gt, valid, _ = _truth(FULL, FULL)
    # Tolerance 0: one cell of 16 per patch.
    expected, total = correspondence_random_hits(gt, valid, GRID, 0)
    assert total == 16 and expected == pytest.approx(1.0)
    # Tolerance 1 on 4x4: corners see 4 cells, edges 6, the 4 inner 9.
    expected, _ = correspondence_random_hits(gt, valid, GRID, 1)
    assert expected == pytest.approx((4 * 4 + 8 * 6 + 4 * 9) / 16)
    # Invalid patches are not counted.
    gt, valid, _ = _truth(FULL, [16., 0., 80., 64.])
    assert correspondence_random_hits(gt, valid, GRID, 0) == (
        pytest.approx(12 / 16), 12)


def test_random_hits_match_a_monte_carlo_guess():
    gt, valid, _ = _truth([0., 0., 48., 64.], [8., 4., 72., 60.], flip2=True)
    g = torch.Generator().manual_seed(0)
    trials = 4000
    hits = sum(
        correspondence_hits(
            torch.randint(0, 16, (16, ), generator=g), gt, valid, GRID)[0]
        for _ in range(trials))
    expected, total = correspondence_random_hits(gt, valid, GRID)
    assert hits / trials == pytest.approx(expected, rel=0.05)
