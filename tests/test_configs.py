"""Every shipped config: checks, and builds its model, datasets and hooks."""
import copy
import inspect
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from densevit.apis import check_config, densevit_to_timm, timm_to_densevit
from densevit.apis.model_conversion import build_on_meta, save_weights_file
from densevit.engine.utils import (CheckpointMismatchError,
                                   pretrained_init_cfgs)
from densevit.models.backbones.densevit_backbone import (DenseViTBackbone,
                                                         resolve_arch)
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


def is_pretrained_backbone(cfg: Config) -> bool:
    return bool(pretrained_init_cfgs(
        cfg.model.get('backbone', {}).get('init_cfg')))


def converted_timm_checkpoint(backbone_cfg: dict, path: Path) -> dict:
    """What a user's converted checkpoint for ``backbone_cfg`` is: a timm
    ViT of that shape with random weights, through ``timm_to_densevit``,
    saved at ``path``. Returns the converted weights."""
    vision_transformer = pytest.importorskip('timm.models.vision_transformer')
    backbone_cfg = {k: v for k, v in backbone_cfg.items() if k != 'init_cfg'}
    num_heads = resolve_arch(backbone_cfg['arch'])['num_heads']
    # The timm model of that shape (the export's arguments).
    timm_kwargs = densevit_to_timm(
        build_on_meta(MODELS.build, backbone_cfg).state_dict(),
        num_heads).config
    torch.manual_seed(0)
    timm_model = vision_transformer.VisionTransformer(**timm_kwargs)
    conversion = timm_to_densevit(timm_model.state_dict(), num_heads)
    save_weights_file(conversion.state_dict, str(path))
    return conversion.state_dict


def test_every_experiment_has_a_config():
    names = {p.name for p in CONFIGS}
    for arch in ('tiny', 'small', 'base'):
        assert any(f'vit-{arch}-p16' in n and 'in1k' in n for n in names)
    assert any('joint' in n for n in names)
    assert any('demo' in n for n in names)
    assert any(p.parent.name == 'benchmarks' for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_loop_log_and_checkpoints_count_the_same_unit(path):
    # An iteration loop logged by epoch prints `Epoch(train) [1][320/40]`.
    cfg = Config.fromfile(str(path))
    loop = cfg.get('train_cfg', {}).get('type', 'EpochBasedTrainLoop')
    by_epoch = 'Iter' not in loop
    assert cfg.log_processor.get('by_epoch', True) == by_epoch
    checkpoint = cfg.default_hooks.get('checkpoint', {})
    assert checkpoint.get('by_epoch', True) == by_epoch


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_builds(path, tmp_path):
    cfg = Config.fromfile(str(path))
    check_config(cfg, training=False)
    assert cfg.default_scope == 'densevit'
    data_root = str(fake_data_root(tmp_path / 'data'))

    model_cfg = copy.deepcopy(cfg.model)
    if 'init_cfg' in model_cfg.get('backbone', {}):
        model_cfg.backbone.init_cfg = None  # no pretrained file in a test
    # On the meta device: the constructors' checks run without the memory
    # and initialisation time of ViT-L/H weights (the FSDP configs).
    model = build_on_meta(MODELS.build, model_cfg)
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
    pretrained = None
    if is_pretrained_backbone(cfg):  # a converted timm ViT of the new size
        cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'timm.pth')
        pretrained = converted_timm_checkpoint(cfg.model.backbone,
                                               tmp_path / 'timm.pth')
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter >= 1
    model = runner.model
    assert int(model.dense_loss.queue.ptr) > 0
    assert int(model.key_encoder.steps) == runner.iter
    if pretrained is not None:
        # Both encoders started from the file; one warm-up step moves a
        # weight by about the lr (< 1e-4), a random start is 1e-2 away.
        for encoder in (model.backbone, model.key_backbone):
            weight = encoder.patch_embed.projection.weight
            torch.testing.assert_close(
                weight, pretrained['patch_embed.projection.weight'],
                rtol=0, atol=1e-4)


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


# --- Dense post-pretraining from a converted timm ViT -----------------------

