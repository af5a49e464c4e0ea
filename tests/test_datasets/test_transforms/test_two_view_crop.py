import numpy as np
import pytest

from densevit.datasets import TwoViewCrop, box_overlap
from densevit.registry import TRANSFORMS

H, W, S = 90, 200, 48


def ramp_results():
    """Channel 0 = x coordinate, channel 1 = y coordinate; mask = x."""
    ys, xs = np.mgrid[0:H, 0:W]
    img = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)
    return dict(img=img, gt_seg_map=xs.astype(np.uint8), img_shape=(H, W))


def expected_coord(lo, length, j, out, flip):
    """Source coordinate sampled by output pixel j (pixel-centre mapping)."""
    j = np.asarray(j, dtype=float)
    if flip:
        j = out - 1 - j
    return lo + np.clip((j + 0.5) * length / out - 0.5, 0, length - 1)


@pytest.mark.parametrize('flip_prob', [0., 1., 0.5])
def test_view_pixels_match_recorded_boxes(flip_prob):
    t = TwoViewCrop(size=S, flip_prob=flip_prob)
    np.random.seed(0)
    seen_flips = set()
    for _ in range(40):
        r = t(ramp_results())
        boxes, flips = r['view_boxes'], r['view_flips']
        assert boxes.shape == (2, 4) and boxes.dtype == np.float32
        assert flips.shape == (2, ) and flips.dtype == bool
        assert len(r['img']) == 2 and r['img_shape'] == (S, S)
        assert r['ori_shape'] == (H, W)
        for v in range(2):
            x1, y1, x2, y2 = boxes[v]
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
            assert np.all(boxes[v] == np.round(boxes[v]))  # whole pixels
            view = r['img'][v].astype(float)
            assert view.shape == (S, S, 3)
            flip = bool(flips[v])
            seen_flips.add(flip)
            ex = expected_coord(x1, x2 - x1, np.arange(S), S, flip)
            ey = expected_coord(y1, y2 - y1, np.arange(S), S, False)
            # Linear interpolation of a linear ramp is exact up to the uint8
            # rounding (area interpolation too, when shrinking).
            assert np.abs(view[:, :, 0] - ex[None, :]).max() <= 1.01
            assert np.abs(view[:, :, 1] - ey[:, None]).max() <= 1.01
    if flip_prob == 0.5:
        assert seen_flips == {True, False}
    else:
        assert seen_flips == {bool(flip_prob)}


def test_mask_cropped_like_image():
    t = TwoViewCrop(size=S)
    np.random.seed(1)
    for _ in range(30):
        r = t(ramp_results())
        assert len(r['gt_seg_map']) == 2
        for v in range(2):
            mask, view = r['gt_seg_map'][v], r['img'][v]
            assert mask.shape == (S, S) and mask.dtype == np.uint8
            x1, _, x2, _ = r['view_boxes'][v]
            j = np.arange(S)
            if r['view_flips'][v]:
                j = S - 1 - j
            # Nearest with pixel centres: exact source column.
            src = x1 + np.floor((j + 0.5) * (x2 - x1) / S)
            assert np.array_equal(mask, np.broadcast_to(src, (S, S)))
            # ... which is within half a pixel (+ rounding) of the image.
            assert np.abs(mask.astype(float) - view[..., 0]).max() <= 1.01


def test_reproducible_with_global_seed():
    t = TwoViewCrop(size=S)
    np.random.seed(7)
    a = t(ramp_results())
    np.random.seed(7)
    b = t(ramp_results())
    np.random.seed(8)
    c = t(ramp_results())
    assert np.array_equal(a['view_boxes'], b['view_boxes'])
    assert all(np.array_equal(x, y) for x, y in zip(a['img'], b['img']))
    assert not np.array_equal(a['view_boxes'], c['view_boxes'])


def test_views_are_independent():
    t = TwoViewCrop(size=S)
    np.random.seed(2)
    boxes = np.stack([t(ramp_results())['view_boxes'] for _ in range(50)])
    assert not np.array_equal(boxes[:, 0], boxes[:, 1])
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    frac = areas / (H * W)
    assert frac.min() >= 0.19 and frac.max() <= 1.0
    assert frac.max() - frac.min() > 0.3


def test_min_overlap():
    t_free = TwoViewCrop(size=S, scale=(0.05, 0.2))
    t_overlap = TwoViewCrop(size=S, scale=(0.05, 0.2), min_overlap=0.5)
    np.random.seed(3)
    free = [
        box_overlap(*t_free(ramp_results())['view_boxes']) for _ in range(100)
    ]
    overlap = [
        box_overlap(*t_overlap(ramp_results())['view_boxes'])
        for _ in range(100)
    ]
    assert min(free) == 0.  # small crops often miss each other
    assert min(overlap) >= 0.5
    # One attempt only: the centring fallback must still reach 0.5.
    t_forced = TwoViewCrop(
        size=S, scale=(0.02, 1.0), min_overlap=0.5, max_attempts=1)
    forced = [
        box_overlap(*t_forced(ramp_results())['view_boxes'])
        for _ in range(300)
    ]
    assert min(forced) >= 0.5


