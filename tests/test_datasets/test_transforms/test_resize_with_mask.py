import numpy as np
import pytest
from mmcv.transforms import Resize

from densevit.datasets import ResizeWithMask


def ramp(h, w):
    ys, xs = np.mgrid[0:h, 0:w]
    img = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)
    return img, xs.astype(np.uint8)


@pytest.mark.parametrize('size', [(24, 40), (100, 90)])
def test_resize_image_and_mask_together(size):
    img, seg = ramp(60, 80)
    r = ResizeWithMask(size=size)(dict(img=img, gt_seg_map=seg))
    oh, ow = size
    assert r['img'].shape == (oh, ow, 3) and r['gt_seg_map'].shape == size
    assert r['img_shape'] == size and r['ori_shape'] == (60, 80)
    assert r['scale_factor'] == (ow / 80, oh / 60)
    j = np.arange(ow)
    expected_mask = ((2 * j + 1) * 80) // (2 * ow)
    assert np.array_equal(r['gt_seg_map'],
                          np.broadcast_to(expected_mask, size))
    centre = np.clip((j + 0.5) * 80 / ow - 0.5, 0, 79)
    assert np.abs(r['img'][..., 0] - centre[None]).max() <= 1.01


def test_mask_stays_on_the_image_where_mmcv_resize_shifts_it():
    # Each column's label is its x, so a mask aligned with the image holds
    # (up to rounding) the image's interpolated x.
    img, seg = ramp(60, 80)
    ours = ResizeWithMask(size=(15, 10), antialias=False)(
        dict(img=img.copy(), gt_seg_map=seg.copy()))
    mmcv = Resize(scale=(10, 15))(dict(img=img.copy(), gt_seg_map=seg.copy()))
    np.testing.assert_array_equal(ours['img'], mmcv['img'])

    def misalignment(r):
        return np.abs(r['gt_seg_map'].astype(int) - r['img'][..., 0]).max()

    # 80 -> 10 columns: mmcv's mask lags the image by 3.5 input pixels.
    assert misalignment(ours) <= 1 and misalignment(mmcv) >= 3


def test_same_size_is_identity_and_mask_optional():
    img, _ = ramp(16, 16)
    r = ResizeWithMask(size=16)(dict(img=img.copy()))
    assert np.array_equal(r['img'], img) and 'gt_seg_map' not in r


def test_errors():
    img, seg = ramp(10, 12)
    with pytest.raises(ValueError, match='gt_seg_map'):
        ResizeWithMask(8)(dict(img=img, gt_seg_map=seg[:5]))
    with pytest.raises(TypeError, match='single-view'):
        ResizeWithMask(8)(dict(img=[img, img]))
    with pytest.raises(ValueError):
        ResizeWithMask(0)
