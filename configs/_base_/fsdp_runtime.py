# Sharded data parallel: mmengine's FlexibleRunner with FSDPStrategy, for
# ViTs whose weights, gradients and AdamW state do not fit one GPU beside
# the activations under DDP (docs/distributed.md: when to use which, and
# the memory per GPU). Add it after a config's other bases.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        # An FSDP unit per transformer layer (its weights are all-gathered
        # for its forward and backward, then freed), and one per backbone
        # and per neck: the key encoder, a copy of both, is then sharded
        # exactly like the online encoder, and its EMA update averages the
        # local shards without gathering them (KeyEncoderEMA).
        auto_wrap_policy=dict(
            type='densevit.engine.utils.module_type_wrap_policy',
            module_types=[
                'mmpretrain.models.backbones.vision_transformer.'
                'TransformerEncoderLayer',
                'DenseViTBackbone',
                'DenseProjectionNeck',
            ]),
        # bf16 weights in forward and backward (all-gathers halved), fp32
        # gradient reduction and fp32 sharded master weights; buffers (the
        # memory queues) stay fp32. Dropped on a machine without a GPU.
        mixed_precision=dict(
            param_dtype='bfloat16',
            reduce_dtype='float32',
            buffer_dtype='float32'),
        # The EMA and the optimizer's paramwise_cfg work on the original
        # parameters (mmengine's default, stated because both rely on it).
        use_orig_params=True),
    # One checkpoint file gathered on rank 0 (CPU), as under DDP: resumable,
    # and read by tools/test.py, init_model and the converters.
    state_dict_cfg='full')
