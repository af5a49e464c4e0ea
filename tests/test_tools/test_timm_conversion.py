"""timm <-> DenseViT conversion: strict loads, identical outputs, errors.

timm models are built with random weights (``pretrained=False``); the
overrides (depth, img_size) keep each model's key layout.
"""
import copy

import pytest
import torch
from mmengine.config import Config

from densevit.apis import ConversionError, densevit_to_timm, timm_to_densevit
from densevit.registry import MODELS

from test_checkpoint_tools import load_tool

timm = pytest.importorskip('timm')
safetensors_torch = pytest.importorskip('safetensors.torch')

TIMM_TO_DENSEVIT = 'tools/model_converters/timm_to_densevit.py'
DENSEVIT_TO_TIMM = 'tools/model_converters/densevit_to_timm.py'


def random_timm_vit(name, **overrides):
    """A timm ViT in eval mode whose layer scales and prefix tokens are
    random too (timm starts them near 0 or 1e-5, where a mix-up of them
    would not show in the outputs)."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **overrides)
    with torch.no_grad():
        for key, param in model.named_parameters():
            if key.endswith(('gamma', 'cls_token', 'reg_token')):
                param.normal_()
    return model.eval()


def densevit_backbone(config, state_dict):
    """The backbone of ``config`` with ``state_dict`` loaded strictly."""
    backbone = MODELS.build(config)
    result = backbone.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    backbone.eval()
    return backbone


def timm_outputs(model, images):
    """timm's final tokens as DenseViT returns them: (CLS, patch grid)."""
    with torch.no_grad():
        tokens = model.forward_features(images)
    grid = (images.shape[-2] // model.patch_embed.patch_size[0],
            images.shape[-1] // model.patch_embed.patch_size[1])
    patches = tokens[:, model.num_prefix_tokens:]
    return tokens[:, 0], patches.transpose(1, 2).reshape(
        images.shape[0], -1, *grid)


def assert_same_outputs(backbone, model, images, atol=1e-5):
    with torch.no_grad():
        cls, patches = backbone(images)
    timm_cls, timm_patches = timm_outputs(model, images)
    torch.testing.assert_close(cls, timm_cls, rtol=0, atol=atol)
    torch.testing.assert_close(patches, timm_patches, rtol=0, atol=atol)


# (timm model, overrides): the standard ViTs (patch 16, heads from the
# width), DINOv2 (patch 14, LayerScale), DINOv2 with registers (no CLS
# position), registers with positions, DeiT III style (no CLS position
# without registers), CLIP style (pre-norm, no patch bias) with an
# average-pooled head (fc_norm, no final norm), and a non-square grid
# without qkv bias.
LAYOUTS = {
    'vit-ti16': ('vit_tiny_patch16_224', dict(depth=2, img_size=32)),
    'vit-s16': ('vit_small_patch16_224', dict(depth=1, img_size=32)),
    'vit-b16-384': ('vit_base_patch16_384', dict(depth=1, img_size=48)),
    'dinov2-s14': ('vit_small_patch14_dinov2', dict(depth=2, img_size=28)),
    'dinov2-s14-reg4': ('vit_small_patch14_reg4_dinov2',
                        dict(depth=2, img_size=56)),
    'reg4-with-positions': ('vit_small_patch14_reg4_dinov2',
                            dict(depth=1, img_size=42,
                                 no_embed_class=False)),
    'no-cls-position': ('vit_tiny_patch16_224',
                        dict(depth=1, img_size=32, no_embed_class=True)),
    'pre-norm-avg-pool': ('vit_tiny_patch16_224',
                          dict(depth=1, img_size=32, pre_norm=True,
                               global_pool='avg')),
    'non-square-no-qkv-bias': ('vit_tiny_patch16_224',
                               dict(depth=1, img_size=(32, 48),
                                    qkv_bias=False)),
}


@pytest.mark.parametrize('layout', LAYOUTS)
def test_timm_to_densevit_and_back_strict_with_identical_outputs(layout):
    name, overrides = LAYOUTS[layout]
    model = random_timm_vit(name, **overrides)
    img_size = overrides['img_size']
    conversion = timm_to_densevit(
        model.state_dict(),
        img_size=img_size if isinstance(img_size, tuple) else None)
    config = conversion.config
    assert config['arch']['num_heads'] == model.blocks[0].attn.num_heads
    assert config['patch_size'] == model.patch_embed.patch_size[0]
    assert config['num_register_tokens'] == model.num_reg_tokens
    assert (config['layer_scale_init_value'] > 0) == name.endswith('dinov2')
    assert set(conversion.dropped) == {
        key for key in model.state_dict()
        if key.startswith(('head.', 'fc_norm.'))}

    backbone = densevit_backbone(config, conversion.state_dict)
    images = torch.randn(2, 3, *backbone.img_size)
    assert_same_outputs(backbone, model, images)

    # Back, from a whole-model checkpoint, in the layout of the source.
    checkpoint = {'state_dict': {f'backbone.{key}': value for key, value
                                 in backbone.state_dict().items()}}
    checkpoint['state_dict']['neck.fc.weight'] = torch.zeros(1)
    back = densevit_to_timm(checkpoint, config['arch']['num_heads'],
                            config['img_size'], model.no_embed_class)
    exported = timm.create_model(name, pretrained=False, **back.config)
    result = exported.load_state_dict(back.state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    exported.eval()
    with torch.no_grad():
        torch.testing.assert_close(exported.forward_features(images),
                                   model.forward_features(images),
                                   rtol=0, atol=1e-5)


def test_original_dinov2_release_layout():
    # DINOv2's own files: `register_tokens`, a `mask_token`, and a position
    # for the CLS token but none for the registers.
    model = random_timm_vit('vit_small_patch14_reg4_dinov2', depth=1,
                            img_size=56)
    state = model.state_dict()
    cls_position = torch.randn(1, 1, 384)
    release = dict(state)
    release['register_tokens'] = release.pop('reg_token')
    release['mask_token'] = torch.zeros(1, 384)
    release['cls_token'] = state['cls_token'] - cls_position
    release['pos_embed'] = torch.cat([cls_position, state['pos_embed']], 1)
    conversion = timm_to_densevit(release)
    assert conversion.dropped == ['mask_token']
    backbone = densevit_backbone(conversion.config, conversion.state_dict)
    assert_same_outputs(backbone, model, torch.randn(2, 3, 56, 56))


def test_timm_vit_trains_one_step_in_densevit_and_goes_back(
        tmp_path, tiny_model_cfg):
    """timm (safetensors) -> DenseViT through the backbone's Pretrained
    init -> one DenseViT.loss + optimizer step -> timm, strict both ways."""
    name = 'vit_small_patch14_reg4_dinov2'
    model = random_timm_vit(name, depth=2, img_size=28)
    src = tmp_path / 'timm.safetensors'
    safetensors_torch.save_file(model.state_dict(), str(src))
    converted = tmp_path / 'densevit_backbone.pth'
    conversion = load_tool(TIMM_TO_DENSEVIT).main([str(src), str(converted)])

    cfg = tiny_model_cfg
    cfg['backbone'] = dict(conversion.config, init_cfg=dict(
        type='Pretrained', checkpoint=str(converted)))
    del cfg['neck']['in_channels']  # from the backbone
    config_file = tmp_path / 'post_pretrain.py'
    Config(dict(model=cfg)).dump(str(config_file))
    densevit = MODELS.build(cfg)
    densevit.init_weights()
    images = torch.randn(2, 3, 28, 28)
    densevit.eval()
    assert_same_outputs(densevit.backbone, model, images)
    online = densevit.backbone.state_dict()
    for key, value in densevit.key_backbone.state_dict().items():
        torch.testing.assert_close(value, online[key], rtol=0, atol=0)

    densevit.train()
    optimizer = torch.optim.SGD(densevit.parameters(), lr=0.1)
    losses = densevit.loss([torch.randn(4, 3, 28, 28) for _ in range(2)])
    sum(value for key, value in losses.items() if 'loss' in key).backward()
    optimizer.step()
    densevit.momentum_update(1)
    checkpoint = tmp_path / 'iter_1.pth'
    torch.save({'state_dict': densevit.state_dict()}, checkpoint)

    exported = tmp_path / 'timm_after.safetensors'
    back = load_tool(DENSEVIT_TO_TIMM).main(
        [str(checkpoint), str(exported), '--config', str(config_file)])
    timm_after = timm.create_model(name, pretrained=False, **back.config)
    result = timm_after.load_state_dict(
        safetensors_torch.load_file(str(exported)), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    timm_after.eval()
    densevit.eval()
    assert_same_outputs(densevit.backbone, timm_after, images)
    # The step changed the weights, registers included.
    assert not torch.allclose(timm_outputs(timm_after, images)[0],
                              timm_outputs(model, images)[0])
    assert not torch.equal(timm_after.reg_token, model.reg_token)


def test_position_embeddings_at_another_size_differ_within_bound():
    """Both sides resize the patch positions bicubically and keep the
    prefix positions: DenseViT (mmpretrain's ``resize_pos_embed``) with
    ``F.interpolate(bicubic, align_corners=False)`` in every forward, timm
    (``resample_abs_pos_embed``, ``dynamic_img_size=True`` or at load) the
    same with ``antialias=True``, which changes the kernel. Random weights
    (white-noise position embeddings) are the worst case; the bounds are
    the ones docs/get_started.md states."""
    from mmpretrain.models.utils import resize_pos_embed
    from timm.layers import resample_abs_pos_embed
    model = random_timm_vit('vit_tiny_patch16_224', depth=2, img_size=64,
                            dynamic_img_size=True)
    conversion = timm_to_densevit(model.state_dict())
    backbone = densevit_backbone(conversion.config, conversion.state_dict)
    patch_positions = conversion.state_dict['pos_embed'][:, 1:]
    # (size, bound on the position difference in units of their std,
    #  bound on the output difference): 2x up, 2x down from 64 px.
    for size, position_bound, output_bound in ((128, 0.35, 0.02),
                                               (32, 1.2, 0.05)):
        grid = (size // 16, size // 16)
        ours = resize_pos_embed(patch_positions, (4, 4), grid, 'bicubic', 0)
        theirs = resample_abs_pos_embed(patch_positions, grid,
                                        num_prefix_tokens=0)
        difference = (ours - theirs).abs().max() / patch_positions.std()
        assert 0.01 < difference < position_bound
        images = torch.randn(4, 3, size, size)
        with torch.no_grad():
            cls, patches = backbone(images)
        timm_cls, timm_patches = timm_outputs(model, images)
        assert timm_patches.std() > 0.5  # the bound is against std ~1
        for ours_out, theirs_out in ((cls, timm_cls),
                                     (patches, timm_patches)):
            assert (ours_out - theirs_out).abs().max() < output_bound


def test_wrong_timm_model_lists_mismatched_keys_and_shapes(tmp_path):
    src = tmp_path / 'vit_small.pth'
    torch.save(random_timm_vit('vit_small_patch16_224', depth=1,
                               img_size=32).state_dict(), src)
    dst = tmp_path / 'out.pth'
    # The tool prints the error without a traceback.
    with pytest.raises(SystemExit) as error:
        load_tool(TIMM_TO_DENSEVIT).main(
            [str(src), str(dst), '--timm-model', 'vit_tiny_patch16_224'])
    message = str(error.value)
    assert message.startswith(
        f'CheckpointMismatchError: {src} is not a vit_tiny_patch16_224:')
    assert ('blocks.0.attn.qkv.weight: checkpoint [1152, 384], model '
            '[576, 192]') in message
    # Depth 1 of 12: 11 blocks of 12 weights missing.
    assert 'missing in the checkpoint (132):\n  blocks.1.norm1.weight' \
        in message
    assert not dst.exists()


def test_config_of_another_arch_lists_mismatched_keys_and_shapes(
        tmp_path, tiny_model_cfg):
    # The tiny config's backbone is 32 wide, depth 1: not a ViT-Ti.
    config = tmp_path / 'tiny.py'
    Config(dict(model=tiny_model_cfg)).dump(str(config))
    src = tmp_path / 'vit_tiny.pth'
    torch.save(random_timm_vit('vit_tiny_patch16_224', depth=2,
                               img_size=32).state_dict(), src)
    dst = tmp_path / 'out.pth'
    with pytest.raises(SystemExit,
                       match=r'(?s)^CheckpointMismatchError: .*'
                       r'would not load into model\.backbone of '
                       r'.*layers\.0\.attn\.qkv\.weight: checkpoint \[576, '
                       r'192\], model \[96, 32\].*not in the model.*'
                       r'layers\.1\.'):
        load_tool(TIMM_TO_DENSEVIT).main(
            [str(src), str(dst), '--config', str(config)])
    assert not dst.exists()

    # The other way: a ViT-Ti backbone is not a checkpoint of that config.
    converted = tmp_path / 'converted.pth'
    load_tool(TIMM_TO_DENSEVIT).main([str(src), str(converted)])
    with pytest.raises(SystemExit,
                       match=r'is not a checkpoint of .*tiny\.py:\n'
                       r'shape mismatch'):
        load_tool(DENSEVIT_TO_TIMM).main(
            [str(converted), str(tmp_path / 'x.pth'), '--config',
             str(config)])
    with pytest.raises(SystemExit,
                       match=r"does not fit timm's vit_small_patch16_224:\n"
                       r'shape mismatch'):
        load_tool(DENSEVIT_TO_TIMM).main(
            [str(converted), str(tmp_path / 'x.pth'), '--timm-model',
             'vit_small_patch16_224'])


@pytest.mark.parametrize('overrides,match', [
    (dict(qk_norm=True), r"q_norm.*\(q/k norms \(timm qk_norm=True\)\)"),
    (dict(class_token=False, global_pool='avg'), 'no CLS token'),
    (dict(embed_dim=64, num_heads=4), r'how many attention heads.*'
     r'--num-heads'),
])
def test_timm_weights_densevit_cannot_represent_are_named(overrides, match):
    model = timm.create_model('vit_tiny_patch16_224', pretrained=False,
                              depth=1, img_size=32, **overrides)
    with pytest.raises(ConversionError, match=match):
        timm_to_densevit(model.state_dict())


def test_ambiguous_grid_needs_the_image_size():
    # At 42 px, pos_embed has 9 positions: a 3x3 grid without prefix
    # positions (no_embed_class), or a 2x2 one after CLS + 4 registers.
    model = random_timm_vit('vit_small_patch14_reg4_dinov2', depth=1,
                            img_size=42)
    with pytest.raises(ConversionError, match=r'more than one patch grid.*'
                       r'--img-size'):
        timm_to_densevit(model.state_dict())
    conversion = timm_to_densevit(model.state_dict(), img_size=42)
    assert conversion.config['img_size'] == 42


def test_densevit_checkpoint_given_to_timm_to_densevit(tmp_path,
                                                       tiny_model_cfg):
    densevit = MODELS.build(copy.deepcopy(tiny_model_cfg))
    with pytest.raises(ConversionError,
                       match='convert it with densevit_to_timm'):
        timm_to_densevit({'state_dict': densevit.state_dict()})
    # The tool prints it without a traceback.
    checkpoint = tmp_path / 'densevit.pth'
    torch.save({'state_dict': densevit.state_dict()}, checkpoint)
    with pytest.raises(SystemExit, match='^ConversionError: .*convert it '
                       'with densevit_to_timm'):
        load_tool(TIMM_TO_DENSEVIT).main([str(checkpoint),
                                          str(tmp_path / 'out.pth')])
    with pytest.raises(ConversionError, match='Not a DenseViT checkpoint'):
        densevit_to_timm(random_timm_vit(
            'vit_tiny_patch16_224', depth=1, img_size=32).state_dict(), 3)


def test_unreadable_safetensors_named(tmp_path):
    bad = tmp_path / 'model.safetensors'
    bad.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a": 1}')
    with pytest.raises(SystemExit, match=f'UnreadableCheckpointError: '
                       f'Checkpoint {bad} is not a readable safetensors'):
        load_tool(TIMM_TO_DENSEVIT).main([str(bad), str(tmp_path / 'o')])
