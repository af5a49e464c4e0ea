# The demo's schedule: AdamW with a cosine from the first to the last
# iteration of 4 epochs, times a linear warm-up over the first 200
# iterations (mmengine chains schedulers that run together). Both count
# iterations and the cosine ends wherever training ends, so the schedule
# stays whole when the dataset, max_epochs or the number of steps changes,
# even below 200 steps.
_base_ = './adamw_coslr-100e.py'

# 5e-5 at batch 32 (docs/evaluation.md: on a small photo folder 5e-4 and
# 1.5e-4 lose more of what random features hold than they add).
optim_wrapper = dict(optimizer=dict(lr=5e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=200),
    # No `end`: mmengine ends it at the last iteration (T_max follows).
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=4)
auto_scale_lr = dict(base_batch_size=32)
