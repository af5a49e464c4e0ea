# DenseViT with a ViT-S/16: DenseCL's recipe (65,536-key queues, 128-d
# embeddings, tau = 0.2, lambda = 0.5) on the CLS token and the patch tokens.
model = dict(
    type='DenseViT',
    backbone=dict(
        type='DenseViTBackbone',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.0),
    neck=dict(
        type='DenseProjectionNeck',
        in_channels=384,
        hid_channels=2048,
        out_channels=128),
    dense_loss=dict(
        type='DenseContrastiveLoss',
        queue_len=65536,
        feat_dim=128,
        temperature=0.2,
        enqueue='mean'),
    global_loss=dict(
        type='GlobalContrastiveLoss',
        queue_len=65536,
        feat_dim=128,
        temperature=0.2),
    loss_lambda=0.5,
    # Key-encoder EMA in mmengine's convention: the share of the online
    # weights taken per update (0.001 keeps MoCo's 99.9%), on a cosine to 0
    # (BYOL) over the run; MomentumUpdateHook drives it.
    momentum=0.001,
    end_momentum=0.0,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))
