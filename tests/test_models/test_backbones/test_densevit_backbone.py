import copy
import logging

import pytest
import torch

from densevit.engine.utils import CheckpointMismatchError
from densevit.models.backbones import DenseViTBackbone


@pytest.mark.parametrize('arch,dims,heads', [('deit-tiny', 192, 3),
                                             ('deit-small', 384, 6),
                                             ('deit-base', 768, 12),
                                             ('base', 768, 12)])
def test_named_archs_mean_what_mmpretrain_means(arch, dims, heads):
    from mmpretrain.models import VisionTransformer
    backbone = DenseViTBackbone(arch)
    assert backbone.embed_dims == dims
    assert backbone.num_layers == 12
    assert backbone.layers[0].attn.num_heads == heads
    reference = VisionTransformer.arch_zoo[arch]
    assert backbone.embed_dims == reference['embed_dims']
    assert backbone.num_layers == reference['num_layers']


@pytest.mark.parametrize('short,fix', [('tiny', 'deit-tiny'),
                                       ('small', 'deit-small')])
def test_timm_short_names_are_refused_with_the_mmpretrain_name(short, fix):
    # mmpretrain's 'small' is a 768-d, 8-layer net: never silently that.
    with pytest.raises(ValueError, match=f"arch='{fix}'"):
        DenseViTBackbone(short)


@pytest.mark.parametrize('img_size,grid', [(224, 14), (64, 4)])
def test_output_shapes_at_two_sizes(img_size, grid):
    # Depth 1 keeps this fast; width and heads follow the 'tiny' arch.
    backbone = DenseViTBackbone(
        dict(embed_dims=192, num_layers=1, num_heads=3), img_size=224)
    cls, patches = backbone(torch.randn(2, 3, img_size, img_size))
    assert cls.shape == (2, 192)
    assert patches.shape == (2, 192, grid, grid)


def test_patch_grid_matches_token_order():
    backbone = DenseViTBackbone(
        dict(embed_dims=16, num_layers=1, num_heads=2), img_size=64)
    backbone.eval()
    x = torch.randn(1, 3, 64, 48)
    cls, patches = backbone(x)
    raw = super(DenseViTBackbone, backbone).forward(x)[-1]
    assert patches.shape == (1, 16, 4, 3)
    # Row-major: token 1 + r*W + c is grid position (r, c).
    torch.testing.assert_close(patches[0, :, 2, 1], raw[0, 1 + 2 * 3 + 1])
    torch.testing.assert_close(cls[0], raw[0, 0])


def test_feedforward_default_and_full_dict():
    backbone = DenseViTBackbone(
        dict(embed_dims=24, num_layers=2, num_heads=3))
    assert backbone.layers[0].ffn.feedforward_channels == 96
    backbone = DenseViTBackbone(
        dict(embed_dims=24, num_layers=1, num_heads=3,
             feedforward_channels=50))
    assert backbone.layers[0].ffn.feedforward_channels == 50


@pytest.mark.parametrize('arch,error,match', [
    ('huge-ish', ValueError, 'Unknown DenseViTBackbone arch'),
    (dict(embed_dims=32, num_layers=1), ValueError, 'num_heads'),
    (dict(embed_dims=30, num_layers=1, num_heads=4), ValueError, 'divisible'),
    (192, TypeError, 'str or a dict'),
])
def test_bad_arch_raises(arch, error, match):
    with pytest.raises(error, match=match):
        DenseViTBackbone(arch)


def test_bad_input_size_and_fixed_args():
    backbone = DenseViTBackbone(
        dict(embed_dims=16, num_layers=1, num_heads=2), img_size=32)
    with pytest.raises(ValueError, match='multiples of patch_size'):
        backbone(torch.randn(1, 3, 40, 32))
    with pytest.raises(ValueError, match='out_type'):
        DenseViTBackbone('deit-tiny', out_type='cls_token')


def test_unknown_arch_key_refused_with_the_valid_ones():
    # mmpretrain ignores unknown arch keys: num_layer=3 trained 12 layers.
    with pytest.raises(ValueError, match=r"mean 'num_layers' for 'num_layer'.*"
                       r"Valid keys: \['embed_dims', 'num_layers'"):
        DenseViTBackbone(
            dict(embed_dims=16, num_layers=1, num_heads=2, num_layer=3))


