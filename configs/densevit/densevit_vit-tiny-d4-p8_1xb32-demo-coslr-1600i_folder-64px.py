# The self-supervised demo on a folder of your own unlabelled photos:
#   python tools/train.py configs/densevit/densevit_vit-tiny-d4-p8_1xb32-demo-coslr-1600i_folder-64px.py \
#       --cfg-options train_dataloader.dataset.data_root=/path/to/photos
# tools/test.py on this config measures correspondence accuracy on real
# photographs (data/sample_photos, see configs/_base_/datasets/
# photo_folder_64px.py) for any checkpoint of the demo model, including the
# SyntheticShapes demo's.
_base_ = [
    '../_base_/models/densevit_vit-tiny-d4-p8.py',
    '../_base_/datasets/photo_folder_64px.py',
    '../_base_/schedules/adamw_coslr-4e.py',
    '../_base_/default_runtime.py',
]

# A step budget, not an epoch count: a folder has any number of images, and
# what the features gain depends on the number of steps (docs/evaluation.md,
# 1,600 steps on 1,280 photos). About 8 minutes on 2 CPU cores.
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1600)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=400))
# Log `Iter(train) [step/1600]`, not an epoch count of a loop without epochs.
log_processor = dict(by_epoch=False)
