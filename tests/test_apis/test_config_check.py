import re
from pathlib import Path

import pytest
from mmengine.config import Config

from densevit.apis import adapt_to_device, apply_cli_options, check_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def cfg_with(model, **extra):
    return Config(dict(model=model, **extra))


def test_valid_model_config_passes(tiny_model_cfg):
    check_config(cfg_with(tiny_model_cfg, probe_train_dataloader=dict()))


def test_unknown_type_named_with_path_and_suggestion(tiny_model_cfg):
    tiny_model_cfg['neck']['type'] = 'DenseProjectionNek'
    with pytest.raises(ValueError) as err:
        check_config(cfg_with(tiny_model_cfg))
    message = str(err.value)
    assert "model.neck.type='DenseProjectionNek'" in message
    assert 'DenseProjectionNeck' in message


def test_unknown_argument_named_with_suggestion(tiny_model_cfg):
    tiny_model_cfg['neck']['hid_channel'] = 64
    with pytest.raises(ValueError, match=r'model.neck.hid_channel.*'
                       r'hid_channels'):
        check_config(cfg_with(tiny_model_cfg))


def test_misspelt_top_level_key(tiny_model_cfg):
    with pytest.raises(ValueError, match='train_dataloder.*train_dataloader'):
        check_config(cfg_with(tiny_model_cfg, train_dataloder=dict()))


def test_types_in_lists_are_checked(tiny_model_cfg):
    cfg = cfg_with(tiny_model_cfg,
                   custom_hooks=[dict(type='QueueUpdateHook'),
                                 dict(type='QueueUpdateHoook')])
    with pytest.raises(ValueError, match=r'custom_hooks\[1\]'):
        check_config(cfg)


def test_cli_options_merge(tmp_path):
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper'),
                      auto_scale_lr=dict(base_batch_size=256)))
    apply_cli_options(cfg, 'configs/x/my_cfg.py', amp=True, resume='auto',
                      auto_scale_lr=True,
                      cfg_options={'train_cfg.max_epochs': 3})
    assert cfg.work_dir == './work_dirs/my_cfg'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.auto_scale_lr.enable is True
    assert cfg.train_cfg.max_epochs == 3
    apply_cli_options(cfg, 'x.py', work_dir=str(tmp_path), resume='a.pth')
    assert cfg.work_dir == str(tmp_path) and cfg.load_from == 'a.pth'


def test_auto_scale_lr_needs_base_batch_size():
    with pytest.raises(ValueError, match='base_batch_size'):
        apply_cli_options(Config(dict()), 'x.py', auto_scale_lr=True)


def test_cpu_fallback_for_amp_and_nccl(monkeypatch):
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    cfg = Config(dict(
        optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16',
                           optimizer=dict(type='AdamW', lr=1e-3)),
        env_cfg=dict(dist_cfg=dict(backend='nccl')),
        launcher='pytorch'))
    notes = adapt_to_device(cfg)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert 'dtype' not in cfg.optim_wrapper
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert len(notes) == 2


def test_empty_or_missing_pretrained_checkpoint(tmp_path):
    from mmengine.config import Config as C
    cfg = C.fromfile(
        str(REPO_ROOT / 'configs/densevit/benchmarks/'
            'vit-tiny-d4-p8_linear-1xb64-coslr-10e_synthetic-64px.py'))
    with pytest.raises(ValueError, match='model.backbone.init_cfg.checkpoint'
                       '` is empty. Fix: pass'):
        check_config(cfg)
    check_config(cfg, training=False)  # testing loads its own checkpoint
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'nope.pth')
    with pytest.raises(ValueError, match='no file'):
        check_config(cfg)
    (tmp_path / 'nope.pth').write_bytes(b'')
    check_config(cfg)


def test_missing_pretrained_checkpoint_fix_names_the_timm_converter(
        tmp_path, tiny_model_cfg):
    """A missing file is often timm weights not converted yet: the fix says
    how, with the command of docs/get_started.md."""
    missing = str(tmp_path / 'vit.pth')
    tiny_model_cfg['backbone']['init_cfg'] = dict(type='Pretrained',
                                                  checkpoint=missing)
    with pytest.raises(
            ValueError,
            match=r'`model.backbone.init_cfg.checkpoint`: no file .*Fix: .*'
            r'python tools/model_converters/timm_to_densevit.py SRC '
            + re.escape(missing) + r' --timm-model NAME --config CONFIG'):
        check_config(cfg_with(tiny_model_cfg))


def test_pretrained_checkpoint_in_an_init_cfg_list(tmp_path, tiny_model_cfg):
    """mmengine's init_cfg may be a list: its Pretrained entry is checked as
    a lone one, and named by its index."""
    backbone = tiny_model_cfg['backbone']
    backbone['init_cfg'] = [
        dict(type='TruncNormal', layer='Linear', std=0.02),
        dict(type='Pretrained', checkpoint=str(tmp_path / 'missing.pth')),
    ]
    with pytest.raises(ValueError, match=r'`model.backbone.init_cfg\[1\]'
                       r'.checkpoint`: no file .*missing.pth.*Fix: '):
        check_config(cfg_with(tiny_model_cfg))
    check_config(cfg_with(tiny_model_cfg), training=False)
    backbone['init_cfg'][1]['checkpoint'] = ''
    with pytest.raises(ValueError, match=r'`model.backbone.init_cfg\[1\]'
                       r'.checkpoint` is empty. Fix: pass the pretrained '
                       r'checkpoint, e.g. --cfg-options '
                       r'model.backbone.init_cfg.1.checkpoint='):
        check_config(cfg_with(tiny_model_cfg))
    (tmp_path / 'missing.pth').write_bytes(b'')
    backbone['init_cfg'][1]['checkpoint'] = str(tmp_path / 'missing.pth')
    check_config(cfg_with(tiny_model_cfg))


