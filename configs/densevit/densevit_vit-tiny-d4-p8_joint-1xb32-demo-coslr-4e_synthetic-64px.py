# The demo in DenseViT's dual-path (joint) mode: SyntheticShapes' labels
# train a linear head on the CLS token while the patch tokens learn by dense
# contrast (and the CLS embedding by the global contrastive term).
# tools/test.py adds the head's accuracy to the self-supervised demo's
# metrics.
_base_ = './densevit_vit-tiny-d4-p8_1xb32-demo-coslr-4e_synthetic-64px.py'

model = dict(head=dict(type='LinearClsHead', num_classes=_base_.num_classes))
# The supervised head learns from scratch in 768 steps: at the
# self-supervised demo's 5e-5 it barely moves, so it alone gets 10x.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.0)}))
test_evaluator = [dict(type='Accuracy', topk=(1, )), *_base_.test_evaluator]