#: Each config with a Pretrained backbone and the timm model its checkpoint
#: is converted from.
POST_PRETRAINING = {
    'densevit_vit-small-p16-timm-init_8xb64-amp-coslr-10e_in1k.py':
    'vit_small_patch16_224',
    'densevit_vit-tiny-p16-timm-init_1xb32-demo-coslr-400i_folder-128px.py':
    'vit_tiny_patch16_224',
}
CPU_POST_PRETRAINING = (
    REPO_ROOT / 'configs' / 'densevit' /
    'densevit_vit-tiny-p16-timm-init_1xb32-demo-coslr-400i_folder-128px.py')


def test_every_pretrained_config_names_its_timm_model():
    pretrained = {p.name for p in TRAINING_CONFIGS
                  if is_pretrained_backbone(Config.fromfile(str(p)))}
    assert pretrained == set(POST_PRETRAINING)


@pytest.mark.parametrize('name', POST_PRETRAINING)
def test_post_pretraining_backbone_is_the_converted_timm_model(name):
    """The backbone settings are the converter's for that timm model (img
    size aside: the crop size), and the inputs are normalised as timm's
    weights expect."""
    timm = pytest.importorskip('timm')
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'densevit' / name))
    timm_model = build_on_meta(timm.create_model, POST_PRETRAINING[name],
                               pretrained=False)
    expected = timm_to_densevit(timm_model.state_dict()).config
    backbone = cfg.model.backbone.to_dict()
    init_cfg = backbone.pop('init_cfg')
    assert init_cfg['checkpoint'].startswith('checkpoints/')
    assert backbone.pop('drop_path_rate') == 0.0
    crop = cfg.train_dataloader.dataset.pipeline[1].size
    assert backbone.pop('img_size') in (expected.pop('img_size'), crop)
    # Settings the config leaves out are the backbone's defaults.
    defaults = {name: param.default for cls in DenseViTBackbone.__mro__[1::-1]
                for name, param in inspect.signature(
                    cls.__init__).parameters.items()}
    assert set(backbone) <= set(expected)
    assert {key: backbone[key] if key in backbone else defaults[key]
            for key in expected} == expected
    preprocessor = cfg.model.data_preprocessor
    for key in ('mean', 'std'):
        assert preprocessor[key] == pytest.approx(
            [255 * v for v in timm_model.pretrained_cfg[key]])
    assert cfg.model.dense_warmup_iters == 0


def cpu_post_pretraining_model(tmp_path, **backbone):
    """The CPU post-pretraining config's model, its backbone shrunk to two
    layers and changed by ``backbone``, with a converted timm checkpoint."""
    cfg = Config.fromfile(str(CPU_POST_PRETRAINING))
    cfg.model.backbone.arch.num_layers = 2
    cfg.model.backbone.update(backbone)
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'timm.pth')
    weights = converted_timm_checkpoint(cfg.model.backbone,
                                        tmp_path / 'timm.pth')
    return cfg, weights


def test_post_pretraining_starts_both_encoders_from_the_checkpoint(tmp_path):
    """The CPU config's model (the real ViT-Ti/16) from a converted
    random-weight timm ViT-Ti: the online backbone holds the file's weights
    (positions resized to the 128-px grid) and the key encoder equals it."""
    timm = pytest.importorskip('timm')
    from mmpretrain.models.utils import resize_pos_embed
    cfg = Config.fromfile(str(CPU_POST_PRETRAINING))
    torch.manual_seed(0)
    timm_model = timm.create_model('vit_tiny_patch16_224', pretrained=False)
    weights = timm_to_densevit(timm_model.state_dict()).state_dict
    save_weights_file(weights, str(tmp_path / 'vit-tiny.pth'))
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'vit-tiny.pth')
    model = MODELS.build(cfg.model)
    model.init_weights()
    online = model.backbone.state_dict()
    assert set(online) == set(weights)
    for key, value in weights.items():
        if key != 'pos_embed':
            assert torch.equal(online[key], value), key
    torch.testing.assert_close(
        online['pos_embed'],
        resize_pos_embed(weights['pos_embed'], (14, 14), (8, 8), 'bicubic',
                         1))
    for key, value in model.key_encoder.module.state_dict().items():
        assert torch.equal(value, model._online_encoder().state_dict()[key])


