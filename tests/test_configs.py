"""Every shipped config: checks, and builds its model, datasets and hooks."""
import copy
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from densevit.apis import check_config
from densevit.registry import DATASETS, HOOKS, METRICS, MODELS

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO_ROOT / 'configs' / 'densevit').rglob('*.py'))
DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
               'probe_dataloader')


def fake_data_root(root: Path) -> Path:
    """ImageNet and VOC folder layouts in one root, with tiny images."""
    for split_dir in ('train/n01', 'train/n02', 'val'):
        (root / split_dir).mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(['train/n01/a.JPEG', 'train/n02/b.JPEG',
                              'val/c.JPEG', 'val/d.JPEG']):
        Image.new('RGB', (40, 40), (40 * i, 90, 200)).save(root / path)
    (root / 'meta').mkdir(exist_ok=True)
    (root / 'meta' / 'val.txt').write_text('c.JPEG 0\nd.JPEG 1\n')
    for folder in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (root / folder).mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (32, 32), (10, 200, 30)).save(root / 'JPEGImages/e.jpg')
    Image.new('L', (32, 32), 1).save(root / 'SegmentationClass/e.png')
    (root / 'ImageSets/Segmentation/val.txt').write_text('e\n')
    return root


def point_at(node, data_root: str):
    """Redirect every ``data_root`` in a dataloader config."""
    if isinstance(node, dict):
        if 'data_root' in node:
            node['data_root'] = data_root
        for value in node.values():
            point_at(value, data_root)
    elif isinstance(node, list):
        for value in node:
            point_at(value, data_root)


def test_every_experiment_has_a_config():
    names = {p.name for p in CONFIGS}
    for arch in ('tiny', 'small', 'base'):
        assert any(f'vit-{arch}-p16' in n and 'in1k' in n for n in names)
    assert any('joint' in n for n in names)
    assert any('demo' in n for n in names)
    assert any(p.parent.name == 'benchmarks' for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_builds(path, tmp_path):
    cfg = Config.fromfile(str(path))
    check_config(cfg, training=False)
    assert cfg.default_scope == 'densevit'
    data_root = str(fake_data_root(tmp_path / 'data'))

    model_cfg = copy.deepcopy(cfg.model)
    if 'init_cfg' in model_cfg.get('backbone', {}):
        model_cfg.backbone.init_cfg = None  # no pretrained file in a test
    model = MODELS.build(model_cfg)
    assert model is not None

    with DefaultScope.overwrite_default_scope('densevit'):
        for key in DATALOADERS:
            if cfg.get(key) is None:
                continue
            dataset_cfg = copy.deepcopy(cfg[key].dataset)
            point_at(dataset_cfg, data_root)
            dataset = DATASETS.build(dataset_cfg)
            sample = dataset[0]
            assert 'inputs' in sample and 'data_samples' in sample, key
        hooks = [HOOKS.build(copy.deepcopy(h)) for h in cfg.custom_hooks]
        hooks += [
            HOOKS.build(copy.deepcopy(h)) for h in cfg.default_hooks.values()
            if h is not None
        ]
        assert hooks
        for key in ('val_evaluator', 'test_evaluator'):
            evaluators = cfg.get(key) or []
            for metric in (evaluators if isinstance(evaluators, list) else
                           [evaluators]):
                METRICS.build(copy.deepcopy(metric))


TRAINING_CONFIGS = [
    p for p in CONFIGS
    if Config.fromfile(str(p)).model.type == 'DenseViT'
    and p.parent.name != 'benchmarks'
]


@pytest.mark.parametrize('path', TRAINING_CONFIGS, ids=lambda p: p.name)
def test_config_trains(path, tmp_path):
    """Each training config, shrunk to a 1-layer 32-d ViT and 2 images, runs
    a training step through the Runner with all of its hooks (ProbeHook
    aside: it is tested on its own)."""
    from densevit.apis import build_runner
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.arch = dict(embed_dims=32, num_layers=1, num_heads=2)
    cfg.model.neck.hid_channels = 32
    for loss in ('dense_loss', 'global_loss'):
        cfg.model[loss].queue_len = 8
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    point_at(loader.dataset, str(fake_data_root(tmp_path / 'data')))
    if loader.dataset.type == 'SyntheticShapes':
        loader.dataset.num_samples = 2
    elif 'data_prefix' in loader.dataset:
        loader.dataset.data_prefix = 'train'
    # One step of the config's own kind of loop.
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1) \
        if cfg.train_cfg.type == 'IterBasedTrainLoop' else dict(
            type='EpochBasedTrainLoop', max_epochs=1)
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h.type != 'ProbeHook']
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter >= 1
    model = runner.model
    assert int(model.dense_loss.queue.ptr) > 0
    assert int(model.key_encoder.steps) == runner.iter


def test_demo_linear_probe_config_holds_the_demo_backbone():
    """The benchmark's frozen ViT loads a demo checkpoint's `backbone.`
    weights with nothing missing or left over."""
    configs = REPO_ROOT / 'configs' / 'densevit'
    demo = Config.fromfile(
        str(configs / 'densevit_vit-tiny-d4-p8_1xb32-demo-coslr-4e_'
            'synthetic-64px.py'))
    probe = Config.fromfile(
        str(configs / 'benchmarks' / 'vit-tiny-d4-p8_linear-1xb64-coslr-10e_'
            'synthetic-64px.py'))
    probe.model.backbone.init_cfg = None
    source = MODELS.build(demo.model).backbone.state_dict()
    target = MODELS.build(probe.model).backbone
    target.load_state_dict(source, strict=True)
    assert target.frozen_stages == target.num_layers == 4
