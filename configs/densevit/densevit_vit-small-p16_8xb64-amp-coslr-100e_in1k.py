# DenseViT ViT-S/16, 224 px ImageNet, 8 GPUs x 64 images, bf16 AMP (falls
# back to fp32 on a CPU-only machine), AdamW + cosine, 100 epochs.
_base_ = [
    '../_base_/models/densevit_vit-small-p16.py',
    '../_base_/datasets/imagenet_224px.py',
    '../_base_/schedules/adamw_coslr-100e.py',
    '../_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=64)
# lr for the total batch of 512 (8 x 64), from 1.5e-4 per 256.
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', optimizer=dict(lr=3e-4))
auto_scale_lr = dict(base_batch_size=512)

# k-NN and linear-probe top-1 on the labelled val images every 10 epochs.
custom_hooks = [*_base_.custom_hooks, _base_.probe_hook]
