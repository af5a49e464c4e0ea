# SyntheticShapes at 64 px (an 8x8 grid with the demo's 8-px patches):
# generated in memory, no files needed. Train on seed 0; the probe split uses another seed.
_base_ = ['./two_view_pipeline.py']

dataset_type = 'SyntheticShapes'
img_size = 64
num_classes = 6

train_pipeline = [
    dict(_base_.two_view_crop, size=img_size),
    _base_.view_augs,
    _base_.pack_inputs,
]

train_dataloader = dict(
    _base_.train_loader_defaults,
    batch_size=32,
    dataset=dict(
        type=dataset_type,
        num_samples=8192,
        img_size=img_size,
        num_classes=num_classes,
        seed=0,
        pipeline=train_pipeline))

# Two views of a held-out image: crops and flips only, so the ground-truth
# correspondence is exact; masks and labels are packed too. The probe
# metrics (linear, k-NN, dense probe) use the first view.
two_view_test_pipeline = [
    dict(_base_.two_view_test_crop, size=img_size),
    dict(type='PackDenseInputs'),
]

# tools/test.py: correspondence accuracy, dense probe, in-context
# (nearest-neighbour) segmentation, k-NN and linear probe on 1,024 held-out
# images (the metrics that fit or retrieve use a seeded half and score the
# other half).
test_dataloader = dict(
    _base_.eval_loader_defaults,
    dataset=dict(
        type=dataset_type,
        num_samples=1024,
        img_size=img_size,
        num_classes=num_classes,
        seed=3,
        test_mode=True,
        pipeline=two_view_test_pipeline))
test_evaluator = [
    dict(type='CorrespondenceAccuracy'),
    dict(type='DenseProbe', num_classes=num_classes + 1),
    # A memory of 8,192 of the 32,768 fit patches: a third of the retrieval
    # time, so the demo's probes stay cheap on 2 CPU cores.
    dict(
        type='InContextSegmentation',
        num_classes=num_classes + 1,
        memory_size=8192),
    dict(type='KNNAccuracy', num_classes=num_classes),
    dict(type='LinearProbeAccuracy', num_classes=num_classes),
]
test_cfg = dict(type='TestLoop')

# ProbeHook's split during training: the test metrics on other held-out
# images (another seed). A config turns it on with
#   custom_hooks = [*_base_.custom_hooks, _base_.probe_hook]
probe_dataloader = dict(
    test_dataloader, dataset=dict(test_dataloader['dataset'], seed=4))
probe_hook = dict(
    type='ProbeHook',
    dataloader='probe_dataloader',
    evaluator='test_evaluator',
    interval=2)