def test_persistent_workers_dropped_without_workers():
    from densevit.apis import relax_worker_settings
    cfg = Config(dict(
        test_dataloader=dict(num_workers=0, persistent_workers=True),
        probe_corr_dataloader=dict(persistent_workers=True),
        train_dataloader=dict(num_workers=2, persistent_workers=True)))
    notes = relax_worker_settings(cfg)
    assert cfg.test_dataloader.persistent_workers is False
    assert cfg.probe_corr_dataloader.persistent_workers is False
    assert cfg.train_dataloader.persistent_workers is True
    assert len(notes) == 2


def demo_cfg():
    return Config.fromfile(
        str(REPO_ROOT / 'configs/densevit/'
            'densevit_vit-tiny-d4-p8_1xb32-demo-coslr-4e_synthetic-64px.py'))


@pytest.mark.parametrize('option,match', [
    # Passed on through DenseViTBackbone's **kwargs to VisionTransformer.
    (('model.backbone.img_sizee', 64),
     r'`model.backbone.img_sizee` is not an argument of DenseViTBackbone; '
     r'did you mean `img_size`'),
    (('train_dataloader.dataset.num_sample', 8),
     r'`train_dataloader.dataset.num_sample`.*did you mean `num_samples`'),
    (('train_dataloader.batchsize', 8),
     r'`train_dataloader.batchsize` is not a dataloader setting; did you '
     r'mean `batch_size`'),
    (('optim_wrapper.optimizer.weight_decai', 0.1),
     r'`optim_wrapper.optimizer.weight_decai` is not an argument of AdamW; '
     r'did you mean `weight_decay`'),
    (('optim_wrapper.optimizer.lr', 'abc'),
     r"`optim_wrapper.optimizer.lr='abc'` must be a number"),
    (('train_cfg.max_epochs', 0),
     r'`train_cfg.max_epochs=0` must be a positive integer'),
    # mmpretrain ignores unknown arch keys: the default depth would train.
    (('model.backbone.arch.num_layer', 3),
     r"`model.backbone.arch=.*unknown key\(s\) \['num_layer'\] \(did you "
     r"mean 'num_layers'"),
])
def test_cli_option_mistakes_named_with_path(option, match):
    cfg = apply_cli_options(demo_cfg(), 'demo.py',
                            cfg_options=dict([option]))
    with pytest.raises(ValueError, match=match):
        check_config(cfg)


def test_shipped_demo_and_builder_keys_pass():
    cfg = demo_cfg()
    check_config(cfg)
    # mmengine's merge marker, and a hook that stores its **kwargs (the
    # checkpoint's save options): neither is a mistake.
    cfg.merge_from_dict({
        'optim_wrapper.optimizer': dict(_delete_=True, type='SGD', lr=0.1),
        'default_hooks.checkpoint': dict(
            type='CheckpointHook', interval=1, any_save_option=True)
    })
    check_config(cfg)
    # Only training needs a positive length.
    cfg.train_cfg.max_epochs = 0
    check_config(cfg, training=False)


def test_view_size_not_a_multiple_of_the_patch_size():
    cfg = demo_cfg()
    cfg.train_dataloader.dataset.pipeline[0].size = 60
    with pytest.raises(ValueError, match=r'`train_dataloader.dataset.pipeline'
                       r'\[0\].size=60` is not a multiple of the patch size '
                       r'8.*Fix: e.g. size=56'):
        check_config(cfg)
    cfg.train_dataloader.dataset.pipeline[0].update(
        size=64, num_local_crops=2, local_size=20)
    with pytest.raises(ValueError, match=r'pipeline\[0\].local_size=20` is '
                       r'not a multiple of the patch size 8.*Fix: e.g. '
                       r'local_size=16'):
        check_config(cfg)


def test_batch_larger_than_the_dataset(tmp_path, tiny_model_cfg):
    from densevit.apis import build_runner
    cfg = demo_cfg()
    cfg.model = tiny_model_cfg
    cfg.train_dataloader.update(
        batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(num_samples=4, img_size=32)
    cfg.train_dataloader.dataset.pipeline[0].size = 32
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True,
                                convert_to_iter_based=True)]
    cfg.custom_hooks = []
    cfg.work_dir = str(tmp_path)
    # Before: "epoch_length must be a positive integer, but got 0" from the
    # scheduler, once training starts.
    with pytest.raises(ValueError, match=r'train_dataloader.batch_size=8 is '
                       r'larger than the 4 samples.*batch_size=4'):
        build_runner(cfg).train()
