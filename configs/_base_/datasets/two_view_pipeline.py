# The two-view DenseCL / MoCo v2 augmentation recipe, defined once.
# Dataset configs (synthetic_shapes_64px.py, imagenet_224px.py) inherit this
# file and assemble their train pipeline from these pieces, adding only what
# differs (how the image is obtained and the crop size), e.g.
#   train_pipeline = [dict(_base_.two_view_crop, size=64),
#                     _base_.view_augs, _base_.pack_inputs]

# Two random-resized crops (area 20-100%) + horizontal flips, recording each
# view's box and flip. `size` is set by the dataset config. Add
# `min_overlap=0.3` to force overlapping views (off in DenseCL).
two_view_crop = dict(
    type='TwoViewCrop',
    scale=(0.2, 1.0),
    ratio=(3. / 4., 4. / 3.),
    flip_prob=0.5)

# MoCo v2 photometric augmentations, drawn independently for each view
# (ViewwiseTransforms is mmpretrain's ApplyToList over the views).
# RandomColorJitter is DenseViT's (mmpretrain's ColorJitter crashes on hue
# under numpy 2); RandomGrayscale is mmcv's, GaussianBlur mmpretrain's
# (sigma uniform in [0.1, 2.0]). For BYOL-style solarisation append
# dict(type='Solarize', thr=128, prob=0.2).
view_augs = dict(
    type='ViewwiseTransforms',
    transforms=[
        dict(
            type='RandomColorJitter',
            brightness=0.4,
            contrast=0.4,
            saturation=0.4,
            hue=0.1,
            prob=0.8),
        dict(
            type='RandomGrayscale',
            prob=0.2,
            keep_channels=True,
            channel_weights=(0.114, 0.587, 0.299)),  # BGR luma weights
        dict(
            type='GaussianBlur',
            magnitude_range=(0.1, 2.0),
            magnitude_std='inf',
            prob=0.5),
    ])

pack_inputs = dict(type='PackDenseInputs')

# Evaluation view pairs: crops overlapping by at least half, so most patches
# have a true match. `size` is set by the dataset config.
two_view_test_crop = dict(
    type='TwoViewCrop', scale=(0.3, 1.0), min_overlap=0.5)

# Image folders: Pillow decoding. A missing, empty, truncated or non-image
# file is skipped with a warning naming it (the dataset fetches another
# image); more than 5% unreadable files is an error naming them (raise
# `max_unreadable_fraction` to tolerate more, 0 to tolerate none).
load_image = dict(
    type='LoadImageOrSkip',
    imdecode_backend='pillow',
    max_unreadable_fraction=0.05)

# Images stay BGR uint8 until here: convert to RGB and normalise on device.
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# Dataloader settings every dataset config shares. Training: shuffled, full
# batches only (both views and the queue expect a fixed batch size), batched
# tensors (default_collate) as the self-supervised preprocessor expects.
# Workers are started afresh every epoch: mmengine seeds them from the seed,
# rank and worker id only, so a resumed run's workers draw exactly what the
# uninterrupted run's drew (persistent workers would carry their random state
# over from earlier epochs, which a resumed run cannot restore). Cost: the
# start of the workers, a fraction of a second per epoch (measured in
# docs/get_started.md, "What resume guarantees").
train_loader_defaults = dict(
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    drop_last=True)
# Probes and evaluation: every sample once, in order; fresh workers for each
# pass, so every probe during training sees the same random view pairs.
eval_loader_defaults = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
