# ImageNet-style folder at 224 px (14x14 ViT patch grid), same two-view
# recipe as the synthetic data (from two_view_pipeline.py).
# Expected layout: data/imagenet/train/<class>/*.JPEG and
# data/imagenet/val/*.JPEG with data/imagenet/meta/val.txt (mmpretrain's
# layout). DenseImageFolder checks the folder exists and holds images before
# training starts.
_base_ = ['./two_view_pipeline.py']

dataset_type = 'DenseImageFolder'
data_root = 'data/imagenet'
img_size = 224

load_image = _base_.load_image

train_pipeline = [
    load_image,
    dict(_base_.two_view_crop, size=img_size),
    _base_.view_augs,
    _base_.pack_inputs,
]

train_dataloader = dict(
    _base_.train_loader_defaults,
    batch_size=32,
    num_workers=8,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        # Labels from the class folders (used only in joint mode). With
        # mmpretrain's meta/train.txt, set ann_file='meta/train.txt' to skip
        # scanning 1.28M files.
        ann_file='',
        with_label=True,
        pipeline=train_pipeline))

# Single view, for probes: resize to 224x224 (no masks on ImageNet).
probe_pipeline = [
    load_image,
    dict(type='ResizeWithMask', size=img_size),
    dict(type='PackDenseInputs'),
]

# ProbeHook's split: the labelled val images; its metrics fit on a seeded
# half and score the other half.
probe_dataloader = dict(
    _base_.eval_loader_defaults,
    num_workers=8,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        ann_file='meta/val.txt',
        with_label=True,
        test_mode=True,
        pipeline=probe_pipeline))

# Probes of frozen CLS features during training (the metrics tools/test.py
# runs, under the same names); a config turns it on with
#   custom_hooks = [*_base_.custom_hooks, _base_.probe_hook]
probe_hook = dict(
    type='ProbeHook',
    dataloader='probe_dataloader',
    evaluator=[dict(type='KNNAccuracy'), dict(type='LinearProbeAccuracy')],
    interval=10)