@pytest.mark.parametrize('img_size', [60, (64, 60)])
def test_img_size_not_a_multiple_of_patch_size_refused(img_size):
    # Refused when built, not at the first forward of training.
    with pytest.raises(ValueError, match=r'img_size=.*not a multiple of '
                       r"patch_size=8.*img_size=(56|\(64, 56\))"):
        DenseViTBackbone(
            dict(embed_dims=16, num_layers=1, num_heads=2),
            img_size=img_size, patch_size=8)


def test_registers_sit_between_cls_and_patches_without_positions():
    backbone = DenseViTBackbone(
        dict(embed_dims=16, num_layers=1, num_heads=2), img_size=32,
        patch_size=16, num_register_tokens=3)
    backbone.eval()
    assert backbone.reg_token.shape == (1, 3, 16)
    assert backbone.reg_token.std() > 0  # random: equal ones stay equal
    seen = {}
    backbone.layers[0].register_forward_pre_hook(
        lambda module, args: seen.update(tokens=args[0]))
    x = torch.randn(2, 3, 32, 32)
    cls, patches = backbone(x)
    assert cls.shape == (2, 16) and patches.shape == (2, 16, 2, 2)
    tokens = seen['tokens']  # the first layer's input: CLS, 3 registers,
    assert tokens.shape == (2, 1 + 3 + 4, 16)  # 2x2 patches
    torch.testing.assert_close(tokens[:, 1:4],
                               backbone.reg_token.expand(2, -1, -1))
    torch.testing.assert_close(
        tokens[:, 0], (backbone.cls_token + backbone.pos_embed[:, :1])[:, 0]
        .expand(2, -1))
    # The patches come after the registers, in the output too.
    raw = super(DenseViTBackbone, backbone).forward(x)[-1]
    torch.testing.assert_close(patches.flatten(2).transpose(1, 2),
                               raw[:, 4:])


def test_registers_follow_their_module_when_copied():
    # The key encoder is a deep copy: its forward must use its own
    # registers, not the online ones.
    backbone = DenseViTBackbone(
        dict(embed_dims=16, num_layers=1, num_heads=2), img_size=32,
        num_register_tokens=2)
    key = copy.deepcopy(backbone)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        key.reg_token.normal_()
        assert not torch.allclose(key(x)[0], backbone(x)[0])
        key.reg_token.copy_(backbone.reg_token)
        torch.testing.assert_close(key(x)[0], backbone(x)[0])


def test_registers_have_the_stem_depth_and_freeze_with_it():
    backbone = DenseViTBackbone(
        dict(embed_dims=16, num_layers=2, num_heads=2), img_size=32,
        num_register_tokens=1, frozen_stages=1)
    # Layer-wise lr decay: the registers decay like the CLS token.
    assert backbone.get_layer_depth('backbone.reg_token', 'backbone.') == \
        backbone.get_layer_depth('backbone.cls_token', 'backbone.') == (0, 4)
    assert not backbone.reg_token.requires_grad
    assert not backbone.cls_token.requires_grad


@pytest.mark.parametrize('count', [-1, 1.0, True])
def test_register_count_validated(count):
    with pytest.raises(ValueError, match='num_register_tokens` must be an '
                       f'int >= 0.*got {count!r}'):
        DenseViTBackbone(dict(embed_dims=16, num_layers=1, num_heads=2),
                         num_register_tokens=count)


# --- Pretrained init_cfg (strict), frozen stages, layer depths -------------

TINY_ARCH = dict(embed_dims=16, num_layers=2, num_heads=2,
                 feedforward_channels=64)


def saved_backbone(path, prefix='', **kwargs):
    """A random backbone's weights saved as ``{'state_dict': ...}`` (what
    the converters write), under ``prefix``; returns the weights."""
    source = DenseViTBackbone(dict(TINY_ARCH), img_size=32, **kwargs)
    state = {prefix + key: value for key, value in
             source.state_dict().items()}
    torch.save({'state_dict': state}, path)
    return source.state_dict()


