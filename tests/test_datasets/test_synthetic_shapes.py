import numpy as np
import pytest

from densevit.datasets import SHAPE_NAMES, SyntheticShapes
from densevit.registry import DATASETS


def _same(a: dict, b: dict) -> bool:
    return (np.array_equal(a['img'], b['img'])
            and np.array_equal(a['gt_seg_map'], b['gt_seg_map'])
            and a['gt_label'] == b['gt_label'])


def test_sample_format():
    ds = SyntheticShapes(num_samples=4, img_size=48, seed=3)
    assert len(ds) == 4
    s = ds[2]
    assert s['img'].shape == (48, 48, 3) and s['img'].dtype == np.uint8
    assert s['gt_seg_map'].shape == (48, 48)
    assert s['gt_seg_map'].dtype == np.uint8
    assert isinstance(s['gt_label'], int) and 0 <= s['gt_label'] < 6
    assert s['img_shape'] == (48, 48) and s['ori_shape'] == (48, 48)
    assert s['sample_idx'] == 2
    # Textured background: not a flat image.
    assert s['img'].std() > 5


def test_registered_and_metainfo():
    ds = DATASETS.build(
        dict(type='SyntheticShapes', num_samples=2, num_classes=4))
    assert ds.metainfo['classes'] == SHAPE_NAMES[:4]
    assert ds.metainfo['seg_classes'] == ('background', ) + SHAPE_NAMES[:4]
    assert len(SHAPE_NAMES) >= 6


def test_deterministic_by_seed_and_index():
    a = SyntheticShapes(num_samples=8, seed=5)
    b = SyntheticShapes(num_samples=8, seed=5)
    c = SyntheticShapes(num_samples=8, seed=6)
    for i in range(8):
        assert _same(a[i], b[i])
        assert _same(a[i], a[i])  # regenerating gives the same image
        assert not np.array_equal(a[i]['img'], c[i]['img'])
    # Different indices give different images.
    assert not np.array_equal(a[0]['img'], a[1]['img'])


def test_indices_subset_keeps_images():
    full = SyntheticShapes(num_samples=10, seed=1)
    sub = SyntheticShapes(num_samples=10, seed=1, indices=[7, 3])
    assert len(sub) == 2
    assert _same(sub[0], full[7]) and _same(sub[1], full[3])


def test_lazy_init():
    ds = SyntheticShapes(num_samples=5, lazy_init=True)
    assert not ds._fully_initialized
    ds.full_init()
    assert len(ds) == 5 and ds[4]['img'].shape == (64, 64, 3)


@pytest.mark.parametrize('num_classes', [6, 8])
def test_all_classes_appear_and_mask_values(num_classes):
    ds = SyntheticShapes(
        num_samples=150, img_size=32, num_classes=num_classes, seed=0)
    labels = ds.get_gt_labels()
    assert set(labels.tolist()) == set(range(num_classes))
    seg_values = set()
    for i in range(0, 150, 5):
        seg_values |= set(np.unique(ds[i]['gt_seg_map']).tolist())
    assert seg_values <= set(range(num_classes + 1))
    assert 0 in seg_values and len(seg_values) >= 4


def test_gt_labels_match_samples():
    ds = SyntheticShapes(num_samples=30, seed=2)
    assert ds.get_gt_labels().tolist() == [
        ds[i]['gt_label'] for i in range(30)
    ]
    assert ds.get_cat_ids(4) == [ds[4]['gt_label']]


@pytest.mark.parametrize('img_size', [16, 64])
def test_mask_consistent_with_label(img_size):
    ds = SyntheticShapes(
        num_samples=200, img_size=img_size, num_classes=8, seed=4)
    majority = 0
    for i in range(len(ds)):
        s = ds[i]
        counts = np.bincount(s['gt_seg_map'].ravel(), minlength=10)[1:]
        # The largest shape is painted last: its class is always visible.
        assert counts[s['gt_label']] > 0
        majority += counts.argmax() == s['gt_label']
        # The class map marks shapes where the image differs from the
        # background texture; at least it must not be all background.
        assert counts.sum() > 0
    assert majority >= 0.97 * len(ds)


def test_mask_aligned_with_image_pixels():
    # The largest shape is one flat colour (+ shading and noise) that stands
    # out from the background: with an aligned mask nearly all its pixels
    # are near the median shape colour and no background pixel is; a mask
    # off by 3 px already breaks both.
    ds = SyntheticShapes(num_samples=20, img_size=64, max_shapes=1, seed=9)
    for i in range(20):
        s = ds[i]
        inside = s['gt_seg_map'] == s['gt_label'] + 1
        img = s['img'].astype(float)
        dist = np.abs(img - np.median(img[inside], 0)).max(-1)
        assert (dist[inside] < 50).mean() > 0.98
        assert (dist[~inside] < 50).mean() < 0.02


@pytest.mark.parametrize('kwargs, exc, field', [
    (dict(num_samples=0), ValueError, 'num_samples'),
    (dict(img_size=8), ValueError, 'img_size'),
    (dict(num_classes=1), ValueError, 'num_classes'),
    (dict(num_classes=len(SHAPE_NAMES) + 1), ValueError, 'num_classes'),
    (dict(max_shapes=0), ValueError, 'max_shapes'),
    (dict(seed=-1), ValueError, 'seed'),
    (dict(num_samples='10'), TypeError, 'num_samples'),
    (dict(img_size=64.0), TypeError, 'img_size'),
])
def test_bad_arguments(kwargs, exc, field):
    with pytest.raises(exc, match=f'`{field}`.*Fix'):
        SyntheticShapes(**kwargs)
