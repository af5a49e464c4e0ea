default_scope = 'densevit'

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # CheckpointHook that writes via a temporary file + rename: a crash while
    # saving never leaves a truncated checkpoint behind.
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# The DenseViT training machinery. Each hook's docstring says when it runs.
custom_hooks = [
    dict(type='QueueUpdateHook'),
    # The momentum schedule is the model's (model.momentum/end_momentum).
    dict(type='MomentumUpdateHook'),
    dict(type='LossWeightWarmupHook', warmup_iters=1000),
    dict(type='TrainStateHook'),
    dict(type='NonFiniteLossHook'),
    # k-NN and linear-probe top-1 of frozen CLS features (with their chance
    # level) on the `probe_dataloader` split every dataset base config
    # defines: the metrics tools/test.py runs, under the same names.
    dict(
        type='ProbeHook',
        dataloader='probe_dataloader',
        evaluator=[dict(type='KNNAccuracy'),
                   dict(type='LinearProbeAccuracy')],
        interval=10),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# Under DDP: every rank's queues are identical already (keys are all-gathered
# before each enqueue) and a ViT has no BatchNorm statistics, so broadcasting
# buffers each step would only copy 2 x 32 MB of queue from rank 0.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', broadcast_buffers=False)

vis_backends = [dict(type='LocalVisBackend')]
# DenseVisualizer adds feature-PCA, correspondence and curve pictures; add
# dict(type='TensorboardVisBackend') (pip install tensorboard) for TensorBoard.
visualizer = dict(type='DenseVisualizer', vis_backends=vis_backends)

log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
