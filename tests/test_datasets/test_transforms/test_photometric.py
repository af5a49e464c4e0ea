import os.path as osp
import random

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.datasets.transforms import ApplyToList

from densevit.datasets import RandomColorJitter, ViewwiseTransforms
from densevit.registry import TRANSFORMS

CFG_DIR = osp.join(osp.dirname(__file__), '../../../configs/_base_/datasets')


def moco_view_augs() -> dict:
    cfg = Config.fromfile(osp.join(CFG_DIR, 'two_view_pipeline.py'))
    return cfg.view_augs.to_dict()


def random_img(h=24, w=24, seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, size=(h, w, 3), dtype=np.uint8)


def jitter_only(**kwargs):
    args = dict(brightness=0, contrast=0, saturation=0, hue=0, prob=1.)
    args.update(kwargs)
    return RandomColorJitter(**args)


def test_hue_jitter_many_draws_numpy2():
    t = RandomColorJitter(hue=0.5, prob=1.)
    np.random.seed(0)
    src = random_img()
    changed = 0
    for _ in range(300):
        out = t(dict(img=src.copy()))['img']
        assert out.shape == src.shape and out.dtype == np.uint8
        changed += not np.array_equal(out, src)
    assert changed > 250


@pytest.mark.parametrize(
    'hue, expected_bgr',
    [
        (0.5, (255, 255, 0)),  # red + 180 deg = cyan
        (-1 / 3, (255, 0, 0)),  # red - 120 deg = blue
        (1 / 3, (0, 255, 0)),  # red + 120 deg = green
    ])
def test_hue_shift_direction(hue, expected_bgr):
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 2] = 255
    out = jitter_only(hue=(hue, hue))(dict(img=red))['img']
    assert np.abs(out.astype(int) - expected_bgr).max() <= 1


def test_brightness_contrast_saturation_factors():
    img = np.full((4, 4, 3), 100, np.uint8)
    out = jitter_only(brightness=(0.5, 0.5))(dict(img=img.copy()))['img']
    assert np.all(out == 50)
    # Contrast towards the mean: a uniform image is unchanged.
    out = jitter_only(contrast=(0., 0.))(dict(img=img.copy()))['img']
    assert np.all(out == 100)
    # Saturation 0 gives gray (equal channels).
    col = random_img(4, 4)
    out = jitter_only(saturation=(0., 0.))(dict(img=col))['img']
    assert np.abs(out.astype(int) - out[..., :1]).max() <= 1


def test_jitter_prob_and_grayscale_input():
    img = random_img()
    np.random.seed(0)
    t = RandomColorJitter(prob=0.)
    assert np.array_equal(t(dict(img=img.copy()))['img'], img)
    gray = img[..., 0].copy()
    out = RandomColorJitter(prob=1.)(dict(img=gray))['img']
    assert out.shape == gray.shape


@pytest.mark.parametrize('kwargs', [
    dict(brightness=-0.1),
    dict(hue=0.6),
    dict(hue=(0.2, 0.1)),
    dict(prob=1.5)
])
def test_jitter_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RandomColorJitter(**kwargs)


def test_moco_v2_view_augs_run_and_differ_per_view():
    t = TRANSFORMS.build(moco_view_augs())
    np.random.seed(0)
    random.seed(0)
    base = random_img(32, 32)
    differ = 0
    for i in range(60):
        out = t(dict(img=[base.copy(), base.copy()]))['img']
        assert len(out) == 2
        assert all(v.shape == base.shape and v.dtype == np.uint8 for v in out)
        differ += not np.array_equal(out[0], out[1])
    assert differ >= 55


def test_viewwise_deterministic_given_seeds():
    t = TRANSFORMS.build(moco_view_augs())
    outs = []
    for _ in range(2):
        np.random.seed(3)
        random.seed(3)
        outs.append(t(dict(img=[random_img(), random_img()]))['img'])
    assert all(np.array_equal(a, b) for a, b in zip(*outs))


def test_viewwise_is_apply_to_list_one_view_after_the_other():
    t = TRANSFORMS.build(moco_view_augs())
    assert isinstance(t, ApplyToList)
    views = [random_img(seed=1), random_img(seed=2)]
    segs = [np.zeros((24, 24), np.int64), np.ones((24, 24), np.int64)]
    boxes = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.random.seed(5)
    random.seed(5)
    out = t(dict(img=[v.copy() for v in views], gt_seg_map=segs,
                 view_boxes=boxes.copy()))
    # Same draws as running the whole chain on view 1, then on view 2.
    np.random.seed(5)
    random.seed(5)
    expected = [t.transforms(dict(img=v.copy()))['img'] for v in views]
    assert all(np.array_equal(a, b) for a, b in zip(out['img'], expected))
    # Keys other than img pass through untouched.
    assert all(np.array_equal(a, b) for a, b in zip(out['gt_seg_map'], segs))
    assert np.array_equal(out['view_boxes'], boxes)


def test_viewwise_builds_densevit_transforms_in_any_scope(monkeypatch):
    # Outside a Runner there may be no 'densevit' default scope, where
    # mmpretrain's registry cannot see RandomColorJitter.
    monkeypatch.setattr(DefaultScope, 'get_current_instance', lambda: None)
    cfg = [dict(type='RandomColorJitter', prob=1.)]
    with pytest.raises(KeyError, match='RandomColorJitter'):
        ApplyToList(transforms=cfg, scatter_key='img', collate_keys=[])
    t = ViewwiseTransforms(transforms=cfg)
    assert isinstance(t.transforms.transforms[0], RandomColorJitter)


def test_viewwise_single_view_and_solarize():
    t = ViewwiseTransforms(transforms=[
        dict(type='Solarize', thr=128, prob=1.),
    ])
    img = random_img()
    out = t(dict(img=img.copy()))['img']
    assert isinstance(out, np.ndarray)
    assert np.array_equal(out, np.where(img >= 128, 255 - img, img))


def test_viewwise_rejects_geometric_transforms():
    t = ViewwiseTransforms(transforms=[dict(type='Resize', scale=(8, 8))])
    with pytest.raises(ValueError, match='TwoViewCrop'):
        t(dict(img=[random_img(), random_img()]))
    with pytest.raises(TypeError):
        ViewwiseTransforms(transforms=dict(type='Solarize', thr=128))
