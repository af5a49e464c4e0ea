"""DenseViT in DenseCL mode against mmpretrain 1.2.0's own ``DenseCL``.

Same ViT weights, same dense projection (DenseCL's 1x1 convolutions are our
per-patch linear layers), same dense queue: the dense loss and the key each
step enqueues must be DenseCL's. (The global branches differ by design:
DenseCL pools the feature map, DenseViT uses the CLS token.)
"""
from pathlib import Path

import torch
from mmengine.config import Config

from densevit.registry import MODELS

EMBED, HID, OUT, QUEUE = 32, 64, 16, 64
DENSECL_CONFIG = str(
    Path(__file__).resolve().parents[3] / 'configs' / 'densevit' /
    'densecl_vit-small-p16_8xb64-amp-coslr-100e_in1k.py')
ARCH = dict(embed_dims=EMBED, num_layers=1, num_heads=2,
            feedforward_channels=64)


def build_pair():
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    torch.manual_seed(0)
    densecl = MMPRETRAIN_MODELS.build(
        dict(
            type='DenseCL',
            backbone=dict(type='VisionTransformer', arch=ARCH, img_size=32,
                          patch_size=8, out_type='featmap'),
            neck=dict(type='DenseCLNeck', in_channels=EMBED,
                      hid_channels=HID, out_channels=OUT, num_grid=None),
            head=dict(type='ContrastiveHead',
                      loss=dict(type='CrossEntropyLoss'), temperature=0.2),
            queue_len=QUEUE, feat_dim=OUT, momentum=0.001, loss_lambda=0.5))
    cfg = Config.fromfile(DENSECL_CONFIG)
    model_cfg = cfg.model
    model_cfg.backbone.update(arch=ARCH, img_size=32, patch_size=8)
    model_cfg.neck.update(hid_channels=HID, out_channels=OUT)
    model_cfg.dense_loss.queue_len = QUEUE
    model_cfg.global_loss.queue_len = QUEUE
    densevit = MODELS.build(model_cfg)
    # Same weights: the ViT loads as is; DenseCL's dense 1x1 convs are the
    # per-patch linear layers.
    densevit.backbone.load_state_dict(densecl.backbone.state_dict())
    convs = [m for m in densecl.neck.mlp2 if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in densevit.neck.dense_mlp
               if isinstance(m, torch.nn.Linear)]
    for conv, linear in zip(convs, linears):
        linear.weight.data.copy_(conv.weight.data[:, :, 0, 0])
        linear.bias.data.copy_(conv.bias.data)
    densevit.copy_online_to_key()
    densevit.dense_loss.queue.keys.copy_(densecl.queue2.T)
    return densecl, densevit


def test_densecl_config_is_densecl():
    cfg = Config.fromfile(DENSECL_CONFIG)
    model = cfg.model
    assert model.dense_loss.get('match_window') is None
    # The DenseViT bases add a geometric positive and a predictor; DenseCL
    # has neither.
    assert not model.dense_loss.get('geometric_weight')
    assert model.get('predictor') is None
    assert model.dense_loss.enqueue == 'mean'
    assert model.dense_loss.temperature == 0.2
    assert model.loss_lambda == 0.5 and not model.get('symmetric_loss')
    assert model.momentum == 0.001 and model.get('end_momentum') is None


def test_dense_loss_and_enqueued_key_equal_mmpretrain_densecl():
    densecl, densevit = build_pair()
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(4, 3, 32, 32, generator=gen) for _ in range(2)]
    densecl.train()
    densevit.train()
    expected = densecl.loss(views, None)
    # DenseCL enqueued its keys at the end of loss(); its first EMA update
    # copied the online weights, as DenseViT's key encoder starts.
    expected_key = densecl.queue2[:, :4].T.clone()
    losses = densevit.loss(views, None)
    torch.testing.assert_close(losses['loss_dense'], expected['loss_dense'],
                               rtol=1e-5, atol=1e-6)
    # DenseCL's dense queue key: normalize(mean over locations of the
    # UN-normalised key projections).
    torch.testing.assert_close(densevit.dense_loss.pending_keys,
                               expected_key, rtol=1e-5, atol=1e-6)