def test_box_overlap():
    a = np.array([0, 0, 10, 10])
    assert box_overlap(a, np.array([5, 0, 15, 10])) == 0.5
    assert box_overlap(a, np.array([2, 2, 4, 4])) == 1.0
    assert box_overlap(a, np.array([10, 0, 20, 10])) == 0.


def test_rectangular_size_and_registry():
    t = TRANSFORMS.build(dict(type='TwoViewCrop', size=(32, 40)))
    r = t(ramp_results())
    assert r['img'][0].shape == (32, 40, 3)
    assert r['gt_seg_map'][1].shape == (32, 40)
    assert r['img_shape'] == (32, 40)


def test_without_mask():
    r = ramp_results()
    del r['gt_seg_map']
    out = TwoViewCrop(size=S)(r)
    assert 'gt_seg_map' not in out


@pytest.mark.parametrize('kwargs', [
    dict(size=0),
    dict(size=(32, )),
    dict(size=S, scale=(0.5, 0.2)),
    dict(size=S, ratio=(0, 1)),
    dict(size=S, flip_prob=2),
    dict(size=S, min_overlap=0),
    dict(size=S, interpolation='cubic')
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        TwoViewCrop(**kwargs)


def test_bad_inputs():
    r = ramp_results()
    r['gt_seg_map'] = r['gt_seg_map'][:10]
    with pytest.raises(ValueError, match='gt_seg_map'):
        TwoViewCrop(size=S)(r)
    r = ramp_results()
    r['img'] = [r['img'], r['img']]
    with pytest.raises(TypeError, match='once per'):
        TwoViewCrop(size=S)(r)


def test_local_crops_follow_the_views_with_their_own_boxes():
    t = TwoViewCrop(size=S, num_local_crops=3, local_size=16,
                    local_scale=(0.05, 0.1))
    np.random.seed(3)
    for _ in range(20):
        r = t(ramp_results())
        boxes, flips = r['view_boxes'], r['view_flips']
        assert boxes.shape == (5, 4) and flips.shape == (5, )
        assert [v.shape for v in r['img']] == [(S, S, 3)] * 2 + \
            [(16, 16, 3)] * 3
        assert r['img_shape'] == (S, S)
        # Masks for views 1 and 2 only: the local crops train, they are
        # not evaluated.
        assert [m.shape for m in r['gt_seg_map']] == [(S, S)] * 2
        for v in range(2, 5):
            x1, y1, x2, y2 = boxes[v]
            # Whole-pixel boxes of 5-10% of the image (the fallback of ten
            # failed draws is a whole-image crop, far above 10%).
            assert 0.05 * H * W * 0.9 <= (x2 - x1) * (y2 - y1) \
                <= 0.1 * H * W * 1.1
            ex = expected_coord(x1, x2 - x1, np.arange(16), 16,
                                bool(flips[v]))
            ey = expected_coord(y1, y2 - y1, np.arange(16), 16, False)
            view = r['img'][v].astype(float)
            assert np.abs(view[:, :, 0] - ex[None, :]).max() <= 1.01
            assert np.abs(view[:, :, 1] - ey[:, None]).max() <= 1.01


def test_no_local_crops_draws_what_two_views_drew():
    # num_local_crops=0 must leave the random draws (and so every seeded
    # run of the two-view recipe) unchanged.
    np.random.seed(4)
    plain = TwoViewCrop(size=S)(ramp_results())
    np.random.seed(4)
    same = TwoViewCrop(size=S, num_local_crops=0, local_size=16)(
        ramp_results())
    np.testing.assert_array_equal(plain['view_boxes'], same['view_boxes'])
    np.testing.assert_array_equal(plain['view_flips'], same['view_flips'])


@pytest.mark.parametrize('kwargs, field', [
    (dict(num_local_crops=-1), 'num_local_crops'),
    (dict(num_local_crops=True, local_size=16), 'num_local_crops'),
    (dict(num_local_crops=2), 'local_size'),
    (dict(num_local_crops=2, local_size=0), 'local_size'),
    (dict(num_local_crops=2, local_size=16, local_scale=(0.3, 0.1)),
     'local_scale'),
])
def test_bad_local_crop_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TwoViewCrop(size=S, **kwargs)
