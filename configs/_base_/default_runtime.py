# Generic runtime settings of every DenseViT config. The hooks that drive the
# algorithm (queues, key encoder, dense warm-up) come with the model base
# configs in models/; the probe hook with the dataset base configs.
# Names resolve in DenseViT's registries first, so the schedules'
# train_cfg=dict(type='EpochBasedTrainLoop') builds DenseViT's loop, which
# resumes a checkpoint saved mid-epoch after its last trained batch
# (densevit.engine.compat.ResumableEpochBasedTrainLoop).
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

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
# DenseVisualizer adds feature-PCA, correspondence and curve pictures; add
# dict(type='TensorboardVisBackend') (pip install tensorboard) for TensorBoard.
visualizer = dict(type='DenseVisualizer', vis_backends=vis_backends)

log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