def pretrained(path, **init_cfg):
    return dict(type='Pretrained', checkpoint=str(path), **init_cfg)


def test_pretrained_loads_every_weight(tmp_path):
    # At another image size too: the position embeddings are resized.
    weights = saved_backbone(tmp_path / 'b.pth')
    backbone = DenseViTBackbone(dict(TINY_ARCH), img_size=32,
                                init_cfg=pretrained(tmp_path / 'b.pth'))
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, weights[key]), key
    resized = DenseViTBackbone(dict(TINY_ARCH), img_size=64,
                               init_cfg=pretrained(tmp_path / 'b.pth'))
    resized.init_weights()
    assert torch.equal(resized.layers[1].attn.qkv.weight,
                       weights['layers.1.attn.qkv.weight'])
    assert resized.pos_embed.shape == (1, 1 + 16, 16)


def test_stock_pretrained_init_loads_a_mismatching_checkpoint_silently(
        tmp_path):
    """Premise (compat entry 9a): mmengine's Pretrained init loads with
    strict=False, so a checkpoint of another depth leaves weights random
    without an error."""
    from mmengine.model import BaseModule
    from mmpretrain.models import VisionTransformer
    saved_backbone(tmp_path / 'b.pth')
    deeper = VisionTransformer(
        dict(TINY_ARCH, num_layers=3), img_size=32,
        init_cfg=pretrained(tmp_path / 'b.pth'))
    BaseModule.init_weights(deeper)  # mmengine's, no error
    assert deeper.is_init


def test_pretrained_of_another_arch_lists_the_weights(tmp_path):
    saved_backbone(tmp_path / 'b.pth')
    deeper = DenseViTBackbone(dict(TINY_ARCH, num_layers=3), img_size=32,
                              init_cfg=pretrained(tmp_path / 'b.pth'))
    before = deeper.layers[0].attn.qkv.weight.clone()
    with pytest.raises(CheckpointMismatchError) as error:
        deeper.init_weights()
    message = str(error.value)
    assert str(tmp_path / 'b.pth') in message
    assert 'num_layers=3' in message
    assert 'missing in the checkpoint (12)' in message
    assert 'layers.2.attn.qkv.weight' in message
    assert 'strict=False' in message and 'timm_to_densevit.py' in message
    # Refused before anything was loaded.
    assert torch.equal(deeper.layers[0].attn.qkv.weight, before)

    wider = DenseViTBackbone(dict(TINY_ARCH, embed_dims=32), img_size=32,
                             init_cfg=pretrained(tmp_path / 'b.pth'))
    with pytest.raises(CheckpointMismatchError,
                       match=r'shape mismatch.*\n  cls_token: checkpoint '
                       r'\[1, 1, 16\], model \[1, 1, 32\]'):
        wider.init_weights()


def test_pretrained_says_what_a_misfit_file_is(tmp_path):
    # A whole DenseViT checkpoint without the prefix, and a timm file.
    saved_backbone(tmp_path / 'whole.pth', prefix='backbone.')
    backbone = DenseViTBackbone(dict(TINY_ARCH), img_size=32,
                                init_cfg=pretrained(tmp_path / 'whole.pth'))
    with pytest.raises(CheckpointMismatchError,
                       match="add prefix='backbone.' to the init_cfg"):
        backbone.init_weights()
    torch.save({'blocks.0.attn.qkv.weight': torch.zeros(48, 16)},
               tmp_path / 'timm.pth')
    backbone = DenseViTBackbone(dict(TINY_ARCH), img_size=32,
                                init_cfg=pretrained(tmp_path / 'timm.pth'))
    with pytest.raises(CheckpointMismatchError,
                       match="timm's layout.*timm_to_densevit.py"):
        backbone.init_weights()


