import copy

import pytest
import torch

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
