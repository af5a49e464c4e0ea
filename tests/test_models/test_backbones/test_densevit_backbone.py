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
