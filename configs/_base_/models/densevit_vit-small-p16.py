# DenseViT with a ViT-S/16: DenseCL's recipe (65,536-key queues, 128-d
# embeddings, tau = 0.2, lambda = 0.5) on the CLS token and the patch tokens,
# with the positives and the predictor measured best in docs/evaluation.md
# (DenseCL's algorithm exactly: configs/densevit/densecl_vit-small-p16_*).
model = dict(
    type='DenseViT',
    backbone=dict(
        type='DenseViTBackbone',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.0),
    # in_channels (the backbone's embed_dims) and the losses' feat_dim (the
    # neck's out_channels) are derived by DenseViT.
    neck=dict(type='DenseProjectionNeck', hid_channels=2048, out_channels=128),
    # Two positives per view-1 patch, half the loss each: the most similar
    # view-2 patch (backbone cosine) within one cell of where the crop
    # geometry puts it, and the view-2 cell that holds it by the geometry
    # (PixPro / VADeR). Patches outside view 2 sit the dense loss out. On a
    # real-photo folder the geometric half is what made dense training beat
    # global-only on correspondence, on two seeds (docs/evaluation.md).
    dense_loss=dict(
        type='DenseContrastiveLoss',
        queue_len=65536,
        temperature=0.2,
        enqueue='mean',
        match_window=1,
        geometric_weight=0.5),
    # MoCo v3's predictor on the query path (its channels derived from the
    # neck): on a real-photo folder it was the one change that kept every
    # frozen probe above random init on two seeds (docs/evaluation.md,
    # "Seed to seed").
    predictor=dict(type='DenseProjectionNeck', hid_channels=2048),
    global_loss=dict(
        type='GlobalContrastiveLoss',
        queue_len=65536,
        temperature=0.2),
    loss_lambda=0.5,
    # DenseCL trains the global loss alone first: matches on an untrained
    # backbone are noise.
    dense_warmup_iters=1000,
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

# The hooks that drive DenseViT's training: enqueue each step's keys, move
# the key encoder, switch on the dense loss after its warm-up (their settings
# are the model's), keep every rank's RNG state in checkpoints and stop on a
# non-finite loss. A config that adds hooks starts from this list:
#   custom_hooks = [*_base_.custom_hooks, _base_.probe_hook]
custom_hooks = [
    dict(type='QueueUpdateHook'),
    dict(type='MomentumUpdateHook'),
    dict(type='LossWeightWarmupHook'),
    dict(type='TrainStateHook'),
    dict(type='NonFiniteLossHook'),
]

# Under DDP: every rank's queues are identical already (keys are all-gathered
# before each enqueue) and a ViT has no BatchNorm statistics, so broadcasting
# buffers each step would only copy both queues from rank 0.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', broadcast_buffers=False)
