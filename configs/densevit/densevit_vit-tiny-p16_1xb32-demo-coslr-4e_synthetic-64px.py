# The demo: a ViT-tiny trained on 64-px SyntheticShapes on a 2-core CPU in a
# few minutes, probed (linear, k-NN, dense mIoU) as it trains, and evaluated
# by tools/test.py on correspondence accuracy, dense-probe mIoU and k-NN.
_base_ = [
    '../_base_/models/densevit_vit-small-p16.py',
    '../_base_/datasets/synthetic_shapes_64px.py',
    '../_base_/schedules/adamw_coslr-100e.py',
    '../_base_/default_runtime.py',
]

# Small data, short run: a 4,096-key queue (a 65,536 one would never fill in
# 4 epochs of 8,192 images and costs 16x the loss arithmetic) and a faster
# momentum, so the key encoder follows the quickly changing online one.
model = dict(
    backbone=dict(arch='tiny', img_size=64),
    neck=dict(in_channels=192),
    dense_loss=dict(queue_len=4096),
    global_loss=dict(queue_len=4096),
    momentum=0.99)

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
    dict(type='MomentumUpdateHook', schedule='cosine', end_momentum=1.0),
    dict(type='LossWeightWarmupHook', warmup_iters=100),
    dict(type='TrainStateHook'),
    dict(type='NonFiniteLossHook'),
    dict(
        type='LinearProbeHook',
        train_dataloader='probe_train_dataloader',
        val_dataloader='probe_val_dataloader',
        interval=2),
]

# tools/test.py: two views of held-out images (crops and flips only, so the
# ground-truth correspondence is exact) with masks and labels.
test_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='SyntheticShapes',
        num_samples=1024,
        img_size=64,
        num_classes=6,
        seed=3,
        test_mode=True,
        pipeline=[
            dict(
                type='TwoViewCrop',
                size=64,
                scale=(0.3, 1.0),
                min_overlap=0.5),
            dict(type='PackDenseInputs'),
        ]))
test_evaluator = [
    dict(type='CorrespondenceAccuracy'),
    dict(type='DenseProbe', num_classes=7),
    dict(type='KNNAccuracy', num_classes=6),
    dict(type='LinearProbeAccuracy', num_classes=6),
]
test_cfg = dict(type='TestLoop')