def test_post_pretraining_refuses_a_checkpoint_of_another_model(tmp_path):
    """A converted ViT-S for the ViT-Ti config, or an unconverted timm file:
    the load stops naming the weights, before training."""
    timm = pytest.importorskip('timm')
    cfg = Config.fromfile(str(CPU_POST_PRETRAINING))
    small = timm.create_model('vit_small_patch16_224', pretrained=False,
                              depth=1)
    save_weights_file(timm_to_densevit(small.state_dict()).state_dict,
                      str(tmp_path / 'vit-small.pth'))
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'vit-small.pth')
    with pytest.raises(CheckpointMismatchError,
                       match=r'(?s)vit-small\.pth does not fit.*'
                       r'cls_token: checkpoint \[1, 1, 384\], model '
                       r'\[1, 1, 192\].*missing in the checkpoint \(132\)'):
        MODELS.build(cfg.model).init_weights()
    save_weights_file(small.state_dict(), str(tmp_path / 'raw.pth'))
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'raw.pth')
    with pytest.raises(CheckpointMismatchError,
                       match="timm's layout.*timm_to_densevit.py"):
        MODELS.build(cfg.model).init_weights()


def test_before_checkpoint_holds_the_converted_weights(tmp_path):
    """The docs' baseline: init_checkpoint.py on a post-pretraining config
    saves the converted timm weights in both encoders, a checkpoint
    tools/test.py scores like a trained one."""
    from test_tools.test_checkpoint_tools import load_tool
    cfg, weights = cpu_post_pretraining_model(tmp_path)
    cfg.dump(str(tmp_path / 'post_pretrain.py'))
    load_tool('tools/analysis_tools/init_checkpoint.py').main(
        [str(tmp_path / 'post_pretrain.py'), str(tmp_path / 'before.pth')])
    state = torch.load(tmp_path / 'before.pth',
                       weights_only=True)['state_dict']
    for prefix in ('backbone.', 'key_encoder.module.backbone.'):
        for key, value in weights.items():
            assert torch.equal(state[prefix + key], value), prefix + key


def test_post_pretraining_benchmark_fits_its_training_config():
    """The dense-probe benchmark of the timm-initialised ViT-S normalises as
    its training config and loads its checkpoints strictly."""
    from densevit.engine.utils import compare_state_dict
    configs = REPO_ROOT / 'configs' / 'densevit'
    train = Config.fromfile(str(configs / next(iter(POST_PRETRAINING))))
    bench = Config.fromfile(str(
        configs / 'benchmarks' /
        'dense-probe_vit-small-p16-timm-init_voc-224px.py'))
    assert bench.model.data_preprocessor == train.model.data_preprocessor
    trained = build_on_meta(MODELS.build, train.model).state_dict()
    assert not compare_state_dict(
        build_on_meta(MODELS.build, bench.model), trained)


