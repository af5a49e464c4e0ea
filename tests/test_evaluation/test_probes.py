import pytest
import torch

from densevit.evaluation.functional import (fit_linear_probe, knn_predict,
                                            knn_top1, linear_probe_top1,
                                            majority_class,
                                            masks_to_patch_labels, mean_iou,
                                            probe_split)


def _blobs(n_per_class, num_classes=4, dim=16, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * 3
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g)
    return x, y


def _split(x, y):
    train, test = probe_split(len(y), 0.5, seed=0)
    return x[train], y[train], x[test], y[test]


# ---------------------------------------------------------------- k-NN
def test_knn_separable_clusters_perfect():
    x, y = _blobs(50)
    assert knn_top1(*_split(x, y), num_classes=4) == 1.0


def test_knn_random_labels_near_chance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(800, 16, generator=g)
    y = torch.randint(0, 4, (800, ), generator=g)
    acc = knn_top1(*_split(x, y), num_classes=4)
    assert 0.15 < acc < 0.35


def test_knn_votes_are_temperature_weighted():
    # One very close class-0 neighbour against two farther class-1 ones.
    train_x = torch.tensor([[1.0, 0.0], [0.5, 0.866], [0.5, -0.866]])
    train_y = torch.tensor([0, 1, 1])
    test_x = torch.tensor([[1.0, 0.01]])
    sharp = knn_predict(train_x, train_y, test_x, 2, k=3, temperature=0.07)
    flat = knn_predict(train_x, train_y, test_x, 2, k=3, temperature=100.)
    assert sharp.item() == 0 and flat.item() == 1


def test_knn_chunking_and_large_k_do_not_change_result():
    x, y = _blobs(10, spread=2.0)
    tx, ty, qx, _ = _split(x, y)
    a = knn_predict(tx, ty, qx, 4, k=1000, chunk_size=3)
    b = knn_predict(tx, ty, qx, 4, k=1000, chunk_size=1000)
    assert torch.equal(a, b)


def test_knn_bad_inputs():
    x, y = _blobs(5)
    with pytest.raises(ValueError, match='num_classes'):
        knn_top1(x, y, x, y, num_classes=3)


# -------------------------------------------------------- linear probe
def test_linear_probe_separable_high():
    x, y = _blobs(50)
    assert linear_probe_top1(*_split(x, y), num_classes=4) >= 0.97


def test_linear_probe_shuffled_labels_low():
    x, y = _blobs(100)
    g = torch.Generator().manual_seed(3)
    y = y[torch.randperm(len(y), generator=g)]
    assert linear_probe_top1(*_split(x, y), num_classes=4) < 0.4


def test_linear_probe_is_deterministic_and_standardises():
    x, y = _blobs(20)
    x = x * 1000 + 50  # scale must not matter after standardisation
    a = fit_linear_probe(x, y, 4)
    b = fit_linear_probe(x, y, 4)
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert (a.predict(x) == y).float().mean() >= 0.97


def test_linear_probe_runs_under_no_grad():
    x, y = _blobs(20)
    with torch.no_grad():
        clf = fit_linear_probe(x, y, 4)
    assert (clf.predict(x) == y).float().mean() >= 0.97


def test_linear_probe_bad_inputs():
    x, y = _blobs(10)
    with pytest.raises(ValueError, match='single class'):
        fit_linear_probe(x, torch.zeros_like(y), 4)
    with pytest.raises(ValueError, match='num_classes'):
        fit_linear_probe(x, y, 3)
    with pytest.raises(ValueError, match=r'\(N,\)'):
        fit_linear_probe(x, y[:-1], 4)


def test_probe_split_deterministic_and_disjoint():
    train, test = probe_split(10, 0.3, seed=0)
    train2, test2 = probe_split(10, 0.3, seed=0)
    assert torch.equal(train, train2) and torch.equal(test, test2)
    assert len(train) == 3 and len(test) == 7
    assert sorted(train.tolist() + test.tolist()) == list(range(10))
    with pytest.raises(ValueError, match='at least 2'):
        probe_split(1)


# --------------------------------------------------------- dense probe
def test_masks_majority_vote():
    mask = torch.zeros(1, 8, 16, dtype=torch.long)  # grid 1 x 2, 8 px cells
    mask[0, :, :8] = 1
    mask[0, :3, :8] = 2  # 24 px of class 2 vs 40 px of class 1
    mask[0, :, 8:] = 255  # fully ignored cell
    labels = masks_to_patch_labels(mask, (1, 2), num_classes=3)
    assert labels.tolist() == [[[1, 255]]]
    tie = torch.tensor([[[2, 1], [1, 2]]])
    assert masks_to_patch_labels(tie, (1, 1), 3).item() == 1


def test_masks_bad_size_or_ids():
    with pytest.raises(ValueError, match='does not match'):
        masks_to_patch_labels(torch.zeros(1, 30, 32), (4, 4), 3)
    with pytest.raises(ValueError, match='num_classes'):
        masks_to_patch_labels(torch.full((1, 8, 8), 5), (2, 2), 3)


def test_mean_iou_excludes_absent_classes():
    gt = torch.tensor([0, 0, 1, 1, 255])
    scores = mean_iou(gt.clone(), gt, num_classes=5)
    assert scores['mIoU'] == 1.0 and scores['pixel_acc'] == 1.0
    pred = torch.tensor([0, 1, 1, 1, 0])
    scores = mean_iou(pred, gt, num_classes=5)
    # class 0: 1/2, class 1: 2/3
    assert scores['mIoU'] == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores['pixel_acc'] == pytest.approx(3 / 4)


def test_majority_class_is_the_best_constant_guess():
    labels = torch.tensor([2, 0, 2, 1, 2, 255, 255, 255, 255])
    assert majority_class(labels) == (255, 4 / 9)
    assert majority_class(labels, ignore_index=255) == (2, 3 / 5)
    assert majority_class(torch.tensor([1, 0]))[0] == 0  # tie: lower id
    with pytest.raises(ValueError, match='empty or all ignore_index'):
        majority_class(torch.tensor([255]), ignore_index=255)
