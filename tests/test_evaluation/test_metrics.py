from collections import Counter

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from densevit.evaluation import (CorrespondenceAccuracy, DenseProbe,
                                 KNNAccuracy, LinearProbeAccuracy, probe_split)
from densevit.registry import METRICS


def _corr_sample(box2, flip2=False, dense_pred=None):
    """Two-view prediction; backbone prediction is the true one."""
    from densevit.evaluation.functional import correspondence_ground_truth
    boxes = torch.tensor([[0., 0., 64., 64.], box2])
    flips = torch.tensor([False, flip2])
    gt, valid, _ = correspondence_ground_truth(boxes, flips, (4, 4))
    sample = DataSample(
        metainfo=dict(view_boxes=boxes, view_flips=flips, patch_grid=(4, 4)))
    sample.pred_corr_backbone = torch.where(valid, gt, torch.zeros_like(gt))
    sample.pred_corr_dense = (
        dense_pred if dense_pred is not None else torch.full((16, ), 15))
    return sample


def test_correspondence_accuracy_end_to_end_through_evaluator():
    samples = [
        _corr_sample([0., 0., 64., 64.]),
        _corr_sample([16., 0., 80., 64.], flip2=True),
    ]
    evaluator = Evaluator(
        dict(type='CorrespondenceAccuracy', _scope_='densevit'))
    # The Evaluator hands metrics dicts (DataSample.to_dict()).
    evaluator.process(samples)
    metrics = evaluator.evaluate(len(samples))
    assert metrics['correspondence/acc_backbone'] == 1.0
    # Dense always predicts patch 15 (row 3, col 3): within 1 patch of the
    # truth only for truths in rows 2-3 and cols 2-3.
    s1 = 4  # identity: truths 10, 11, 14, 15
    # shift+flip: view-1 cols 1-3 -> view-2 cols 3-1; cols 3, 2 in rows 2-3
    s2 = 4
    assert metrics['correspondence/acc_dense'] == pytest.approx(
        (s1 + s2) / (16 + 12))
    # Own cell: all 16 right for the identity crop; after shift+flip view-1
    # col c lands on view-2 col 4 - c, within 1 of c only for c = 2.
    assert metrics['correspondence/acc_position_baseline'] == pytest.approx(
        (16 + 4) / (16 + 12))
    # Uniform guess, tolerance 1 on 4x4: a cell's neighbourhood holds
    # (2 or 3 rows) x (2 or 3 cols) cells. Identity: all 16 truths,
    # 100 cells in all; shift+flip: rows 0-3 (2+3+3+2) x cols 1-3 (3+3+2).
    assert metrics['correspondence/acc_random_baseline'] == pytest.approx(
        (100 / 16 + 10 * 8 / 16) / (16 + 12))


def test_correspondence_accuracy_accepts_datasamples_directly():
    metric = METRICS.build(dict(type='CorrespondenceAccuracy', tolerance=0))
    sample = _corr_sample([0., 0., 64., 64.], dense_pred=torch.arange(16))
    metric.process(None, [sample])
    assert metric.evaluate(1) == {
        'correspondence/acc_backbone': 1.0,
        'correspondence/acc_dense': 1.0,
        'correspondence/acc_position_baseline': 1.0,
        'correspondence/acc_random_baseline': pytest.approx(1 / 16)
    }
    with pytest.raises(ValueError, match='CorrespondenceAccuracy: toleran'):
        CorrespondenceAccuracy(tolerance=-1)


def test_correspondence_accuracy_missing_boxes_raises():
    sample = DataSample(metainfo=dict(patch_grid=(4, 4)))
    sample.pred_corr_backbone = torch.arange(16)
    with pytest.raises(ValueError, match='view_boxes.*TwoViewCrop'):
        CorrespondenceAccuracy().process(None, [sample.to_dict()])


def test_correspondence_accuracy_missing_predictions_raises():
    sample = _corr_sample([0., 0., 64., 64.]).to_dict()
    del sample['pred_corr_backbone'], sample['pred_corr_dense']
    with pytest.raises(ValueError, match='two views'):
        CorrespondenceAccuracy().process(None, [sample])


