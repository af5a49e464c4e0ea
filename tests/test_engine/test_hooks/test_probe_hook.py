import copy
import glob
import json
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.structures import DataSample
from torch import nn
from torch.utils.data import Dataset

from densevit.engine.hooks.probe_hook import ProbeHook

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
CLS_METRICS = [
    dict(type='KNNAccuracy', k=5),
    dict(type='LinearProbeAccuracy', max_iter=20)
]


class ToyProbeSet(Dataset):
    """32 px images: a 16 px square whose colour is the class, on grey.

    Squares are aligned to 8 px cells (the toy model's patches), and the
    mask is 0 for background, class + 1 inside the square.
    """

    def __init__(self, n=24, labelled=True, two_view=False):
        self.n, self.labelled, self.two_view = n, labelled, two_view

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        c = i % 3
        r0, c0 = 8 * ((i // 3) % 3), 8 * ((i // 9) % 3)
        img = torch.full((3, 32, 32), 90, dtype=torch.uint8)
        img[:, r0:r0 + 16, c0:c0 + 16] = torch.tensor(
            COLOURS[c], dtype=torch.uint8)[:, None, None]
        sample = DataSample()
        if self.labelled:
            sample.set_gt_label(c)
        mask = torch.zeros(32, 32, dtype=torch.long)
        mask[r0:r0 + 16, c0:c0 + 16] = c + 1
        sample.gt_mask = mask
        inputs = [img, img.clone()] if self.two_view else img
        return dict(inputs=inputs, data_samples=sample)


class ToyDenseModel(BaseModel):
    """Stand-in for DenseViT: 8 px patch embedding, CLS = mean patch."""

    def __init__(self):
        super().__init__(
            data_preprocessor=SelfSupDataPreprocessor(
                mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True))
        torch.manual_seed(0)
        self.patch_embed = nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.loss_calls = 0
        self.loss_modes = []  # model.training at each loss call
        self.predict_modes = []  # (training, grad enabled) at each predict

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if isinstance(inputs, list):
            inputs = inputs[0]
        patches = self.patch_embed(inputs)
        if mode == 'loss':
            self.loss_calls += 1
            self.loss_modes.append(self.training)
            return dict(loss=patches.pow(2).mean())
        self.predict_modes.append((self.training, torch.is_grad_enabled()))
        for i, sample in enumerate(data_samples):
            sample.cls_feats = patches[i].mean(dim=(1, 2))
            sample.patch_feats = patches[i]
        return data_samples


def _runner(tmp_path, hook, by_epoch=True, max_steps=2, cfg=None):
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=max_steps)
    else:
        train_cfg = dict(by_epoch=False, max_iters=max_steps)
    return Runner(
        model=ToyDenseModel(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=ToyProbeSet(n=8),
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
    values, steps = runner.message_hub.get_scalar(key).data
    return list(values)


def test_probe_logged_each_epoch(tmp_path):
    hook = ProbeHook(
        _loader(ToyProbeSet(n=36)),
        CLS_METRICS + [dict(type='DenseProbe', num_classes=4, max_iter=20)])
    runner = _runner(tmp_path, hook, max_steps=2)
    runner.train()

    # One probe per epoch; after_train does not repeat the last one.
    top1 = _history(runner, 'linear_probe/top1')
    assert len(top1) == 2
    assert top1[-1] >= 0.9  # colour separates the classes linearly
    assert _history(runner, 'linear_probe/chance')[-1] < 0.5
    assert _history(runner, 'knn/top1')[-1] >= 0.9
    assert _history(runner, 'dense_probe/mIoU')[-1] >= 0.9

    model = runner.model
    # Training steps ran in train mode; predictions in eval mode, no grad.
    assert model.loss_calls == 4 and all(model.loss_modes)
    # One trial batch before training, then 36 / 8 -> 5 batches per probe.
    assert len(model.predict_modes) == 1 + 2 * 5
    assert all(m == (False, False) for m in model.predict_modes)
    assert model.training

    # The visualiser backend gets the same names, at the epoch (as mmengine
    # logs validation).
    files = glob.glob(
        osp.join(str(tmp_path), '**', 'scalars.json'), recursive=True)
    logged = [json.loads(line) for f in files for line in open(f)]
    steps = [rec['step'] for rec in logged if 'linear_probe/top1' in rec]
    assert steps == [1, 2]


def test_iter_based_interval_and_final_probe(tmp_path):
    hook = ProbeHook(
        _loader(ToyProbeSet(n=12)), CLS_METRICS, interval=3, by_epoch=False)
    runner = _runner(tmp_path, hook, by_epoch=False, max_steps=4)
    runner.train()
    # iter 3 by interval, iter 4 at the end of training.
    assert len(_history(runner, 'knn/top1')) == 2
    assert 'dense_probe/mIoU' not in runner.message_hub.log_scalars


def test_dataloader_and_evaluator_named_by_config_field(tmp_path):
    hook = ProbeHook('probe_dataloader', 'test_evaluator')

    def split(seed):
        return dict(
            batch_size=8,
            dataset=dict(
                type='SyntheticShapes', num_samples=12, img_size=32,
                seed=seed, pipeline=[dict(type='PackDenseInputs')]))

    cfg = Config(
        dict(
            probe_dataloader=split(1),
            test_evaluator=[dict(type='KNNAccuracy', k=3)]))
    runner = _runner(tmp_path, hook, max_steps=1, cfg=cfg)
    runner.train()
    assert len(_history(runner, 'knn/top1')) == 1

    missing = ProbeHook('no_such_field', 'test_evaluator')
    runner = _runner(tmp_path, missing, max_steps=1, cfg=cfg)
    with pytest.raises(ValueError, match='no_such_field.*Fix: define'):
        runner.train()


def test_split_the_metrics_cannot_use_raises_before_training(tmp_path):
    hook = ProbeHook(_loader(ToyProbeSet(n=8, labelled=False)), CLS_METRICS)
    runner = _runner(tmp_path / 'a', hook)
    with pytest.raises(ValueError, match='KNNAccuracy needs gt_label'):
        runner.train()
    assert runner.model.loss_calls == 0

    # Two views but no crop boxes: the correspondence truth is unknown.
    hook = ProbeHook(
        _loader(ToyProbeSet(n=8, two_view=True)),
        [dict(type='CorrespondenceAccuracy')])
    runner = _runner(tmp_path / 'b', hook)
    with pytest.raises(ValueError, match='view_boxes'):
        runner.train()
    assert runner.model.loss_calls == 0
    assert runner.model.training  # restored after the failed trial


def test_bad_arguments():
    loader = _loader(ToyProbeSet())
    with pytest.raises(ValueError, match='interval'):
        ProbeHook(loader, CLS_METRICS, interval=0)
    with pytest.raises(TypeError, match='ProbeHook: dataloader'):
        ProbeHook(ToyProbeSet(), CLS_METRICS)
    with pytest.raises(TypeError, match='ProbeHook: evaluator'):
        ProbeHook(loader, 3)


TWO_VIEW = [
    dict(type='TwoViewCrop', size=64, scale=(0.5, 1.0), min_overlap=0.5),
    dict(type='PackDenseInputs')
]
ALL_METRICS = [
    dict(type='CorrespondenceAccuracy'),
    dict(type='DenseProbe', num_classes=4, max_iter=10),
    dict(type='KNNAccuracy', k=3),
    dict(type='LinearProbeAccuracy', max_iter=10),
]


def test_hook_reports_what_the_test_loop_reports(tmp_path, tiny_model_cfg):
    """Same checkpoint, same split: ProbeHook == Runner.test (tools/test.py)."""
    split = dict(
        batch_size=4,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='SyntheticShapes',
            num_samples=12,
            img_size=64,
            num_classes=3,
            seed=3,
            pipeline=TWO_VIEW))
    cfg = Config(dict(test_dataloader=split, test_evaluator=ALL_METRICS))
    tiny_model_cfg['backbone']['img_size'] = 64  # 4x4 patch grid
    runner = Runner(
        model=tiny_model_cfg,
        work_dir=str(tmp_path),
        test_dataloader=copy.deepcopy(split),
        test_evaluator=copy.deepcopy(ALL_METRICS),
        test_cfg=dict(type='TestLoop'),
        default_scope='densevit',
        experiment_name=f'probe_{uuid.uuid4().hex[:8]}',
        cfg=cfg)
    hook = ProbeHook('test_dataloader', 'test_evaluator')
    hook.before_train(runner)
    # TwoViewCrop draws from the global numpy generator: give both
    # evaluations the same crops.
    np.random.seed(0)
    probed = hook._probe(runner, 0, 0)
    assert runner.model.training  # train mode restored
    np.random.seed(0)
    tested = runner.test()
    assert set(probed) == set(tested) and len(probed) == 12
    for key, value in tested.items():
        assert probed[key] == pytest.approx(value, abs=1e-6), key
        assert runner.message_hub.get_scalar(key).current() == probed[key]
