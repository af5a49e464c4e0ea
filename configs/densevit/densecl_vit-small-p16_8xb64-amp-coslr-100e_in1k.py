# DenseCL's dense branch exactly, on a ViT-S/16 (the global branch embeds the
# CLS token where DenseCL pools the grid; the optimiser is the ViT's AdamW
# where DenseCL used SGD for ResNets): each view-1 patch matched over the
# whole view-2 grid by backbone cosine similarity (no geometric positive, no
# predictor), view 1 always the query, one dense queue key per image
# (normalize(mean of the raw key projections)), tau = 0.2, lambda = 0.5 after
# a global-only warm-up, and a constant key-encoder momentum of 0.001
# (mmengine's convention; MoCo's 0.999).
# tests/test_models/test_selfsup/test_densecl_equivalence.py checks its dense
# loss and queue key against mmpretrain's own DenseCL.
_base_ = './densevit_vit-small-p16_8xb64-amp-coslr-100e_in1k.py'

model = dict(
    dense_loss=dict(
        match_window=None, geometric_weight=0.0, enqueue='mean',
        temperature=0.2),
    predictor=None,
    global_loss=dict(temperature=0.2),
    loss_lambda=0.5,
    dense_warmup_iters=1000,
    symmetric_loss=False,
    momentum=0.001,
    end_momentum=None)
