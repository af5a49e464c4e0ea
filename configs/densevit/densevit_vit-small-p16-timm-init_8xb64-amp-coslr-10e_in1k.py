# Dense post-pretraining of timm's ViT-S/16 (vit_small_patch16_224) on
# 224-px ImageNet, 8 GPUs x 64 images, bf16 AMP: DenseViT's recipe started
# from the pretrained weights, at a tenth of the from-scratch learning rate
# for 10 epochs (../_base_/schedules/adamw_post-pretrain-coslr-10e.py, which
# also shows the layer-wise lr decay and frozen-block options).
#
# checkpoints/vit-small-p16_timm.pth is what the converter writes:
#   python tools/model_converters/timm_to_densevit.py model.safetensors \
#       checkpoints/vit-small-p16_timm.pth --timm-model vit_small_patch16_224
# (model.safetensors from the timm model's Hub page, or
#  torch.save(timm.create_model('vit_small_patch16_224', pretrained=True)
#  .state_dict(), 'vit-small-p16.pth')); the full path, evaluation and
# export back are in docs/get_started.md, "Start from a timm ViT".
_base_ = [
    '../_base_/models/densevit_vit-small-p16.py',
    '../_base_/datasets/imagenet_224px.py',
    '../_base_/schedules/adamw_post-pretrain-coslr-10e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    # The backbone config timm_to_densevit prints for vit_small_patch16_224
    # (every structural setting, the defaults too), loaded strictly.
    backbone=dict(
        _delete_=True,
        type='DenseViTBackbone',
        arch=dict(embed_dims=384, num_layers=12, num_heads=6,
                  feedforward_channels=1536),
        img_size=224,
        patch_size=16,
        num_register_tokens=0,
        layer_scale_init_value=0.0,
        qkv_bias=True,
        pre_norm=False,
        final_norm=True,
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vit-small-p16_timm.pth')),
    # DenseCL's global-only warm-up guards against matching the patches of
    # an untrained backbone; pretrained features match from the first step.
    dense_warmup_iters=0,
    # The normalisation the weights were trained with: timm's
    # pretrained_cfg mean and std (0.5 for Google's augreg ViTs), x 255.
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5],
                           std=[127.5, 127.5, 127.5]))

train_dataloader = dict(batch_size=64)
# lr for the total batch of 512 (8 x 64), from 1.5e-5 per 256.
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', optimizer=dict(lr=3e-5))
auto_scale_lr = dict(base_batch_size=512)

# k-NN and linear-probe top-1 on the labelled val images every 10 epochs
# (so after the last one).
custom_hooks = [*_base_.custom_hooks, _base_.probe_hook]
