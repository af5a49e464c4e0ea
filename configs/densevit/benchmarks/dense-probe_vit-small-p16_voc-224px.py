# Dense-probe evaluation of a DenseViT ViT-S/16 checkpoint on a VOC-style
# segmentation folder (JPEGImages/ + SegmentationClass/, 255 = ignore):
#   python tools/test.py configs/densevit/benchmarks/dense-probe_vit-small-p16_voc-224px.py \
#       work_dirs/<run>/epoch_100.pth --cfg-options test_dataloader.dataset.data_root=data/VOC2012
# Frozen patch features of half the images fit a per-patch linear classifier
# (dense_probe/*) and form the memory bank of in-context nearest-neighbour
# segmentation (in_context/*, the Hummingbird protocol: k = 30, T = 0.02, no
# training); both score mIoU on the other half (on the 14x14 patch grid).
_base_ = ['../densevit_vit-small-p16_8xb64-amp-coslr-100e_in1k.py']

test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='SegmentationFolder',
        data_root='data/VOC2012',
        split='ImageSets/Segmentation/val.txt',
        pipeline=[
            dict(type='ResizeWithMask', size=224),
            dict(type='PackDenseInputs'),
        ]))
test_evaluator = [
    dict(type='DenseProbe', num_classes=21),
    dict(type='InContextSegmentation', num_classes=21),
]
test_cfg = dict(type='TestLoop')
