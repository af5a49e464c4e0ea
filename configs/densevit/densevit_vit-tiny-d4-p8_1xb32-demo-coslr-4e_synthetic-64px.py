# Self-supervised demo: the 4-layer ViT-tiny with an 8x8 patch grid on 64-px
# SyntheticShapes, on a 2-core CPU in minutes, probed as it trains and
# evaluated by tools/test.py (correspondence accuracy, dense-probe and
# in-context mIoU, k-NN and linear-probe top-1, each beside its baseline).
# For a folder of your own photos, see ..._folder-64px.py.
_base_ = [
    '../_base_/models/densevit_vit-tiny-d4-p8.py',
    '../_base_/datasets/synthetic_shapes_64px.py',
    '../_base_/schedules/adamw_coslr-4e.py',
    '../_base_/default_runtime.py',
]

# 4 epochs of 6,144 images generated from their index (768 steps: README's
# first command, train and test, stays under 10 minutes on 2 CPU cores at
# about 0.5 s per step; docs/evaluation.md has what a larger budget gives).
train_dataloader = dict(dataset=dict(num_samples=6144))
custom_hooks = [*_base_.custom_hooks, _base_.probe_hook]
default_hooks = dict(logger=dict(interval=20))