def test_pretrained_prefix_selects_the_backbone(tmp_path):
    weights = saved_backbone(tmp_path / 'whole.pth', prefix='backbone.')
    backbone = DenseViTBackbone(
        dict(TINY_ARCH), img_size=32,
        init_cfg=pretrained(tmp_path / 'whole.pth', prefix='backbone'))
    backbone.init_weights()
    assert torch.equal(backbone.cls_token, weights['cls_token'])
    wrong = DenseViTBackbone(
        dict(TINY_ARCH), img_size=32,
        init_cfg=pretrained(tmp_path / 'whole.pth', prefix='encoder.'))
    with pytest.raises(CheckpointMismatchError,
                       match=r'no `encoder\.\*` weights'):
        wrong.init_weights()


def test_pretrained_strict_false_loads_what_fits_and_logs_the_rest(
        tmp_path):
    weights = saved_backbone(tmp_path / 'b.pth')
    deeper = DenseViTBackbone(
        dict(TINY_ARCH, num_layers=3, feedforward_channels=32), img_size=32,
        init_cfg=pretrained(tmp_path / 'b.pth', strict=False))
    kept = deeper.layers[2].attn.qkv.weight.clone()
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        deeper.init_weights()
    finally:
        logger.removeHandler(handler)
    logged = '\n'.join(messages)
    assert torch.equal(deeper.layers[1].attn.qkv.weight,
                       weights['layers.1.attn.qkv.weight'])
    assert torch.equal(deeper.layers[2].attn.qkv.weight, kept)
    # Other shapes (the MLP) are skipped, not an error.
    assert deeper.layers[0].ffn.layers[0][0].weight.shape == (32, 16)
    assert 'layers.0.ffn.layers.0.0.weight: checkpoint [64, 16]' in \
        logged
    assert 'Partial load of' in logged
    assert 'layers.2.attn.qkv.weight' in logged


@pytest.mark.parametrize('init_cfg,match', [
    (dict(type='Pretrained', checkpoint='x.pth', strcit=False),
     r"unknown key\(s\) \['strcit'\]"),
    (dict(type='Pretrained'), 'has no `checkpoint`'),
    (dict(type='Pretrained', checkpoint='x.pth', strict='no'),
     '`strict` must be True'),
])
def test_pretrained_init_cfg_checked_at_construction(init_cfg, match):
    with pytest.raises(ValueError, match=match):
        DenseViTBackbone(dict(TINY_ARCH), init_cfg=init_cfg)


def test_stock_vit_unfreezes_frozen_stages_in_train_mode():
    """Premise (compat entry 9b): mmpretrain's VisionTransformer puts its
    frozen stages in eval mode only at construction."""
    from mmpretrain.models import VisionTransformer
    vit = VisionTransformer(dict(TINY_ARCH), img_size=32, frozen_stages=1)
    assert not vit.layers[0].training
    vit.train()
    assert vit.layers[0].training


def test_frozen_stages_stay_frozen_in_train_mode():
    backbone = DenseViTBackbone(dict(TINY_ARCH), img_size=32,
                                frozen_stages=1, drop_path_rate=0.5)
    backbone.train()
    assert not backbone.layers[0].training and not \
        backbone.patch_embed.training
    assert backbone.layers[1].training
    frozen = [name for name, param in backbone.named_parameters()
              if not param.requires_grad]
    assert frozen == ['cls_token', 'pos_embed', 'patch_embed.projection.'
                      'weight', 'patch_embed.projection.bias'] + [
                          name for name, _ in backbone.named_parameters()
                          if name.startswith('layers.0.')]
    # No drop path in the frozen layer: its output does not vary.
    tokens = torch.randn(2, 5, 16)
    torch.testing.assert_close(backbone.layers[0](tokens),
                               backbone.layers[0](tokens))
    backbone.eval()
    assert not backbone.layers[1].training


def test_pre_norm_has_the_stem_depth():
    backbone = DenseViTBackbone(dict(TINY_ARCH), img_size=32, pre_norm=True)
    for name in ('pre_norm.weight', 'patch_embed.projection.weight',
                 'cls_token'):
        assert backbone.get_layer_depth('backbone.' + name,
                                        'backbone.') == (0, 4), name
    assert backbone.get_layer_depth('backbone.layers.1.ln1.weight',
                                    'backbone.') == (2, 4)
    assert backbone.get_layer_depth('backbone.ln1.weight',
                                    'backbone.') == (3, 4)
