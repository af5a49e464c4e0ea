# Frozen-feature probes of a demo-model checkpoint on real photographs:
# labelled crops of the photos bundled with scikit-image (class = source
# photo); the probes fit on crops of the top 60% of each photo and are scored
# on crops of the bottom 40%, which they never saw. Write them with
#   python tools/dataset_converters/export_sample_photos.py data/sample_photo_crops --crops 80 --rows 0 0.6 --name-prefix fit_
#   python tools/dataset_converters/export_sample_photos.py data/sample_photo_crops --crops 40 --rows 0.6 1 --name-prefix score_ --seed 1
# then
#   python tools/test.py configs/densevit/benchmarks/demo-probe_sample-photo-crops-64px.py CKPT
# Linear probe and k-NN on the CLS token and on the mean patch feature.
_base_ = ['../densevit_vit-tiny-d4-p8_1xb32-demo-coslr-1600i_folder-64px.py']

test_dataloader = dict(
    _base_.eval_loader_defaults,
    dataset=dict(
        _delete_=True,
        type='DenseImageFolder',
        data_root='data/sample_photo_crops',
        with_label=True,
        test_mode=True,
        pipeline=[
            _base_.load_image,
            dict(type='ResizeWithMask', size=_base_.img_size),
            dict(type='PackDenseInputs'),
        ]))
probe = dict(fit_pattern='/fit_')
test_evaluator = [
    dict(type='LinearProbeAccuracy', **probe),
    dict(type='LinearProbeAccuracy', feature='mean_patch', **probe),
    dict(type='KNNAccuracy', **probe),
    dict(type='KNNAccuracy', feature='mean_patch', **probe),
]
