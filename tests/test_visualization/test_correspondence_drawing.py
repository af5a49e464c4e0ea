import numpy as np
import pytest
import torch

from densevit.visualization import (CORRECT_COLOR, MATCH_COLOR,
                                    UNKNOWN_COLOR, WRONG_COLOR,
                                    draw_correspondence_rows,
                                    draw_correspondences, match_correctness)

GRID = (4, 4)
S = 16
IDENTITY = torch.arange(S)
REVERSED = torch.arange(S).flip(0)  # patch (r, c) -> (3 - r, 3 - c)


def black(h=64, w=64):
    return np.zeros((h, w, 3), np.uint8)


def count(image, colour):
    return int((image == np.array(colour, np.uint8)).all(-1).sum())


def test_correct_match_is_green_and_wrong_match_is_red():
    image = draw_correspondences(
        black(), black(), IDENTITY, GRID, correct=torch.ones(S, dtype=bool))
    assert image.shape == (64, 64 + 8 + 64, 3)
    assert count(image, CORRECT_COLOR) > 100
    assert count(image, WRONG_COLOR) == 0

    image = draw_correspondences(
        black(), black(), REVERSED, GRID, correct=torch.zeros(S, dtype=bool))
    assert count(image, WRONG_COLOR) > 100
    assert count(image, CORRECT_COLOR) == 0


def test_lines_join_patch_centres():
    # Patch 0 of view 1 (centre 8, 8) to patch 15 of view 2 (centre
    # 72 + 56, 56): both ends are drawn, nothing near the other corners.
    match = torch.full((S, ), 15)
    valid = torch.zeros(S, dtype=bool)
    valid[0] = True
    image = draw_correspondences(
        black(), black(), match, GRID, valid=valid, show_invalid=False)
    assert (image[8, 8] == MATCH_COLOR).all()
    assert (image[56, 72 + 56] == MATCH_COLOR).all()
    assert count(image[40:, :30], MATCH_COLOR) == 0


def test_unknown_truth_is_grey_or_skipped():
    valid = torch.zeros(S, dtype=bool)
    valid[:8] = True
    correct = torch.ones(S, dtype=bool)
    image = draw_correspondences(
        black(), black(), IDENTITY, GRID, correct=correct, valid=valid)
    assert count(image, UNKNOWN_COLOR) > 0
    assert count(image, CORRECT_COLOR) > 0
    image = draw_correspondences(
        black(), black(), IDENTITY, GRID, correct=correct, valid=valid,
        show_invalid=False)
    assert count(image, UNKNOWN_COLOR) == 0
    # Rows 2-3 (invalid) are not drawn at all.
    assert (image[36:, :64] == 0).all()


def test_max_lines_and_display_size():
    image = draw_correspondences(
        black(), black(), IDENTITY, GRID, max_lines=0)
    assert (image[:, :64] == 0).all()
    one = draw_correspondences(
        black(), black(), REVERSED, GRID, max_lines=1, point_radius=0)
    many = draw_correspondences(
        black(), black(), REVERSED, GRID, max_lines=None, point_radius=0)
    assert 0 < count(one, MATCH_COLOR) < count(many, MATCH_COLOR)
    big = draw_correspondences(
        black(), black(), IDENTITY, GRID, display_size=128)
    assert big.shape == (128, 128 + 8 + 128, 3)


def test_match_correctness_uses_chebyshev_one():
    valid = torch.ones(S, dtype=bool)
    assert match_correctness(IDENTITY, IDENTITY, valid, GRID).all()
    correct = match_correctness(REVERSED, IDENTITY, valid, GRID)
    # (r, c) -> (3 - r, 3 - c) is within one patch only in the centre 2x2.
    assert torch.nonzero(correct).flatten().tolist() == [5, 6, 9, 10]
    assert match_correctness(REVERSED, IDENTITY, valid, GRID,
                             tolerance=3).all()
    valid[5] = False
    assert not match_correctness(REVERSED, IDENTITY, valid, GRID)[5]


def test_rows_coloured_by_the_crop_geometry():
    # Both views are the whole 64 px image; view 2 is flipped, so view-1
    # patch (r, c) is view-2 patch (r, 3 - c).
    boxes = torch.tensor([[0., 0., 64., 64.], [0., 0., 64., 64.]])
    flips = torch.tensor([False, True])
    mirrored = torch.tensor([r * 4 + 3 - c for r in range(4)
                             for c in range(4)])
    image = draw_correspondence_rows(
        black(), black(), {'backbone': mirrored}, GRID, boxes, flips)
    assert count(image, CORRECT_COLOR) > 100
    assert count(image, WRONG_COLOR) == 0

    # The identity is off by 3 columns at the borders: those are red.
    image = draw_correspondence_rows(
        black(), black(), {'backbone': mirrored, 'dense': IDENTITY}, GRID,
        boxes, flips, gap=8)
    rows = 2 * (16 + 64) + 8  # caption strip + views, twice, one gap
    assert image.shape[0] == rows
    top, bottom = image[:80], image[88:]
    assert count(top, WRONG_COLOR) == 0
    assert count(bottom, WRONG_COLOR) > 0
    assert count(bottom, CORRECT_COLOR) > 0  # the middle columns


def test_bad_inputs():
    with pytest.raises(ValueError, match='one entry per view-1 patch'):
        draw_correspondences(black(), black(), torch.arange(15), GRID)
    with pytest.raises(ValueError, match='view-2 patch indices'):
        draw_correspondences(black(), black(), IDENTITY + 1, GRID)
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        draw_correspondences(np.zeros((4, 4, 4)), black(), IDENTITY, GRID)
    with pytest.raises(ValueError, match='matches'):
        draw_correspondence_rows(black(), black(), {}, GRID)
