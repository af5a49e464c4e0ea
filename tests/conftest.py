import copy

import pytest
import torch

# The suite runs on 2 cores; keep torch from oversubscribing them.
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_MODEL = dict(
    type='DenseViT',
    backbone=dict(
        type='DenseViTBackbone',
        arch=dict(embed_dims=32, num_layers=1, num_heads=2),
        img_size=32),
    neck=dict(
        type='DenseProjectionNeck',
        in_channels=32,
        hid_channels=64,
        out_channels=16),
    dense_loss=dict(type='DenseContrastiveLoss', queue_len=64, feat_dim=16),
    global_loss=dict(type='GlobalContrastiveLoss', queue_len=64, feat_dim=16),
    loss_lambda=0.5,
    momentum=0.01,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))


@pytest.fixture
def tiny_model_cfg():
    """A depth-1, 32-d DenseViT config: builds and steps in milliseconds."""
    return copy.deepcopy(TINY_MODEL)
