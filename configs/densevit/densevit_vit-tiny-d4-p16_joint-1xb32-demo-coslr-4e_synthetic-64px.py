# The demo, in DenseViT's dual-path (joint) mode: SyntheticShapes' labels
# train a linear head on the CLS token, while the patch tokens learn by dense
# contrast (and the CLS embedding by the global contrastive term). A 2-core
# CPU trains the 4-layer ViT-tiny in about 6 minutes; tools/test.py then reports classification
# accuracy, linear-probe and k-NN top-1, correspondence accuracy and
# dense-probe mIoU.
_base_ = './densevit_vit-tiny-d4-p16_1xb32-demo-coslr-4e_synthetic-64px.py'

model = dict(
    head=dict(
        type='LinearClsHead',
        num_classes=6,
        in_channels=192,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    cls_loss_weight=1.0)

test_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='CorrespondenceAccuracy'),
    dict(type='DenseProbe', num_classes=7),
    dict(type='KNNAccuracy', num_classes=6),
    dict(type='LinearProbeAccuracy', num_classes=6),
]
