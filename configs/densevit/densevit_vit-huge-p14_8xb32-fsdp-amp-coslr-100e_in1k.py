# DenseViT ViT-H/14, 224 px ImageNet (16x16 patch grid), 8 GPUs x 32
# images, sharded with FSDP (bf16), AdamW + cosine, 100 epochs. Launch with
# tools/dist_train.sh (docs/distributed.md).
_base_ = [
    './densevit_vit-small-p16_8xb64-amp-coslr-100e_in1k.py',
    '../_base_/fsdp_runtime.py',
]

model = dict(
    backbone=dict(arch='huge', patch_size=14, drop_path_rate=0.1))
train_dataloader = dict(batch_size=32)
# Total batch 256.
optim_wrapper = dict(optimizer=dict(lr=1.5e-4))
auto_scale_lr = dict(base_batch_size=256)
