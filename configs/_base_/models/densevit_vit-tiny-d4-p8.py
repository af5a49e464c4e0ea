# The demo's DenseViT: a 4-layer ViT-tiny (192-d, 3 heads) with 8x8 patches,
# so a 64-px image has an 8x8 patch grid, small enough to train on a CPU in
# minutes. Queues of 1,024 keys: a short run fills them, and a small image
# folder does not hold an image's own earlier keys among its negatives. The
# recipe choices are measured in docs/evaluation.md.
_base_ = './densevit_vit-small-p16.py'

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=4, num_heads=3),
        img_size=64,
        patch_size=8),
    neck=dict(hid_channels=512),
    # The base's positives (argmax within one cell + the geometric cell, half
    # each) and predictor, at the demo's width.
    dense_loss=dict(queue_len=1024),
    predictor=dict(hid_channels=512),
    global_loss=dict(queue_len=1024),
    dense_warmup_iters=100,
    # A key encoder that follows the quickly changing online one of a short
    # run (mmengine's convention: 1% of the online weights per update).
    momentum=0.01)
