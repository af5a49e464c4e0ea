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
    # Two positives per view-1 patch, half the loss each: the most similar
    # view-2 patch (backbone cosine) within one cell of where the crop
    # geometry puts it, and the view-2 cell that holds it by the geometry
    # (PixPro / VADeR). Patches outside view 2 sit the dense loss out. On a
    # real-photo folder the geometric half is what made dense training beat
    # global-only on correspondence, on two seeds (docs/evaluation.md).
    dense_loss=dict(queue_len=1024, match_window=1, geometric_weight=0.5),
    # MoCo v3's predictor on the query path: on a real-photo folder it was
    # the one change that kept every frozen probe above random init on two
    # seeds (docs/evaluation.md, "Seed to seed").
    predictor=dict(type='DenseProjectionNeck', hid_channels=512),
    global_loss=dict(queue_len=1024),
    dense_warmup_iters=100,
    # A key encoder that follows the quickly changing online one of a short
    # run (mmengine's convention: 1% of the online weights per update).
    momentum=0.01)
