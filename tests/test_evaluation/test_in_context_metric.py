"""InContextSegmentation: nearest-neighbour (Hummingbird) segmentation."""
import copy
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

from densevit.engine.hooks.probe_hook import ProbeHook
from densevit.evaluation import (InContextSegmentation, cosine_topk,
                                 knn_predict, probe_split, seeded_subsample)

KEYS = {'mIoU', 'pixel_acc', 'mIoU_chance', 'pixel_acc_chance'}


def _mask(cells, patch=8):
    """A pixel mask with ``patch x patch`` pixels per grid cell."""
    cells = torch.as_tensor(cells)
    return cells.repeat_interleave(patch, 0).repeat_interleave(patch, 1)


def _sample(feats, cells, path=None):
    """patch_feats ``(C, H, W)`` and the mask of the ``(H, W)`` cells."""
    sample = DataSample()
    sample.patch_feats = torch.as_tensor(feats, dtype=torch.float)
    sample.gt_mask = _mask(cells)
    if path is not None:
        sample.set_metainfo(dict(img_path=path))
    return sample


def _one_hot_samples(n, num_classes=3, seed=0):
    """Samples whose features are the one-hot of their patch labels."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        cells = torch.randint(0, num_classes, (4, 4), generator=g)
        samples.append(
            _sample(F.one_hot(cells, num_classes).permute(2, 0, 1), cells))
    return samples


def test_one_hot_features_segment_perfectly_through_the_evaluator():
    samples = _one_hot_samples(8)
    evaluator = Evaluator(
        dict(type='InContextSegmentation', num_classes=3, _scope_='densevit'))
    evaluator.process(samples[:5])
    evaluator.process(samples[5:])
    metrics = evaluator.evaluate(8)
    assert set(metrics) == {f'in_context/{key}' for key in KEYS}
    assert metrics['in_context/mIoU'] == 1.0
    assert metrics['in_context/pixel_acc'] == 1.0
    # The chance level: the most common class of the scored patches.
    _, scored = probe_split(8, 0.5, 0)
    labels = torch.stack([samples[i].patch_feats.argmax(0)
                          for i in scored.tolist()]).reshape(-1)
    counts = torch.bincount(labels, minlength=3)
    assert metrics['in_context/pixel_acc_chance'] == pytest.approx(
        counts.max().item() / labels.numel())
    assert metrics['in_context/mIoU_chance'] == pytest.approx(
        counts.max().item() / labels.numel() / 3)


def test_k1_known_answer():
    # Memory (the fit image): four patches with 2-d features. Each scored
    # patch takes the label of the memory patch of highest cosine
    # similarity, which is not always the nearest in Euclidean distance.
    memory = _sample(
        torch.tensor([[1., 0.], [0., 1.], [1., 1.], [-1., 0.]]).T.reshape(
            2, 2, 2), [[0, 1], [2, 1]], 'a/fit_0.png')
    # (10, 1): cosine 0.995 to (1, 0) -> 0 (Euclidean: (1, 1) is nearer).
    # (0.2, 0.3): cosine 0.98 to (1, 1) -> 2, 0.83 to (0, 1).
    # (-2, 0.1): (-1, 0) -> 1. (3, 3.3): (1, 1) -> 2.
    query = _sample(
        torch.tensor([[10., 1.], [.2, .3], [-2., .1], [3., 3.3]]).T.reshape(
            2, 2, 2), [[0, 1], [1, 2]], 'a/score_0.png')
    metric = InContextSegmentation(
        num_classes=3, k=1, fit_pattern='/fit_', prefix='known')
    metric.process(None, [query, memory])
    metrics = metric.evaluate(2)
    # (truth, prediction): (0, 0) (1, 2) (1, 1) (2, 2). IoU: class 0 1/1,
    # class 1 1/2, class 2 1/2.
    assert metrics['known/mIoU'] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert metrics['known/pixel_acc'] == 0.75
    # Class 1 everywhere: IoU 2/4 for class 1, 0 for 0 and 2.
    assert metrics['known/pixel_acc_chance'] == 0.5
    assert metrics['known/mIoU_chance'] == pytest.approx(0.5 / 3)


def test_votes_are_softmax_weighted_by_temperature():
    # One memory patch of class 0 very close to the query, two of class 1
    # a little farther: a sharp softmax follows the closest, a flat one
    # counts heads.
    memory = _sample(
        torch.tensor([[1., 0.], [.9, .436], [.9, -.436], [-1., 0.]]).T
        .reshape(2, 2, 2), [[0, 1], [1, 0]], 'fit_0.png')
    query = _sample(torch.tensor([[1., .01]] * 4).T.reshape(2, 2, 2),
                    [[0, 0], [0, 1]], 'score_0.png')
    accuracy = {}
    for temperature in (0.02, 10.):
        metric = InContextSegmentation(
            num_classes=2, k=3, temperature=temperature, fit_pattern='fit_')
        metric.process(None, [memory, query])
        accuracy[temperature] = metric.evaluate(2)['in_context/pixel_acc']
    assert accuracy == {0.02: 0.75, 10.: 0.25}


def test_ignored_pixels_and_patches():
    # Fit image: the top-left patch is 40 px ignored, 24 px class 1: its
    # majority label is 1. The top-right patch is all ignored: it stays out
    # of the memory although its feature equals the scored patches'.
    fit_mask = _mask([[0, 255], [0, 0]])
    fit_mask[:8, :8] = 255
    fit_mask[5:8, :8] = 1
    fit = DataSample(metainfo=dict(img_path='fit.png'))
    fit.patch_feats = torch.tensor([[1., 0.], [0., 1.], [-1., 0.],
                                    [-1., 0.]]).T.reshape(2, 2, 2)
    fit.gt_mask = fit_mask
    # Scored image: all patches nearest to (1, 0) or (0, 1); the bottom row
    # is ignored, so only the top row is scored.
    score = DataSample(metainfo=dict(img_path='score.png'))
    score.patch_feats = torch.tensor([[1., .1], [.1, 1.], [0., 1.],
                                      [0., 1.]]).T.reshape(2, 2, 2)
    score.gt_mask = _mask([[1, 0], [255, 255]])
    metric = InContextSegmentation(num_classes=2, k=1, fit_pattern='fit')
    metric.process(None, [fit, score])
    metrics = metric.evaluate(2)
    # (1, 0) -> 1 (the majority label), right. (0.1, 1): the ignored
    # (0, 1) patch is not in the memory; the nearest left is (1, 0) -> 1,
    # truth 0: wrong.
    assert metrics['in_context/pixel_acc'] == 0.5
    assert metrics['in_context/mIoU'] == pytest.approx((0 + 1 / 2) / 2)


def test_dense_feature_reads_the_projected_features():
    # The class is in dense_feats (H, W, D) only; patch_feats are noise.
    samples = _one_hot_samples(8, seed=1)
    g = torch.Generator().manual_seed(0)
    for sample in samples:
        sample.dense_feats = sample.patch_feats.permute(1, 2, 0).clone()
        sample.patch_feats = torch.randn(3, 4, 4, generator=g)
    dense = InContextSegmentation(num_classes=3, feature='dense')
    patch = InContextSegmentation(num_classes=3)
    for metric in (dense, patch):
        metric.process(None, samples)
    assert dense.evaluate(8)['in_context_dense/mIoU'] == 1.0
    assert patch.evaluate(8)['in_context/mIoU'] < 0.6


def test_chunked_search_equals_one_block():
    g = torch.Generator().manual_seed(0)
    memory, queries = torch.randn(50, 8, generator=g), torch.randn(
        23, 8, generator=g)
    labels = torch.randint(0, 4, (50, ), generator=g)
    full_sim, full_idx = cosine_topk(memory, queries, 7, 1000, 1000)
    expected = F.normalize(queries, dim=1) @ F.normalize(memory, dim=1).T
    assert torch.allclose(full_sim, expected.topk(7, dim=1).values)
    full_pred = knn_predict(memory, labels, queries, 4, k=7, chunk_size=1000,
                            memory_chunk_size=1000)
    for query_chunk, memory_chunk in ((1, 1), (4, 6), (23, 9), (5, 50)):
        sim, idx = cosine_topk(memory, queries, 7, query_chunk, memory_chunk)
        assert torch.allclose(sim, full_sim) and torch.equal(idx, full_idx)
        assert torch.equal(
            knn_predict(memory, labels, queries, 4, k=7,
                        chunk_size=query_chunk,
                        memory_chunk_size=memory_chunk), full_pred)
    # k larger than a memory block, and than the memory.
    sim, idx = cosine_topk(memory, queries, 60, 5, 4)
    assert sim.shape == (23, 50) and torch.equal(
        idx.sort(dim=1).values, torch.arange(50).expand(23, 50))


def test_small_temperature_does_not_overflow():
    # exp(s / T) overflows float32 for T = 1e-3: the softmax does not.
    memory = torch.tensor([[1., 0.], [.99, .141], [.99, -.141]])
    labels = torch.tensor([1, 0, 0])
    pred = knn_predict(memory, labels, torch.tensor([[1., 0.]]), 2, k=3,
                       temperature=1e-3)
    assert pred.tolist() == [1]


def test_memory_cap_is_a_deterministic_seeded_draw():
    keep = seeded_subsample(100, 10, seed=3)
    assert torch.equal(keep, seeded_subsample(100, 10, seed=3))
    assert not torch.equal(keep, seeded_subsample(100, 10, seed=4))
    assert keep.tolist() == sorted(set(keep.tolist())) and len(keep) == 10
    assert 0 <= keep.min() and keep.max() < 100
    assert torch.equal(seeded_subsample(6, 10), torch.arange(6))

    # The metric's memory is exactly those rows of the fit patches.
    g = torch.Generator().manual_seed(0)
    fit_x, fit_y = torch.randn(40, 4, generator=g), torch.randint(
        0, 3, (40, ), generator=g)
    score_x = torch.randn(30, 4, generator=g)
    metric = InContextSegmentation(num_classes=3, k=2, memory_size=5, seed=3)
    rows = seeded_subsample(40, 5, seed=3)
    capped = metric.predict(fit_x, fit_y, score_x)
    assert torch.equal(
        capped, knn_predict(fit_x[rows], fit_y[rows], score_x, 3, 2, 0.02))
    assert not torch.equal(capped,
                           knn_predict(fit_x, fit_y, score_x, 3, 2, 0.02))
    assert torch.equal(capped, metric.predict(fit_x, fit_y, score_x))


def test_bad_arguments_name_the_field():
    for kwargs, match in [
        (dict(k=0), 'InContextSegmentation: k must'),
        (dict(k=2.5), 'k must be an int'),
        (dict(temperature=0), 'temperature must be a number > 0'),
        (dict(temperature=float('inf')), 'temperature'),
        (dict(temperature='0.1'), 'temperature'),
        (dict(memory_size=10), 'memory_size must be None .* >= k=30'),
        (dict(memory_size=0, k=1), 'memory_size'),
        (dict(feature='cls'), "feature must be one of \\('patch', 'dense'\\)"),
        (dict(num_classes=1), 'num_classes must be an int >= 2'),
        (dict(num_classes=None), 'num_classes is required'),
        (dict(train_fraction=1.0), 'train_fraction'),
        (dict(fit_pattern=''), 'fit_pattern must be a non-empty str'),
    ]:
        kwargs = dict(dict(num_classes=3), **kwargs)
        with pytest.raises(ValueError, match=match):
            InContextSegmentation(**kwargs)


def test_bad_samples_name_the_field():
    sample = _one_hot_samples(1)[0]
    with pytest.raises(ValueError, match='needs dense_feats'):
        InContextSegmentation(num_classes=3, feature='dense').process(
            None, [sample])
    sample.dense_feats = torch.zeros(16, 3)
    with pytest.raises(ValueError, match=r'dense_feats must be \(H, W, D\)'):
        InContextSegmentation(num_classes=3, feature='dense').process(
            None, [sample])
    del sample.gt_mask
    with pytest.raises(ValueError, match='InContextSegmentation needs gt_m'):
        InContextSegmentation(num_classes=3).process(None, [sample])
    with pytest.raises(ValueError, match='fit_pattern=...\\) needs img_path'):
        InContextSegmentation(num_classes=3, fit_pattern='fit').process(
            None, _one_hot_samples(1))
    metric = InContextSegmentation(num_classes=3, fit_pattern='fit')
    metric.process(None, [_sample(torch.zeros(3, 4, 4), torch.zeros(4, 4),
                                  'score.png')] * 2)
    with pytest.raises(ValueError, match="fit_pattern='fit' leaves 0 samp"):
        metric.evaluate(2)


def test_probe_hook_reports_what_the_test_loop_reports(tmp_path,
                                                       tiny_model_cfg):
    """On DenseViT's own predictions, both features, no special code."""
    split = dict(
        batch_size=6,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='SyntheticShapes', num_samples=12, img_size=64,
            num_classes=3, seed=3, pipeline=[dict(type='PackDenseInputs')]))
    metrics = [
        dict(type='InContextSegmentation', num_classes=4, k=5),
        dict(type='InContextSegmentation', num_classes=4, feature='dense'),
    ]
    tiny_model_cfg['backbone']['img_size'] = 64  # 4x4 patch grid
    runner = Runner(
        model=tiny_model_cfg,
        work_dir=str(tmp_path),
        test_dataloader=copy.deepcopy(split),
        test_evaluator=copy.deepcopy(metrics),
        test_cfg=dict(type='TestLoop'),
        default_scope='densevit',
        experiment_name=f'in_context_{uuid.uuid4().hex[:8]}')
    hook = ProbeHook(copy.deepcopy(split), copy.deepcopy(metrics))
    hook.before_train(runner)
    probed = hook._probe(runner, 0, 0)
    tested = runner.test()
    assert set(tested) == {f'{prefix}/{key}' for key in KEYS
                           for prefix in ('in_context', 'in_context_dense')}
    assert probed == pytest.approx(tested, abs=1e-6)
    assert all(0.0 <= v <= 1.0 for v in tested.values())
