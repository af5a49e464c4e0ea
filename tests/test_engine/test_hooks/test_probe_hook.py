import glob
import json
import os.path as osp
import uuid

import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.structures import DataSample
from torch import nn
from torch.utils.data import Dataset

from densevit.engine.hooks.linear_probe_hook import LinearProbeHook

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


class ToyProbeSet(Dataset):
    """32 px images: a 16 px square whose colour is the class, on grey.

    Squares are aligned to 8 px cells (the toy model's patches), and the
    mask is 0 for background, class + 1 inside the square.
    """

    def __init__(self,
                 n=24,
                 labelled=True,
                 masks=True,
                 two_view=False,
                 num_classes=3):
        self.n, self.labelled, self.num_classes = n, labelled, num_classes
        self.masks, self.two_view = masks, two_view
        self.metainfo = dict(classes=('r', 'g', 'b'))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        c = i % self.num_classes
        r0, c0 = 8 * ((i // 3) % 3), 8 * ((i // 9) % 3)
        img = torch.full((3, 32, 32), 90, dtype=torch.uint8)
        img[:, r0:r0 + 16, c0:c0 + 16] = torch.tensor(
            COLOURS[c], dtype=torch.uint8)[:, None, None]
        sample = DataSample()
        if self.labelled:
            sample.set_gt_label(c)
        if self.masks:
            mask = torch.zeros(32, 32, dtype=torch.long)
            mask[r0:r0 + 16, c0:c0 + 16] = c + 1
            sample.gt_mask = mask
        inputs = [img, img.clone()] if self.two_view else img
        return dict(inputs=inputs, data_samples=sample)


class ToyDenseModel(nn.Module):
    """Stand-in for DenseViT: 8 px patch embedding, CLS = mean patch."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.data_preprocessor = SelfSupDataPreprocessor(
            mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True)
        self.patch_embed = nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.loss_calls = 0
        self.loss_modes = []  # model.training at each loss call
        self.extract_modes = []  # (training, grad enabled) outside loss

    def extract_feat(self, inputs):
        patches = self.patch_embed(inputs)
        if not self.training:
            self.extract_modes.append((self.training, torch.is_grad_enabled()))
        return patches.mean(dim=(2, 3)), patches

    def train_step(self, data, optim_wrapper):
        data = self.data_preprocessor(data, True)
        self.loss_calls += 1
        self.loss_modes.append(self.training)
        _, patches = self.extract_feat(data['inputs'])
        loss = patches.pow(2).mean()
        optim_wrapper.update_params(loss)
        return dict(loss=loss)


def _runner(tmp_path, hook, by_epoch=True, max_steps=2, train_set=None,
            cfg=None):
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=max_steps)
    else:
        train_cfg = dict(by_epoch=False, max_iters=max_steps)
    return Runner(
        model=ToyDenseModel(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=train_set or ToyProbeSet(n=8),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=train_cfg,
        custom_hooks=[hook],
        default_hooks=dict(checkpoint=None),
        default_scope='densevit',
        experiment_name=f'probe_{uuid.uuid4().hex[:8]}',
        randomness=dict(seed=0),
        cfg=cfg)


def _loader(dataset, batch_size=8):
    return dict(dataset=dataset, batch_size=batch_size)


def _history(runner, key):
    values, _ = runner.message_hub.get_scalar(key).data
    return list(values)


def test_probe_logged_each_epoch(tmp_path):
    hook = LinearProbeHook(
        _loader(ToyProbeSet(n=24)), _loader(ToyProbeSet(n=18)), knn_k=5)
    runner = _runner(tmp_path, hook, max_steps=2)
    runner.train()

    # One probe per epoch; after_train does not repeat the last one.
    top1 = _history(runner, 'probe/top1')
    assert len(top1) == 2
    assert top1[-1] >= 0.9  # colour separates the classes linearly
    assert _history(runner, 'probe/knn_top1')[-1] >= 0.9
    assert _history(runner, 'probe/dense_mIoU')[-1] >= 0.9

    model = runner.model
    # Training steps always ran in train mode; extraction in eval, no grad.
    assert model.loss_calls == 4 and all(model.loss_modes)
    assert model.extract_modes and all(m == (False, False)
                                       for m in model.extract_modes)
    assert model.training

    # The scalars also reach the visualiser backend (LocalVisBackend).
    files = glob.glob(
        osp.join(str(tmp_path), '**', 'scalars.json'), recursive=True)
    logged = [json.loads(line) for f in files for line in open(f)]
    assert any('probe/top1' in rec for rec in logged)


def test_iter_based_interval_and_final_probe(tmp_path):
    hook = LinearProbeHook(
        _loader(ToyProbeSet(n=12, masks=False)),
        _loader(ToyProbeSet(n=9, masks=False)),
        interval=3,
        by_epoch=False,
        knn_k=3)
    runner = _runner(tmp_path, hook, by_epoch=False, max_steps=4)
    runner.train()
    # iter 3 by interval, iter 4 at the end of training.
    assert len(_history(runner, 'probe/top1')) == 2
    # No masks in the splits: the 'auto' dense probe stays off.
    assert 'probe/dense_mIoU' not in runner.message_hub.log_scalars


def test_max_samples_limits_extraction(tmp_path):
    hook = LinearProbeHook(
        _loader(ToyProbeSet(n=24), batch_size=4),
        _loader(ToyProbeSet(n=24), batch_size=4),
        max_samples=6,
        knn_k=3,
        dense_probe=False)
    runner = _runner(tmp_path, hook, max_steps=1)
    runner.train()
    # 2 splits x 2 batches of 4 (6 samples needs 2 batches), one probe.
    assert len(runner.model.extract_modes) == 4


def test_dataloaders_named_by_config_field(tmp_path):
    from mmengine.config import Config
    hook = LinearProbeHook('probe_train', 'probe_val', knn_k=3,
                           dense_probe=False)

    def split(seed):
        return dict(
            batch_size=8,
            dataset=dict(
                type='SyntheticShapes', num_samples=12, img_size=32,
                seed=seed, pipeline=[dict(type='PackDenseInputs')]))

    cfg = Config(dict(probe_train=split(1), probe_val=split(2)))
    runner = _runner(tmp_path, hook, max_steps=1, cfg=cfg)
    runner.train()
    assert len(_history(runner, 'probe/top1')) == 1

    missing = LinearProbeHook('probe_train', 'no_such_field')
    runner = _runner(tmp_path, missing, max_steps=1, cfg=cfg)
    with pytest.raises(ValueError, match="no_such_field.*Fix: define"):
        runner.train()


def test_unlabelled_split_raises_before_training(tmp_path):
    hook = LinearProbeHook(
        _loader(ToyProbeSet(n=8)), _loader(ToyProbeSet(n=8, labelled=False)))
    runner = _runner(tmp_path, hook)
    with pytest.raises(ValueError, match='val_dataloader have no gt_label'):
        runner.train()
    assert runner.model.loss_calls == 0


def test_two_view_split_and_missing_masks_raise(tmp_path):
    hook = LinearProbeHook(
        _loader(ToyProbeSet(n=8, two_view=True)), _loader(ToyProbeSet(n=8)))
    with pytest.raises(ValueError, match='single-view pipeline'):
        _runner(tmp_path / 'a', hook).train()

    hook = LinearProbeHook(
        _loader(ToyProbeSet(n=8, masks=False)),
        _loader(ToyProbeSet(n=8)),
        dense_probe=True)
    runner = _runner(tmp_path / 'b', hook)
    with pytest.raises(ValueError, match='dense_probe=True'):
        runner.train()
    assert runner.model.loss_calls == 0


def test_single_class_split_raises_clearly(tmp_path):
    hook = LinearProbeHook(
        _loader(ToyProbeSet(n=8, num_classes=1)),
        _loader(ToyProbeSet(n=8)),
        dense_probe=False)
    with pytest.raises(ValueError, match='LinearProbeHook.*single class'):
        _runner(tmp_path, hook, max_steps=1).train()


class OneClassShapes(ToyProbeSet):
    """A labelled split that lists its labels, all of one class."""

    def get_gt_labels(self):
        return [0] * self.n


def test_single_class_split_caught_before_training(tmp_path):
    hook = LinearProbeHook(
        _loader(OneClassShapes(n=8, num_classes=1)),
        _loader(ToyProbeSet(n=8)),
        dense_probe=False)
    runner = _runner(tmp_path, hook, max_steps=1)
    with pytest.raises(ValueError, match='train_dataloader has the same cl'):
        runner.train()
    assert runner.model.loss_calls == 0


def test_bad_arguments():
    loader = _loader(ToyProbeSet())
    with pytest.raises(ValueError, match='interval'):
        LinearProbeHook(loader, loader, interval=0)
    with pytest.raises(ValueError, match='dense_probe'):
        LinearProbeHook(loader, loader, dense_probe='yes')
    with pytest.raises(TypeError, match='train_dataloader'):
        LinearProbeHook(ToyProbeSet(), loader)


def test_with_synthetic_shapes_and_densevit(tmp_path, tiny_model_cfg):
    """Contract check: dict configs, PackDenseInputs, DenseViT.extract_feat."""
    pipeline = [dict(type='PackDenseInputs')]

    def split(seed):
        return dict(
            dataset=dict(
                type='SyntheticShapes',
                num_samples=12,
                img_size=64,
                num_classes=3,
                seed=seed,
                pipeline=pipeline),
            batch_size=6)

    hook = LinearProbeHook(split(1), split(2), knn_k=5, max_iter=20)
    # 64 px -> 4x4 patches: enough shape cells for a two-class dense probe.
    tiny_model_cfg['backbone']['img_size'] = 64
    runner = Runner(
        model=tiny_model_cfg,
        work_dir=str(tmp_path),
        default_scope='densevit',
        experiment_name=f'probe_{uuid.uuid4().hex[:8]}')
    hook.before_train(runner)
    hook.after_train(runner)  # probes the (untrained) model once
    scalars = runner.message_hub.log_scalars
    for key in ('probe/top1', 'probe/knn_top1', 'probe/dense_mIoU'):
        assert 0.0 <= scalars[key].current() <= 1.0


def _shapes(num_samples, seed, pipeline, batch_size=8):
    return dict(
        batch_size=batch_size,
        dataset=dict(
            type='SyntheticShapes',
            num_samples=num_samples,
            img_size=64,
            num_classes=3,
            seed=seed,
            pipeline=pipeline))


TWO_VIEW = [
    dict(type='TwoViewCrop', size=64, scale=(0.5, 1.0), min_overlap=0.5),
    dict(type='PackDenseInputs')
]


def test_correspondence_accuracy_with_densevit(tmp_path, tiny_model_cfg):
    """corr_dataloader named by a config field, scored via DenseViT.predict."""
    from mmengine.config import Config
    single = [dict(type='PackDenseInputs')]
    cfg = Config(dict(probe_corr=_shapes(8, 3, TWO_VIEW)))
    hook = LinearProbeHook(
        _shapes(6, 1, single),
        _shapes(6, 2, single),
        corr_dataloader='probe_corr',
        knn_k=3,
        dense_probe=False,
        max_samples=6,
        max_iter=5)
    pooled = []
    compute = hook._corr_metric.compute_metrics

    def spy(results):
        pooled.append(len(results))
        return compute(results)

    hook._corr_metric.compute_metrics = spy
    tiny_model_cfg['backbone']['img_size'] = 64  # 4x4 patch grid
    runner = Runner(
        model=tiny_model_cfg,
        work_dir=str(tmp_path),
        default_scope='densevit',
        experiment_name=f'probe_{uuid.uuid4().hex[:8]}',
        cfg=cfg)
    hook.before_train(runner)
    hook.after_train(runner)
    scalars = runner.message_hub.log_scalars
    for key in ('probe/corr_acc_backbone', 'probe/corr_acc_dense'):
        assert 0.0 <= scalars[key].current() <= 1.0
    assert pooled == [6]  # max_samples caps the 8-sample split
    assert runner.model.training  # train mode restored after the probe


def test_bad_corr_dataloader_raises_before_training(tmp_path):
    def hook(corr):
        return LinearProbeHook(
            _loader(ToyProbeSet(n=8)), _loader(ToyProbeSet(n=8)),
            corr_dataloader=corr)

    single_view = _shapes(4, 3, [dict(type='PackDenseInputs')])
    runner = _runner(tmp_path / 'a', hook(single_view))
    with pytest.raises(ValueError,
                       match='corr_dataloader yields 1 view.*TwoViewCrop'):
        runner.train()
    assert runner.model.loss_calls == 0

    # Two views but no crop boxes: the truth is unknown.
    runner = _runner(tmp_path / 'b',
                     hook(_loader(ToyProbeSet(n=8, two_view=True))))
    with pytest.raises(ValueError, match='corr_dataloader.*view_boxes'):
        runner.train()

    runner = _runner(tmp_path / 'c', hook('no_corr_field'))
    with pytest.raises(ValueError, match='no_corr_field.*Fix: define'):
        runner.train()
    with pytest.raises(TypeError, match='corr_dataloader'):
        hook(ToyProbeSet())
