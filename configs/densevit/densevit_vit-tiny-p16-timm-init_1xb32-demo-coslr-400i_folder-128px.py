# The post-pretraining path on a CPU: timm's ViT-Ti/16 (vit_tiny_patch16_224,
# 5.7M parameters) post-pretrained on a folder of photos at 128 px (an 8x8
# patch grid, the demo's), 400 steps of 32 images. A step costs about 2.5
# steps of the folder demo (measured side by side), so the run takes about
# as long as 1,000 demo steps: some 5 minutes on 2 CPU cores. The demo
# model's settings (1,024-key queues, match_window=1, momentum 0.01) around
# the converted backbone; a tenth of the demo's learning rate.
#
# checkpoints/vit-tiny-p16_timm.pth is what the converter writes:
#   python tools/model_converters/timm_to_densevit.py vit-tiny-p16.pth \
#       checkpoints/vit-tiny-p16_timm.pth --timm-model vit_tiny_patch16_224
# from torch.save(timm.create_model('vit_tiny_patch16_224', pretrained=True)
# .state_dict(), 'vit-tiny-p16.pth'). Then, on a folder of at least 32
# photos (one batch), and scored on real photographs (correspondence
# accuracy; data/sample_photos from export_sample_photos.py):
#   python tools/train.py configs/densevit/densevit_vit-tiny-p16-timm-init_1xb32-demo-coslr-400i_folder-128px.py \
#       --cfg-options train_dataloader.dataset.data_root=/path/to/photos
#   python tools/test.py configs/densevit/densevit_vit-tiny-p16-timm-init_1xb32-demo-coslr-400i_folder-128px.py \
#       work_dirs/densevit_vit-tiny-p16-timm-init_1xb32-demo-coslr-400i_folder-128px/iter_400.pth
# (docs/get_started.md, "Start from a timm ViT", has the whole path).
_base_ = [
    '../_base_/models/densevit_vit-tiny-d4-p8.py',
    '../_base_/datasets/photo_folder_64px.py',
    '../_base_/schedules/adamw_post-pretrain-coslr-10e.py',
    '../_base_/default_runtime.py',
]

img_size = 128

model = dict(
    # The backbone config timm_to_densevit prints for vit_tiny_patch16_224
    # (what it sets beyond the demo backbone's; the rest are the defaults),
    # with img_size the crop size: the 14x14 positions are resized to 8x8
    # once, at load.
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=12, num_heads=3,
                  feedforward_channels=768),
        img_size=img_size,
        patch_size=16,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vit-tiny-p16_timm.pth')),
    # Pretrained features match patches from the first step.
    dense_warmup_iters=0,
    # timm's pretrained_cfg mean and std for this model (0.5), x 255.
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3))

# The photo-folder splits at 128 px.
train_dataloader = dict(dataset=dict(pipeline=[
    _base_.load_image,
    dict(_base_.two_view_crop, size=img_size),
    _base_.view_augs,
    _base_.pack_inputs,
]))
test_dataloader = dict(dataset=dict(dataset=dict(pipeline=[
    _base_.load_image,
    dict(_base_.two_view_test_crop, size=img_size),
    _base_.view_augs,
    _base_.pack_inputs,
])))

# 5e-6 at batch 32: a tenth of the demo's from-scratch 5e-5; a 50-step
# warm-up; 400 steps whatever the folder's size.
optim_wrapper = dict(optimizer=dict(lr=5e-6))
auto_scale_lr = dict(base_batch_size=32)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False,
         begin=0),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=400)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=200))
log_processor = dict(by_epoch=False)
