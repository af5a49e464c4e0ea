# Dense post-pretraining of a pretrained ViT (a converted timm / DINO
# checkpoint loaded by model.backbone.init_cfg=dict(type='Pretrained', ...)):
# AdamW at a tenth of the from-scratch learning rate (1.5e-5 per 256 images;
# adamw_coslr-100e.py has 1.5e-4), so the pretrained features are refined,
# not overwritten; a short linear warm-up (500 iterations) while the new,
# randomly initialised projection neck and queues settle; then a cosine to
# 1% of each parameter group's start (eta_min_ratio keeps the ratios of a
# layer-wise decay) at the last iteration of 10 epochs. Both schedulers
# count iterations and run together (mmengine multiplies them), as in
# adamw_coslr-4e.py: the cosine ends wherever training ends.
#
# Options (docs/get_started.md, "Start from a timm ViT"):
# - layer-wise learning-rate decay: block k (backbone.layers.k, 0-based) of
#   L gets lr * rate**(L - k), the stem (patch embedding, positions, CLS,
#   registers, pre_norm) lr * rate**(L + 1), the final norm, neck and head
#   the full lr; the key encoder has no gradients and no lr:
#     optim_wrapper = dict(
#         constructor='LearningRateDecayOptimWrapperConstructor',
#         paramwise_cfg=dict(layer_decay_rate=0.75))
# - frozen early blocks (the stem and the first N layers: no gradients, no
#   dropout, left out of the optimiser; the key encoder keeps them equal):
#     model = dict(backbone=dict(frozen_stages=N))
_base_ = './adamw_coslr-100e.py'

optim_wrapper = dict(
    optimizer=dict(lr=1.5e-5),
    # Registers (DINOv2 reg4 models) are prefix tokens like the CLS token.
    paramwise_cfg=dict(custom_keys={'reg_token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=500),
    # No `end`: mmengine ends it at the last iteration (T_max follows).
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False,
         begin=0),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10)
auto_scale_lr = dict(base_batch_size=256)
