# Any folder of unlabelled photos at 64 px (an 8x8 grid with 8-px patches):
# images anywhere under `data_root`, sub-folders allowed, labels ignored.
# Unreadable files are skipped with a warning naming them (LoadImageOrSkip).
# The test split measures correspondence accuracy on real photographs: two
# crops of one photo with flips AND independent colour jitter, greyscale and
# blur (the geometry stays exact; the photometric change makes the match
# rely on features, not raw pixels).
#   python tools/dataset_converters/export_sample_photos.py data/sample_photos
# writes the photographs bundled with scikit-image into that folder.
_base_ = ['./two_view_pipeline.py']

dataset_type = 'DenseImageFolder'
data_root = 'data/sample_photos'
img_size = 64

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
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        with_label=False,
        pipeline=train_pipeline))

photo_correspondence_pipeline = [
    load_image,
    dict(_base_.two_view_test_crop, size=img_size),
    _base_.view_augs,
    _base_.pack_inputs,
]
# 32 random view pairs of every photo.
test_dataloader = dict(
    _base_.eval_loader_defaults,
    dataset=dict(
        type='RepeatDataset',
        times=32,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            with_label=False,
            test_mode=True,
            pipeline=photo_correspondence_pipeline)))
test_evaluator = [dict(type='CorrespondenceAccuracy')]
test_cfg = dict(type='TestLoop')
