import pytest
import torch

from densevit.models.utils.view_geometry import (cell_distance, cell_index,
                                                 window_mask)

# A grid that is not square, so height and width cannot stand in for each
# other: cell i is at row i // 5, column i % 5.
HEIGHT, WIDTH = 3, 5


def test_cell_distance_is_chebyshev_on_row_major_cells():
    rows, cols = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH),
                                indexing='ij')
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    expected = torch.maximum((rows[:, None] - rows[None]).abs(),
                             (cols[:, None] - cols[None]).abs())
    index = torch.arange(HEIGHT * WIDTH)
    distance = cell_distance(index[:, None], index[None], WIDTH)
    assert distance.shape == (HEIGHT * WIDTH, HEIGHT * WIDTH)
    assert torch.equal(distance, expected)


@pytest.mark.parametrize(
    'a, b, expected',
    [
        (0, 6, 1),  # (0, 0) - (1, 1): diagonal neighbour; Manhattan says 2
        (0, 14, 4),  # (0, 0) - (2, 4); Manhattan says 6
        (0, 4, 4),  # (0, 0) - (0, 4): one row; column-major reads (1, 1)
        (0, 10, 2),  # (0, 0) - (2, 0): one column; column-major reads (1, 3)
        (4, 5, 4),  # (0, 4) - (1, 0): next in memory, far apart on the grid
    ])
def test_cell_distance_pairs(a, b, expected):
    assert int(cell_distance(torch.tensor(a), torch.tensor(b), WIDTH)) == \
        expected
    assert int(cell_distance(torch.tensor(b), torch.tensor(a), WIDTH)) == \
        expected


def test_window_mask_is_the_chebyshev_window_around_the_cell():
    position = torch.tensor([[[1.5, 3.2], [-0.5, 7.0]]], dtype=torch.float64)
    assert torch.equal(cell_index(position, (HEIGHT, WIDTH)),
                       torch.tensor([[8, 4]]))  # (1, 3); clamped to (0, 4)
    mask = window_mask(position, (HEIGHT, WIDTH), 1)
    assert mask.shape == (1, 2, HEIGHT * WIDTH) and mask.dtype == torch.bool
    expected = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.bool)
    expected[0, 0:3, 2:5] = True
    expected[1, 0:2, 3:5] = True
    assert torch.equal(mask[0], expected.reshape(2, -1))
    only_cell = window_mask(position, (HEIGHT, WIDTH), 0)
    assert torch.equal(only_cell[0].nonzero()[:, 1], torch.tensor([8, 4]))
