# Joint mode: ImageNet labels train a linear head on the CLS token while the
# patch tokens learn by dense contrast (the global contrastive term stays).
_base_ = './densevit_vit-small-p16_8xb64-amp-coslr-100e_in1k.py'

model = dict(
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    cls_loss_weight=1.0)
