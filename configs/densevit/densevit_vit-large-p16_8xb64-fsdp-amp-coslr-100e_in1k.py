# DenseViT ViT-L/16, 224 px ImageNet, 8 GPUs x 64 images, sharded with FSDP
# (bf16), AdamW + cosine, 100 epochs; lr 3e-4 for the total batch of 512, as
# the ViT-S config. Launch with tools/dist_train.sh; one process without a
# launcher trains unsharded (docs/distributed.md).
_base_ = [
    './densevit_vit-small-p16_8xb64-amp-coslr-100e_in1k.py',
    '../_base_/fsdp_runtime.py',
]

model = dict(backbone=dict(arch='large', drop_path_rate=0.1))