def _seg_samples(n, num_classes=4, encode=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        cells = torch.randint(0, num_classes, (4, 4), generator=g)
        mask = cells.repeat_interleave(8, 0).repeat_interleave(8, 1)
        if encode:
            feats = torch.nn.functional.one_hot(cells, num_classes).permute(
                2, 0, 1).float() * 3
            feats = feats + 0.2 * torch.randn(feats.shape, generator=g)
        else:
            feats = torch.randn(num_classes, 4, 4, generator=g)
        sample = DataSample()
        sample.patch_feats = feats
        sample.gt_mask = mask
        samples.append(sample)
    return samples


def test_dense_probe_end_to_end():
    evaluator = Evaluator(
        dict(type='DenseProbe', num_classes=4, _scope_='densevit'))
    samples = _seg_samples(16)
    evaluator.process(samples[:8])
    evaluator.process(samples[8:])
    metrics = evaluator.evaluate(16)
    assert metrics['dense_probe/mIoU'] > 0.99
    assert metrics['dense_probe/pixel_acc'] > 0.99
    # Features are moved to CPU and stored as (H*W, C) rows.
    metric = evaluator.metrics[0]
    assert metric.results == []  # evaluate() clears them


def test_dense_probe_chance_is_the_majority_class_everywhere():
    samples = _seg_samples(8, num_classes=2)
    cells = torch.zeros(4, 4, dtype=torch.long)
    cells[:1] = 1  # 12 patches of class 0, 4 of class 1, in every image
    for s in samples:
        s.gt_mask = cells.repeat_interleave(8, 0).repeat_interleave(8, 1)
        s.patch_feats = torch.nn.functional.one_hot(cells, 2).permute(
            2, 0, 1).float()
    metric = DenseProbe(num_classes=2)
    metric.process(None, samples)
    metrics = metric.evaluate(8)
    assert metrics['dense_probe/mIoU'] == 1.0
    # Class 0 everywhere: 12 of 16 right; IoU 12/16 for class 0, 0 for 1.
    assert metrics['dense_probe/pixel_acc_chance'] == pytest.approx(0.75)
    assert metrics['dense_probe/mIoU_chance'] == pytest.approx(0.375)


def test_dense_probe_random_features_low():
    metric = DenseProbe(num_classes=4)
    metric.process(None, _seg_samples(16, encode=False))
    assert metric.evaluate(16)['dense_probe/mIoU'] < 0.35


def test_dense_probe_bad_inputs():
    sample = _seg_samples(1)[0]
    sample.gt_mask = sample.gt_mask[:30]  # 30 px is not 4 whole patches
    with pytest.raises(ValueError, match='does not match'):
        DenseProbe(num_classes=4).process(None, [sample])

    sample = _seg_samples(1)[0]
    sample.gt_mask[0, 0] = 7  # not ignore, >= num_classes
    with pytest.raises(ValueError, match='num_classes'):
        DenseProbe(num_classes=4).process(None, [sample])

    metric = DenseProbe(num_classes=4)
    samples = _seg_samples(4)
    for s in samples:
        s.gt_mask = torch.zeros_like(s.gt_mask)  # only background
    metric.process(None, samples)
    with pytest.raises(ValueError, match='at least two'):
        metric.evaluate(4)

    unmasked = DataSample()
    unmasked.patch_feats = torch.zeros(4, 4, 4)
    with pytest.raises(ValueError, match='gt_mask'):
        DenseProbe(num_classes=4).process(None, [unmasked])
    with pytest.raises(ValueError, match='num_classes'):
        DenseProbe(num_classes=1)
    with pytest.raises(ValueError, match='DenseProbe: max_iter'):
        DenseProbe(num_classes=4, max_iter=0)


def _cls_samples(n_per_class, num_classes=3, labelled=True, shuffle=False):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(num_classes, 8, generator=g) * 3
    labels = torch.arange(num_classes).repeat(n_per_class)
    if shuffle:
        labels = labels[torch.randperm(len(labels), generator=g)]
    samples = []
    for i, c in enumerate(torch.arange(num_classes).repeat(n_per_class)):
        sample = DataSample()
        sample.cls_feats = centres[c] + 0.1 * torch.randn(8, generator=g)
        if labelled:
            sample.set_gt_label(int(labels[i]))
        samples.append(sample)
    return samples


def _chance(samples, train_fraction=0.5, seed=0):
    """Majority-class share of the scored samples, counted by hand."""
    _, scored = probe_split(len(samples), train_fraction, seed)
    counts = Counter(int(samples[i].gt_label) for i in scored.tolist())
    return max(counts.values()) / len(scored)


def test_knn_accuracy_end_to_end():
    evaluator = Evaluator(dict(type='KNNAccuracy', k=5, _scope_='densevit'))
    samples = _cls_samples(10)
    evaluator.process(samples)
    assert evaluator.evaluate(len(samples)) == {
        'knn/top1': 1.0,
        'knn/chance': pytest.approx(_chance(samples))
    }


def test_chance_is_the_majority_share_of_the_scored_samples():
    # 3 of class 0 for each of class 1 and 2: the scored share is mostly 0.
    samples = _cls_samples(12)
    for i, s in enumerate(samples):
        s.set_gt_label(0 if i % 5 else 1 + i % 2)
    metric = LinearProbeAccuracy(num_classes=3, max_iter=5)
    metric.process(None, samples)
    chance = metric.evaluate(len(samples))['linear_probe/chance']
    assert chance == pytest.approx(_chance(samples)) and chance > 0.6


def test_knn_accuracy_shuffled_labels_low():
    metric = KNNAccuracy(num_classes=3, k=5)
    samples = _cls_samples(30, shuffle=True)
    metric.process(None, samples)
    assert metric.evaluate(len(samples))['knn/top1'] < 0.55


def test_knn_accuracy_bad_inputs():
    with pytest.raises(ValueError, match='gt_label'):
        KNNAccuracy().process(None, _cls_samples(1, labelled=False))
    with pytest.raises(ValueError, match='train_fraction'):
        KNNAccuracy(train_fraction=0)
    with pytest.raises(ValueError, match='KNNAccuracy: k must'):
        KNNAccuracy(k=0)
    with pytest.raises(ValueError, match='KNNAccuracy: temperature'):
        KNNAccuracy(temperature=0)
    metric = KNNAccuracy()
    metric.process(None, _cls_samples(1, num_classes=1))
    with pytest.raises(ValueError, match='at least 2 samples'):
        metric.evaluate(1)


def test_linear_probe_accuracy_separable_vs_shuffled():
    evaluator = Evaluator(
        dict(type='LinearProbeAccuracy', _scope_='densevit'))
    samples = _cls_samples(10)
    evaluator.process(samples)
    assert evaluator.evaluate(len(samples)) == {
        'linear_probe/top1': 1.0,
        'linear_probe/chance': pytest.approx(_chance(samples))
    }
    metric = LinearProbeAccuracy(num_classes=3)
    shuffled = _cls_samples(30, shuffle=True)
    metric.process(None, shuffled)
    assert metric.evaluate(len(shuffled))['linear_probe/top1'] < 0.55


def test_mean_patch_feature_probes_the_grid_average():
    # The class is written into the patch grid only (its mean), while the
    # CLS token is noise: the mean-patch probe separates, the CLS one not.
    samples = _cls_samples(10)
    g = torch.Generator().manual_seed(1)
    for sample in samples:
        grid = sample.cls_feats[:, None, None] + torch.randn(8, 3, 3,
                                                             generator=g)
        sample.patch_feats = grid - grid.mean((1, 2), keepdim=True) + \
            sample.cls_feats[:, None, None]
        sample.cls_feats = torch.randn(8, generator=g)
    patch = LinearProbeAccuracy(num_classes=3, feature='mean_patch')
    cls = LinearProbeAccuracy(num_classes=3)
    for metric in (patch, cls):
        metric.process(None, samples)
    patch_top1 = patch.evaluate(len(samples))
    assert set(patch_top1) == {'linear_probe_mean_patch/top1',
                               'linear_probe_mean_patch/chance'}
    assert patch_top1['linear_probe_mean_patch/top1'] == 1.0
    assert cls.evaluate(len(samples))['linear_probe/top1'] < 0.7
    with pytest.raises(ValueError, match='feature must be one of'):
        KNNAccuracy(feature='patch')


def test_fit_pattern_splits_by_image_path():
    samples = _cls_samples(10)
    for i, sample in enumerate(samples):
        sample.set_metainfo(
            dict(img_path=f'c/{"fit" if i < 20 else "score"}_{i}.png'))
    # Labels the fit share never saw are unknowable: the split must be the
    # one the paths give, not a random one.
    for sample in samples[20:]:
        sample.set_gt_label(int(sample.gt_label) % 2)
    metric = KNNAccuracy(num_classes=3, k=3, fit_pattern='/fit_')
    metric.process(None, samples)
    train_x, _, test_x, test_y, _ = metric.split(metric.results)
    assert len(train_x) == 20 and len(test_x) == 10
    assert test_y.tolist() == [int(s.gt_label) for s in samples[20:]]
    with pytest.raises(ValueError, match='leaves 0 samples to fit'):
        KNNAccuracy(fit_pattern='/nothing_').compute_metrics(
            [dict(feats=torch.zeros(2), label=0, fit=False)] * 2)
    with pytest.raises(ValueError, match='img_path'):
        KNNAccuracy(fit_pattern='/fit_').process(None, _cls_samples(1))


def test_linear_probe_accuracy_bad_inputs():
    with pytest.raises(ValueError, match='LinearProbeAccuracy needs gt_label'):
        LinearProbeAccuracy().process(None, _cls_samples(1, labelled=False))
    with pytest.raises(ValueError, match='max_iter'):
        LinearProbeAccuracy(max_iter=0)
    with pytest.raises(ValueError, match='LinearProbeAccuracy: train_frac'):
        LinearProbeAccuracy(train_fraction=1.5)


def test_metrics_on_densevit_predictions(tiny_model_cfg):
    """Contract: the three metrics read what DenseViT.predict returns."""
    from mmengine.dataset import default_collate

    from densevit.registry import DATASETS, MODELS

    # 64 px -> 4x4 patches: enough shape cells for a two-class dense probe.
    tiny_model_cfg['backbone']['img_size'] = 64
    model = MODELS.build(tiny_model_cfg).eval()
    dataset = DATASETS.build(
        dict(
            type='SyntheticShapes',
            num_samples=8,
            img_size=64,
            num_classes=3,
            pipeline=[
                dict(type='TwoViewCrop', size=64, min_overlap=0.3),
                dict(type='PackDenseInputs')
            ]))
    evaluator = Evaluator([
        dict(type='CorrespondenceAccuracy', _scope_='densevit'),
        dict(type='DenseProbe', num_classes=4, _scope_='densevit'),
        dict(type='KNNAccuracy', k=3, _scope_='densevit'),
    ])
    for start in (0, 4):
        batch = default_collate([dataset[i] for i in range(start, start + 4)])
        data = model.data_preprocessor(batch, False)
        evaluator.process(model(**data, mode='predict'), batch)
    metrics = evaluator.evaluate(len(dataset))
    assert set(metrics) == {
        'correspondence/acc_backbone', 'correspondence/acc_dense',
        'correspondence/acc_position_baseline',
        'correspondence/acc_random_baseline', 'dense_probe/mIoU',
        'dense_probe/pixel_acc', 'dense_probe/mIoU_chance',
        'dense_probe/pixel_acc_chance', 'knn/top1', 'knn/chance'
    }
    assert all(0.0 <= v <= 1.0 for v in metrics.values())


# Known answers: inputs built so that each metric's value is fixed by
# construction, checked through the Evaluator as a Runner drives it.

def _known_corr_sample(box2, backbone, dense):
    """Two-view sample on a (2, 4) grid of 16-px patches, view 1 = [0, 0,
    64, 32]; the predictions are given by hand."""
    sample = DataSample(metainfo=dict(
        view_boxes=torch.tensor([[0., 0., 64., 32.], box2]),
        view_flips=torch.tensor([False, False]), patch_grid=(2, 4)))
    sample.pred_corr_backbone = torch.tensor(backbone)
    sample.pred_corr_dense = torch.tensor(dense)
    return sample


def test_correspondence_accuracy_known_answers():
    # Sample A, view 2 = view 1: the truth of patch i is i, all 8 valid.
    # Backbone gets patches 0-2 right; the other five point two or more
    # cells away (tolerance 1): 3 of 8.
    same = _known_corr_sample([0., 0., 64., 32.], [0, 1, 2, 0, 3, 3, 0, 0],
                              [0] * 8)
    evaluator = Evaluator(
        dict(type='CorrespondenceAccuracy', _scope_='densevit'))
    evaluator.process([same])
    metrics = evaluator.evaluate(1)
    assert metrics['correspondence/acc_backbone'] == 0.375
    # Patch 0 everywhere is within one cell of truths 0, 1, 4, 5: 4 of 8.
    assert metrics['correspondence/acc_dense'] == 0.5
    assert metrics['correspondence/acc_position_baseline'] == 1.0
    # A uniform guess hits 4 of 8 cells at the grid's ends (cols 0, 3) and
    # 6 of 8 inside: (4 * 4 + 4 * 6) / 8 expected hits of 8.
    assert metrics['correspondence/acc_random_baseline'] == pytest.approx(
        40 / 8 / 8)

    # Sample B, view 2 = [32, 0, 96, 32]: only view-1 columns 2, 3 (centres
    # x = 40, 56) lie in it, at view-2 columns 0, 1. Its 4 valid patches
    # pool with A's 8: backbone 3 + 4 of 12 (not the mean of 3/8 and 1).
    from densevit.evaluation.functional import correspondence_ground_truth
    shifted_box = [32., 0., 96., 32.]
    gt, valid, _ = correspondence_ground_truth(
        torch.tensor([[0., 0., 64., 32.], shifted_box]),
        torch.tensor([False, False]), (2, 4))
    assert gt.tolist() == [-1, -1, 0, 1, -1, -1, 4, 5]
    shifted = _known_corr_sample(shifted_box, [7, 7, 0, 1, 7, 7, 4, 5],
                                 [0] * 8)
    evaluator.process([same, shifted])
    metrics = evaluator.evaluate(2)
    assert metrics['correspondence/acc_backbone'] == 7 / 12
    assert metrics['correspondence/acc_dense'] == 8 / 12
    # Own cell: 8 of A; in B truth col = col - 2, two cells off: 0 of 4.
    assert metrics['correspondence/acc_position_baseline'] == 8 / 12
    # B's truths 0, 1, 4, 5: 4 + 6 + 4 + 6 cells of 8.
    assert metrics['correspondence/acc_random_baseline'] == pytest.approx(
        (40 / 8 + 20 / 8) / 12)


def _one_hot_samples(feature_classes, labels, seed=0):
    """cls_feats: the one-hot of ``feature_classes`` plus 1% noise."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for cls, label in zip(feature_classes, labels):
        sample = DataSample().set_gt_label(int(label))
        sample.cls_feats = torch.nn.functional.one_hot(
            torch.tensor(int(cls)), 4).float() + 0.01 * torch.randn(
                4, generator=g)
        samples.append(sample)
    return samples


@pytest.mark.parametrize('metric', [
    dict(type='KNNAccuracy', k=5, prefix='known'),
    dict(type='LinearProbeAccuracy', prefix='known')
])
def test_classification_probes_known_answers(metric):
    # 30 samples, features the one-hot of their class; the fit share keeps
    # its labels, 3 of the 15 scored samples get another class's label. A
    # classifier that follows the features is right on 12 of 15.
    feature_classes = torch.arange(3).repeat(10)
    labels = feature_classes.clone()
    _, scored = probe_split(30, 0.5, 0)
    relabelled = scored[:3]
    labels[relabelled] = (feature_classes[relabelled] + 1) % 3
    samples = _one_hot_samples(feature_classes, labels)
    evaluator = Evaluator(dict(metric, _scope_='densevit'))
    evaluator.process(samples[:16])
    evaluator.process(samples[16:])
    metrics = evaluator.evaluate(30)
    assert metrics['known/top1'] == pytest.approx(12 / 15, abs=1e-7)
    scored_counts = Counter(labels[scored].tolist())
    assert metrics['known/chance'] == pytest.approx(
        max(scored_counts.values()) / 15)


def _cells_sample(feature_cells, mask):
    """A (3, 2, 2) patch_feats, the one-hot of ``feature_cells`` (+ 1%
    noise), and a 16x16 mask (8x8 pixels per patch)."""
    g = torch.Generator().manual_seed(sum(feature_cells))
    sample = DataSample()
    cells = torch.tensor(feature_cells).view(2, 2)
    sample.patch_feats = torch.nn.functional.one_hot(cells, 3).permute(
        2, 0, 1).float() + 0.01 * torch.randn(3, 2, 2, generator=g)
    sample.gt_mask = mask
    return sample


def _cell_mask(cells):
    return torch.tensor(cells).view(2, 2).repeat_interleave(
        8, 0).repeat_interleave(8, 1)


def test_dense_probe_known_answer():
    # probe_split(6) fits on samples 2, 3, 5 and scores 0, 1, 4. The fitted
    # ones have masks equal to their features, so the probe predicts the
    # feature class; the scored masks differ from it in known patches.
    assert [t.tolist() for t in probe_split(6, 0.5, 0)] == [[2, 3, 5],
                                                            [0, 1, 4]]
    first_mask = _cell_mask([0, 1, 1, 1])
    second_mask = _cell_mask([0, 1, 2, 2])
    # A patch decided by majority: 40 pixels of class 0, 24 of class 2.
    second_mask[:3, :8] = 2
    ignored = torch.full((16, 16), 255)  # scores nothing
    samples = [
        _cells_sample([0, 0, 1, 2], first_mask),
        _cells_sample([0, 1, 1, 2], second_mask),
        _cells_sample([0, 1, 2, 0], _cell_mask([0, 1, 2, 0])),
        _cells_sample([1, 2, 0, 1], _cell_mask([1, 2, 0, 1])),
        _cells_sample([2, 2, 2, 2], ignored),
        _cells_sample([2, 0, 1, 2], _cell_mask([2, 0, 1, 2])),
    ]
    evaluator = Evaluator(
        dict(type='DenseProbe', num_classes=3, _scope_='densevit'))
    evaluator.process(samples)
    metrics = evaluator.evaluate(6)
    # (truth, prediction) of the 8 scored patches: (0,0) (1,0) (1,1) (1,2)
    # and (0,0) (1,1) (2,1) (2,2). IoU = hits / (truth + predicted - hits):
    # class 0: 2 / (2 + 3 - 2), class 1: 2 / (4 + 3 - 2), class 2:
    # 1 / (2 + 2 - 1).
    assert metrics['dense_probe/mIoU'] == pytest.approx(
        (2 / 3 + 2 / 5 + 1 / 3) / 3, abs=1e-12)
    assert metrics['dense_probe/pixel_acc'] == pytest.approx(5 / 8)
    # The most common scored label is 1 (4 of 8): its IoU is 4 / 8, the
    # other classes' 0.
    assert metrics['dense_probe/pixel_acc_chance'] == pytest.approx(0.5)
    assert metrics['dense_probe/mIoU_chance'] == pytest.approx(0.5 / 3)
