import numpy as np
import pytest
import torch

from densevit.visualization import (apply_pca, feature_pca_grid,
                                    feature_pca_overlay, fit_pca,
                                    pca_feature_map)

# A 4x4 patch grid split into three regions (row-major labels).
LABELS = torch.tensor([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 2, 1],
                       [2, 2, 2, 2]])


def clustered_feats(dim=16, noise=0.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, dim, generator=gen)
    feats = centres[LABELS]  # (4, 4, dim)
    return feats + noise * torch.randn(feats.shape, generator=gen)


def colours_by_label(image):
    pixels = image.reshape(-1, 3)
    return {
        int(k): {tuple(p) for p in pixels[LABELS.reshape(-1).numpy() == k]}
        for k in range(3)
    }


def test_shapes_and_dtype():
    hwc = torch.randn(4, 6, 16)
    image = pca_feature_map(hwc)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert pca_feature_map(hwc, out_size=(32, 48)).shape == (32, 48, 3)
    assert pca_feature_map(hwc, out_size=40).shape == (40, 40, 3)
    # (C, H, W) patch features give the same picture as their (H, W, C).
    chw = hwc.permute(2, 0, 1).contiguous()
    np.testing.assert_array_equal(pca_feature_map(chw), image)
    np.testing.assert_array_equal(
        pca_feature_map(hwc.numpy(), layout='hwc'), image)
    # Each channel is min-max scaled to the full range.
    assert image.reshape(-1, 3).min(0).tolist() == [0, 0, 0]
    assert image.reshape(-1, 3).max(0).tolist() == [255, 255, 255]


def test_three_clusters_give_three_colours():
    image = pca_feature_map(clustered_feats())
    colours = colours_by_label(image)
    # One colour per cluster ...
    assert all(len(c) == 1 for c in colours.values())
    distinct = [np.array(next(iter(c)), float) for c in colours.values()]
    # ... and the three are far apart.
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.linalg.norm(distinct[i] - distinct[j]) > 100

    # Noise within a cluster moves colours far less than the cluster gap.
    # Three clusters span two components; the third is the noise alone,
    # stretched to the full range by the per-channel scaling, so compare
    # the first two channels.
    noisy = pca_feature_map(clustered_feats(noise=0.02))[..., :2]
    noisy = noisy.astype(float)
    means = [noisy.reshape(-1, 2)[LABELS.reshape(-1).numpy() == k].mean(0)
             for k in range(3)]
    for k in range(3):
        spread = noisy.reshape(-1, 2)[LABELS.reshape(-1).numpy() == k]
        assert np.abs(spread - means[k]).max() < 30
    assert min(np.linalg.norm(means[i] - means[j])
               for i in range(3) for j in range(i + 1, 3)) > 100


def test_nearest_upsampling_keeps_patch_blocks():
    image = pca_feature_map(clustered_feats(), out_size=(16, 16))
    small = pca_feature_map(clustered_feats())
    np.testing.assert_array_equal(image[::4, ::4], small)
    np.testing.assert_array_equal(image[3::4, 3::4], small)


def test_identical_features_give_identical_colours():
    feats = torch.randn(16).expand(4, 4, 16).clone()
    image = pca_feature_map(feats, out_size=8)
    assert len({tuple(p) for p in image.reshape(-1, 3)}) == 1


def test_joint_pca_gives_the_same_colour_to_the_same_feature():
    a = clustered_feats()
    b = torch.roll(a, shifts=2, dims=1)  # same features, other places
    b[0, 0] = torch.randn(16)  # plus one new feature
    pca = fit_pca([a, b])
    map_a, map_b = apply_pca(a, pca), apply_pca(b, pca)
    # a[1, 1] (cluster 0) moved to b[1, 3].
    np.testing.assert_array_equal(map_a[1, 1], map_b[1, 3])
    np.testing.assert_array_equal(map_a[3, 0], map_b[3, 2])


def test_layout_errors():
    with pytest.raises(ValueError, match="layout='hwc'"):
        pca_feature_map(torch.randn(8, 4, 8))
    pca_feature_map(torch.randn(8, 4, 8), layout='chw')
    with pytest.raises(ValueError, match='3-D'):
        pca_feature_map(torch.randn(16, 8))
    with pytest.raises(ValueError, match='layout'):
        pca_feature_map(torch.randn(4, 4, 8), layout='whc')
    with pytest.raises(ValueError, match='same number of channels'):
        fit_pca([torch.randn(4, 4, 8), torch.randn(4, 4, 16)])


def test_overlay_panel():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    feats = clustered_feats(dim=8)
    panel = feature_pca_overlay(image, feats, alpha=0.5, gap=4)
    assert panel.shape == (20, 3 * 24 + 2 * 4, 3)
    np.testing.assert_array_equal(panel[:, :24], image)
    pca_map = panel[:, 28:52]
    np.testing.assert_array_equal(
        pca_map, pca_feature_map(feats, out_size=(20, 24)))
    blend = (image.astype(float) + pca_map) / 2
    assert np.abs(panel[:, 56:].astype(float) - blend).max() <= 1
    # alpha = 0 shows the image, alpha = 1 the map.
    np.testing.assert_array_equal(
        feature_pca_overlay(image, feats, alpha=0.0)[:, 56:], image)
    np.testing.assert_array_equal(
        feature_pca_overlay(image, feats, alpha=1.0)[:, 56:], pca_map)
    with pytest.raises(ValueError, match='alpha'):
        feature_pca_overlay(image, feats, alpha=1.5)


def test_grid_stacks_one_row_per_image():
    image = np.zeros((16, 16, 3), np.uint8)
    grid = feature_pca_grid([image, image], [clustered_feats(), torch.randn(
        4, 4, 16)], gap=2)
    assert grid.shape == (16 * 2 + 2, 16 * 3 + 2 * 2, 3)
    with pytest.raises(ValueError, match='one feature map per image'):
        feature_pca_grid([image], [])
