# Self-supervised demo: a 4-layer ViT-tiny (192-d, 3 heads, 16x16 patches)
# trained on 64-px SyntheticShapes, probed as it trains and evaluated by
# tools/test.py with the same metrics (correspondence accuracy, dense-probe
# mIoU, k-NN and linear-probe top-1, each beside its baseline). The
# joint-mode demo (README's command) inherits it.
_base_ = [
    '../_base_/models/densevit_vit-small-p16.py',
    '../_base_/datasets/synthetic_shapes_64px.py',
    '../_base_/schedules/adamw_coslr-100e.py',
    '../_base_/default_runtime.py',
]

# Small data, short run: 4 of ViT-tiny's 12 layers (steps about 2x faster,
# so twice the images seen in the same minutes), a 4,096-key queue (a 65,536 one
# would never fill in this run and costs 16x the loss arithmetic) and a
# faster momentum, so the key encoder follows the quickly changing online
# one.
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=4, num_heads=3),
        img_size=64),
    neck=dict(in_channels=192),
    dense_loss=dict(queue_len=4096),
    global_loss=dict(queue_len=4096),
    momentum=0.01)

# 4 epochs of 16,384 freshly drawn images: more distinct images beat more
# passes over fewer for a ViT learning shapes from scratch.
train_dataloader = dict(dataset=dict(num_samples=16384))
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-2,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(logger=dict(interval=20))
custom_hooks = [
    dict(type='QueueUpdateHook'),
    dict(type='MomentumUpdateHook'),
    dict(type='LossWeightWarmupHook', warmup_iters=100),
    dict(type='TrainStateHook'),
    dict(type='NonFiniteLossHook'),
    # tools/test.py's metrics (test_evaluator) on the probe split below.
    dict(
        type='ProbeHook',
        dataloader='probe_dataloader',
        evaluator='test_evaluator',
        interval=2),
]

# Two views of a held-out image: crops and flips only, so the ground-truth
# correspondence is exact; masks and labels are packed too.
two_view_test_pipeline = [
    dict(type='TwoViewCrop', size=64, scale=(0.3, 1.0), min_overlap=0.5),
    dict(type='PackDenseInputs'),
]

# ProbeHook's split during training: two views, like the test split, on
# other held-out images (another seed).
probe_dataloader = dict(
    _base_.eval_loader_defaults,
    dataset=dict(
        type='SyntheticShapes',
        num_samples=1024,
        img_size=64,
        num_classes=6,
        seed=4,
        test_mode=True,
        pipeline=two_view_test_pipeline))

# tools/test.py: the same two-view pipeline on other held-out images.
test_dataloader = dict(
    _base_.eval_loader_defaults,
    dataset=dict(
        type='SyntheticShapes',
        num_samples=1024,
        img_size=64,
        num_classes=6,
        seed=3,
        test_mode=True,
        pipeline=two_view_test_pipeline))
test_evaluator = [
    dict(type='CorrespondenceAccuracy'),
    dict(type='DenseProbe', num_classes=7),
    dict(type='KNNAccuracy', num_classes=6),
    dict(type='LinearProbeAccuracy', num_classes=6),
]
test_cfg = dict(type='TestLoop')
