# The self-supervised demo on a folder of your own unlabelled photos:
#   python tools/train.py configs/densevit/densevit_vit-tiny-d4-p8_1xb32-demo-coslr-4e_folder-64px.py \
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

default_hooks = dict(logger=dict(interval=20))
