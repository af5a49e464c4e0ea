import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, set_random_seed

from densevit.registry import MODELS

CFG_DIR = osp.join(osp.dirname(__file__), '../../configs/_base_/datasets')


def load(name: str) -> Config:
    return Config.fromfile(osp.join(CFG_DIR, name))


def small_loader_cfg(loader_cfg, num_samples=8, batch_size=4) -> dict:
    cfg = loader_cfg.to_dict()
    cfg.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    cfg['dataset']['num_samples'] = num_samples
    return cfg


def build_loader(cfg: dict):
    # Configs run with default_scope='densevit' (set by the runtime config).
    with DefaultScope.overwrite_default_scope('densevit'):
        return Runner.build_dataloader(cfg, seed=0)


def test_synthetic_train_dataloader_batch():
    cfg = load('synthetic_shapes_64px.py')
    tl = cfg.train_dataloader
    assert tl.batch_size == 32 and tl.num_workers == 2
    assert not tl.persistent_workers and tl.drop_last  # exact resume
    assert tl.sampler == dict(type='DefaultSampler', shuffle=True)
    assert tl.collate_fn == dict(type='default_collate')
    batch = next(iter(build_loader(small_loader_cfg(tl))))
    inputs, samples = batch['inputs'], batch['data_samples']
    assert isinstance(inputs, list) and len(inputs) == 2
    for x in inputs:
        assert x.shape == (4, 3, 64, 64) and x.dtype == torch.uint8
    assert len(samples) == 4
    assert samples[0].view_boxes.shape == (2, 4)
    assert samples[0].gt_mask.shape == (2, 64, 64)
    # The data preprocessor of the config takes this batch as is.
    pre = MODELS.build(cfg.data_preprocessor)
    out = pre(batch)
    assert [x.shape for x in out['inputs']] == [(4, 3, 64, 64)] * 2
    assert out['inputs'][0].dtype == torch.float32
    assert abs(out['inputs'][0].mean().item()) < 1.5


def test_synthetic_train_batches_reproducible_with_seed():
    cfg = small_loader_cfg(load('synthetic_shapes_64px.py').train_dataloader)
    batches = []
    for seed in (0, 0, 1):
        # What the Runner does with `randomness=dict(seed=...)`.
        set_random_seed(seed)
        batches.append(next(iter(build_loader(cfg))))
    for a, b in zip(batches[0]['inputs'], batches[1]['inputs']):
        assert torch.equal(a, b)
    assert not torch.equal(batches[0]['inputs'][0], batches[2]['inputs'][0])


def test_synthetic_probe_and_test_dataloaders():
    cfg = load('synthetic_shapes_64px.py')
    seeds = set()
    for key in ('probe_dataloader', 'test_dataloader'):
        loader_cfg = cfg[key]
        seeds.add(loader_cfg.dataset.seed)
        assert loader_cfg.sampler.shuffle is False
        batch = next(iter(build_loader(small_loader_cfg(loader_cfg))))
        # Two views with their crop geometry, masks and labels.
        assert [v.shape for v in batch['inputs']] == [(4, 3, 64, 64)] * 2
        s = batch['data_samples'][0]
        assert s.gt_mask.shape == (2, 64, 64) and s.gt_label.shape == (1, )
        assert s.view_boxes.shape == (2, 4)
    # Train, probe and test are different images.
    assert len(seeds | {cfg.train_dataloader.dataset.seed}) == 3


def test_two_view_recipe_defined_once():
    syn = load('synthetic_shapes_64px.py')
    inet = load('imagenet_224px.py')
    # Same augmentation dicts, only the crop size differs.
    assert syn.train_pipeline[1] == inet.train_pipeline[2]
    assert syn.train_pipeline[2] == inet.train_pipeline[3]
    crop_syn = dict(syn.train_pipeline[0])
    crop_inet = dict(inet.train_pipeline[1])
    assert crop_syn.pop('size') == 64 and crop_inet.pop('size') == 224
    assert crop_syn == crop_inet
    augs = [t.type for t in syn.train_pipeline[1].transforms]
    assert augs == ['RandomColorJitter', 'RandomGrayscale', 'GaussianBlur']
    assert syn.data_preprocessor == inet.data_preprocessor
    assert syn.data_preprocessor.to_rgb is True
