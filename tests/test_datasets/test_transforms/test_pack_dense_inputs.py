import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample

from densevit.datasets import PackDenseInputs, TwoViewCrop


def two_view_results(with_label=True):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    seg = rng.integers(0, 4, size=(40, 50), dtype=np.uint8)
    seg[:, ::5] = 255  # ignore pixels in every crop
    r = dict(img=img, gt_seg_map=seg, sample_idx=5)
    if with_label:
        r['gt_label'] = 2
    np.random.seed(0)
    return TwoViewCrop(size=16, flip_prob=0.5)(r)


def test_two_view_packing():
    r = two_view_results()
    views = [v.copy() for v in r['img']]
    masks = [m.copy() for m in r['gt_seg_map']]
    out = PackDenseInputs()(r)
    assert set(out) == {'inputs', 'data_samples'}
    inputs, ds = out['inputs'], out['data_samples']
    assert isinstance(inputs, list) and len(inputs) == 2
    for t, v in zip(inputs, views):
        assert t.dtype == torch.uint8 and t.shape == (3, 16, 16)
        # Channels kept (BGR), only moved first.
        assert np.array_equal(t.permute(1, 2, 0).numpy(), v)
    assert isinstance(ds, DataSample)
    assert ds.gt_label.tolist() == [2]
    assert ds.gt_mask.dtype == torch.long and ds.gt_mask.shape == (2, 16, 16)
    assert np.array_equal(ds.gt_mask.numpy(), np.stack(masks))
    assert (ds.gt_mask == 255).any()  # ignore value survives
    assert ds.view_boxes.dtype == torch.float32
    assert ds.view_boxes.shape == (2, 4)
    assert np.array_equal(ds.view_boxes.numpy(), r['view_boxes'])
    assert ds.view_flips.dtype == torch.bool and ds.view_flips.shape == (2, )
    assert ds.ori_shape == (40, 50) and ds.img_shape == (16, 16)
    assert ds.sample_idx == 5


def test_single_view_packing():
    img = np.random.default_rng(1).integers(
        0, 256, size=(8, 6, 3), dtype=np.uint8)
    seg = np.arange(48, dtype=np.uint8).reshape(8, 6)
    out = PackDenseInputs()(
        dict(img=img, gt_seg_map=seg, img_shape=(8, 6), ori_shape=(8, 6)))
    assert isinstance(out['inputs'], torch.Tensor)
    assert out['inputs'].shape == (3, 8, 6)
    ds = out['data_samples']
    assert ds.gt_mask.shape == (8, 6) and ds.gt_mask.dtype == torch.long
    assert np.array_equal(ds.gt_mask.numpy(), seg)
    assert 'gt_label' not in ds and 'view_boxes' not in ds.metainfo


def test_grayscale_and_no_mask():
    out = PackDenseInputs()(dict(img=np.zeros((5, 7), np.uint8), gt_label=1))
    assert out['inputs'].shape == (1, 5, 7)
    assert 'gt_mask' not in out['data_samples']
    assert out['data_samples'].gt_label.tolist() == [1]


def test_local_crops_packed_after_the_views_with_the_views_masks():
    rng = np.random.default_rng(1)
    r = dict(img=rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8),
             gt_seg_map=rng.integers(0, 4, size=(40, 50), dtype=np.uint8))
    np.random.seed(0)
    r = TwoViewCrop(size=16, num_local_crops=2, local_size=8)(r)
    out = PackDenseInputs()(r)
    assert [tuple(t.shape) for t in out['inputs']] == \
        [(3, 16, 16)] * 2 + [(3, 8, 8)] * 2
    ds = out['data_samples']
    assert ds.gt_mask.shape == (2, 16, 16)
    assert ds.view_boxes.shape == (4, 4) and ds.view_flips.shape == (4, )


def test_mask_list_mismatch_and_bad_args():
    r = two_view_results()
    r['gt_seg_map'] = r['gt_seg_map'][0]
    with pytest.raises(ValueError, match='one map per view'):
        PackDenseInputs()(r)
    # Three masks for four views fit neither every view nor views 1 and 2.
    r = two_view_results()
    r['img'] = r['img'] * 2
    r['gt_seg_map'] = r['gt_seg_map'] + r['gt_seg_map'][:1]
    with pytest.raises(ValueError, match='one map per view'):
        PackDenseInputs()(r)
    with pytest.raises(TypeError):
        PackDenseInputs(meta_keys='sample_idx')
