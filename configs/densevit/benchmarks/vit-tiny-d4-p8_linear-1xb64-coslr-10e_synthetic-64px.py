# Linear probe of the demo checkpoint on SyntheticShapes (64 px):
#   python tools/train.py configs/densevit/benchmarks/vit-tiny-d4-p8_linear-1xb64-coslr-10e_synthetic-64px.py \
#     --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/<demo>/epoch_4.pth
_base_ = ['./vit-small-p16_linear-8xb128-coslr-90e_in1k.py']

# The demo's backbone: 4 layers of ViT-tiny, 8x8 patches, all frozen.
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=4, num_heads=3,
                  feedforward_channels=768),
        img_size=64,
        patch_size=8,
        frozen_stages=4),
    head=dict(num_classes=6, in_channels=192),
    data_preprocessor=dict(num_classes=6))

synthetic = dict(type='SyntheticShapes', img_size=64, num_classes=6)
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        num_samples=2048,
        seed=1,
        pipeline=[
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ],
        **synthetic))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        num_samples=1024,
        seed=2,
        test_mode=True,
        pipeline=[dict(type='PackInputs')],
        **synthetic))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.1))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, by_epoch=True, begin=0, end=10)
]
train_cfg = dict(max_epochs=10, val_interval=5)
auto_scale_lr = dict(base_batch_size=64)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=5, save_best='auto'))
