import copy
import logging

import pytest
import torch
from mmengine.logging import MMLogger

from densevit.engine.utils import (CheckpointMismatchError, check_state_dict,
                                   compare_state_dict, state_dict_of)
from densevit.registry import MODELS


def build(cfg, **backbone):
    cfg = copy.deepcopy(cfg)
    cfg['backbone'].update(backbone)
    cfg['neck']['in_channels'] = cfg['backbone']['arch']['embed_dims']
    return MODELS.build(cfg)


def test_a_model_fits_its_own_weights_and_is_left_untouched(tiny_model_cfg):
    model = build(tiny_model_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not compare_state_dict(model, model.state_dict())
    other = build(tiny_model_cfg, arch=dict(embed_dims=48, num_layers=2,
                                            num_heads=2))
    assert compare_state_dict(model, other.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_wider_deeper_and_other_queue_sizes_are_described(tiny_model_cfg):
    model = build(tiny_model_cfg)
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg['backbone']['arch'] = dict(embed_dims=32, num_layers=2, num_heads=2)
    cfg['global_loss']['queue_len'] = 32
    mismatch = compare_state_dict(model, MODELS.build(cfg).state_dict())
    assert mismatch.mismatched == [('global_loss.queue.keys', (32, 16),
                                    (64, 16))]
    assert mismatch.missing == []
    assert 'backbone.layers.1.attn.qkv.weight' in mismatch.unexpected
    # Shallower: the other way round.
    mismatch = compare_state_dict(MODELS.build(cfg), model.state_dict())
    assert 'backbone.layers.1.attn.qkv.weight' in mismatch.missing
    assert mismatch.unexpected == []

    wider = build(tiny_model_cfg, arch=dict(embed_dims=48, num_layers=1,
                                            num_heads=2))
    mismatch = compare_state_dict(model, wider.state_dict())
    assert ('backbone.cls_token', (1, 1, 48), (1, 1, 32)) in \
        mismatch.mismatched
    text = mismatch.describe(limit=3)
    assert 'backbone.cls_token: checkpoint [1, 1, 48], model [1, 1, 32]' \
        in text
    assert f'... and {len(mismatch.mismatched) - 3} more' in text


def test_what_the_model_converts_itself_fits(tiny_model_cfg):
    # mmpretrain's ViT resizes a position embedding of another image size
    # while loading: not a mismatch.
    model = build(tiny_model_cfg)
    larger = build(tiny_model_cfg, img_size=64)
    assert larger.backbone.pos_embed.shape != model.backbone.pos_embed.shape
    assert not compare_state_dict(model, larger.state_dict())


def test_keys_the_model_renames_itself_fit(tiny_model_cfg):
    # DenseViT loads its earlier key-encoder layout (key_backbone.*).
    model = build(tiny_model_cfg)
    old = {
        key.replace('key_encoder.module.backbone.', 'key_backbone.'): value
        for key, value in model.state_dict().items()
        if key != 'key_encoder.steps'
    }
    assert any(key.startswith('key_backbone.') for key in old)
    assert not compare_state_dict(model, old)


def test_check_state_dict_raises_or_logs(tiny_model_cfg):
    model = build(tiny_model_cfg)
    backbone_only = {
        k[len('backbone.'):]: v
        for k, v in model.state_dict().items() if k.startswith('backbone.')
    }
    with pytest.raises(CheckpointMismatchError) as error:
        check_state_dict(model, backbone_only, 'backbone.pth',
                         partial_option='--partial-load')
    message = str(error.value)
    assert 'Checkpoint backbone.pth does not fit the model DenseViT' in message
    assert 'missing in the checkpoint' in message and 'not in the model' \
        in message
    assert 'weights of `model.backbone` alone' in message
    assert 'pass --partial-load' in message

    logged = logging.Handler()
    logged.emit = lambda record: messages.append(record.getMessage())
    messages = []
    logger = MMLogger.get_current_instance()
    logger.addHandler(logged)
    try:
        mismatch = check_state_dict(model, backbone_only, 'backbone.pth',
                                    strict=False)
    finally:
        logger.removeHandler(logged)
    assert 'backbone.cls_token' in mismatch.missing
    assert any('Partial load of backbone.pth' in m and 'backbone.cls_token'
               in m for m in messages)


def test_state_dict_of():
    weights = {'module.w': torch.zeros(1)}
    assert list(state_dict_of({'state_dict': weights})) == ['w']
    assert list(state_dict_of(weights)) == ['w']
    with pytest.raises(CheckpointMismatchError, match='x.pth holds a Tensor'):
        state_dict_of(torch.zeros(1), 'x.pth')