def test_layer_decay_option_gives_each_depth_its_lr(tmp_path):
    """The schedule's documented layer-wise decay on DenseViT's names:
    backbone.layers.k gets lr * rate**(L - k), the stem rate**(L + 1), the
    final norm and the neck the full lr; the key encoder (no gradients) and
    frozen stages are left out of the optimiser."""
    from mmengine.optim import build_optim_wrapper
    cfg, _ = cpu_post_pretraining_model(tmp_path)
    cfg.merge_from_dict(dict(optim_wrapper=dict(
        constructor='LearningRateDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.5))))
    check_config(cfg)
    model = MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope('densevit'):
        groups = build_optim_wrapper(
            model, cfg.optim_wrapper).optimizer.param_groups
    lr = {g['param_name']: g['lr'] / cfg.optim_wrapper.optimizer.lr
          for g in groups}
    assert lr['backbone.cls_token'] == lr['backbone.pos_embed'] == \
        lr['backbone.patch_embed.projection.weight'] == 0.5**3
    assert lr['backbone.layers.0.attn.qkv.weight'] == 0.5**2
    assert lr['backbone.layers.1.ffn.layers.1.bias'] == 0.5
    assert lr['backbone.ln1.weight'] == lr['neck.dense_mlp.0.weight'] == 1
    trainable = {name for name, param in model.named_parameters()
                 if param.requires_grad}
    assert set(lr) == trainable
    assert not any(name.startswith('key_encoder') for name in lr)
    # Weight decay as the schedule sets it: none on norms, biases, tokens.
    decay = {g['param_name']: g['weight_decay'] for g in groups}
    assert decay['backbone.layers.0.attn.qkv.weight'] == 0.05
    assert decay['backbone.layers.0.attn.qkv.bias'] == \
        decay['backbone.cls_token'] == decay['backbone.ln1.weight'] == 0

    model = MODELS.build(dict(cfg.model, backbone=dict(
        cfg.model.backbone, frozen_stages=1)))
    with DefaultScope.overwrite_default_scope('densevit'):
        groups = build_optim_wrapper(
            model, cfg.optim_wrapper).optimizer.param_groups
    names = {g['param_name'] for g in groups}
    assert 'backbone.layers.1.attn.qkv.weight' in names
    assert not any(n.startswith(('backbone.layers.0.', 'backbone.cls_token',
                                 'backbone.patch_embed')) for n in names)


def test_frozen_blocks_option_trains_and_stays_frozen(tmp_path):
    """One Runner step of the CPU config with frozen_stages=1 and layer
    decay: the stem and block 0 keep the checkpoint's weights in both
    encoders (the key encoder's average of equal weights is exact), block
    1 trains."""
    from densevit.apis import build_runner
    cfg, weights = cpu_post_pretraining_model(tmp_path, frozen_stages=1)
    cfg.merge_from_dict(dict(optim_wrapper=dict(
        constructor='LearningRateDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.75))))
    cfg.model.update(dense_loss=dict(queue_len=8), global_loss=dict(
        queue_len=8))
    cfg.model.neck.hid_channels = 32
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    point_at(loader.dataset, str(fake_data_root(tmp_path / 'data')))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.optim_wrapper.optimizer.lr = 1.0  # a step that shows
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    runner.train()
    model = runner.model
    assert not model.backbone.layers[0].training
    online = model.backbone.state_dict()
    key = model.key_backbone.state_dict()
    frozen = [k for k in weights if k.startswith(
        ('cls_token', 'patch_embed.', 'layers.0.'))]
    for name in frozen:
        assert torch.equal(online[name], weights[name]), name
        assert torch.equal(key[name], weights[name]), name
    assert not torch.equal(online['layers.1.attn.qkv.weight'],
                           weights['layers.1.attn.qkv.weight'])


def test_post_pretraining_schedule_warms_up_and_ends_at_a_hundredth(
        tmp_path):
    """A 500-step warm-up times a cosine that ends at 1% of each group's
    start (eta_min_ratio), so the ratios of a layer-wise decay remain."""
    import math
    import uuid

    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from test_schedules import LinearModel

    class RecordLRs(Hook):

        def __init__(self):
            self.lrs = []

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.lrs.append([group['lr'] for group in
                             runner.optim_wrapper.optimizer.param_groups])

    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / '_base_' / 'schedules'
                              / 'adamw_post-pretrain-coslr-10e.py'))
    cfg.optim_wrapper.paramwise_cfg = dict(
        custom_keys={'linear.bias': dict(lr_mult=0.1)})
    record = RecordLRs()
    runner = Runner(
        model=LinearModel(), work_dir=str(tmp_path),
        experiment_name=f'schedule_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=[dict(inputs=torch.ones(2))] * 60,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1, collate_fn=dict(type='default_collate')),
        optim_wrapper=cfg.optim_wrapper, param_scheduler=cfg.param_scheduler,
        train_cfg=cfg.train_cfg, custom_hooks=[record],
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='densevit')
    runner.train()
    base = cfg.optim_wrapper.optimizer.lr
    weight_lrs = [lrs[0] for lrs in record.lrs]
    assert len(weight_lrs) == 600 and base == 1.5e-5
    assert weight_lrs[0] == pytest.approx(base * 1e-2)
    # The product of the linear warm-up and the cosine over all 600 steps
    # (mmengine multiplies schedulers that run together; its recursive
    # updates of a cosine with a floor differ from the closed form by up to 3.2%).
    for step, lr in enumerate(weight_lrs):
        warmup = 1e-2 + (1 - 1e-2) * min(step, 500) / 500
        cosine = 1e-2 + (1 - 1e-2) * (1 + math.cos(math.pi * step / 600)) / 2
        assert lr == pytest.approx(base * warmup * cosine, rel=0.04), step
    assert weight_lrs[-1] == pytest.approx(base * 1e-2, rel=1e-3)
    for lrs in record.lrs:  # the bias group keeps its tenth throughout
        assert lrs[1] == pytest.approx(lrs[0] * 0.1)
