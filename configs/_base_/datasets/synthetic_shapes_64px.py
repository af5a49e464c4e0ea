# SyntheticShapes at 64 px (4x4 ViT patch grid): generated in memory, no
# files needed. Train on seed 0; the probe split uses another seed.
_base_ = ['./two_view_pipeline.py']

dataset_type = 'SyntheticShapes'
img_size = 64
num_classes = 6

train_pipeline = [
    dict(_base_.two_view_crop, size=img_size),
    _base_.view_augs,
    _base_.pack_inputs,
]

train_dataloader = dict(
    _base_.train_loader_defaults,
    batch_size=32,
    dataset=dict(
        type=dataset_type,
        num_samples=8192,
        img_size=img_size,
        num_classes=num_classes,
        seed=0,
        pipeline=train_pipeline))

# Single view with its mask: labelled data for linear / k-NN / dense probes.
probe_pipeline = [
    dict(type='ResizeWithMask', size=img_size),
    dict(type='PackDenseInputs'),
]

# ProbeHook's split (its metrics fit on a seeded half, score the other).
probe_dataloader = dict(
    _base_.eval_loader_defaults,
    dataset=dict(
        type=dataset_type,
        num_samples=2048,
        img_size=img_size,
        num_classes=num_classes,
        seed=1,
        test_mode=True,
        pipeline=probe_pipeline))
