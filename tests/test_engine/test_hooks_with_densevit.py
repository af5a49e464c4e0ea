"""The engine hooks driving the real DenseViT model through a Runner."""
import copy
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from engine_toys import Crash, CrashAt

HOOKS = [
    dict(type='QueueUpdateHook'),
    dict(type='MomentumUpdateHook'),
    dict(type='LossWeightWarmupHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='TrainStateHook'),
]


class RecordLosses(Hook):
    """Records the total loss and lambda of every iteration (host floats)."""

    priority = 'LOW'

    def __init__(self) -> None:
        self.losses, self.lambdas = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.losses.append(runner.message_hub.get_scalar(
            'train/loss').current())
        self.lambdas.append(runner.model.current_loss_lambda)


def build(work_dir, model_cfg, extra_hooks=(), hooks=HOOKS, **kwargs):
    model_cfg = copy.deepcopy(model_cfg)
    # The cosine schedule of the base configs.
    model_cfg['end_momentum'] = 0.0
    model_cfg.setdefault('dense_warmup_iters', 2)
    model_cfg['backbone']['arch'] = dict(
        embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)
    pipeline = [
        dict(type='TwoViewCrop', size=32),
        dict(type='ViewwiseTransforms', transforms=[
            dict(type='RandomColorJitter', brightness=0.4, contrast=0.4,
                 saturation=0.4, hue=0.1, prob=0.8)
        ]),
        dict(type='PackDenseInputs'),
    ]
    return Runner(
        model=model_cfg,
        work_dir=str(work_dir),
        experiment_name=f'test_densevit_hooks_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=dict(type='SyntheticShapes', num_samples=6, img_size=32,
                         pipeline=pipeline),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(
            checkpoint=dict(type='AtomicCheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=list(hooks) + list(extra_hooks),
        randomness=dict(seed=0),
        default_scope='densevit',
        log_level='WARNING',
        **kwargs)


def test_densevit_trains_and_resumes_exactly(tiny_model_cfg, tmp_path):
    record = RecordLosses()
    straight = build(tmp_path / 'straight', tiny_model_cfg, [record])
    straight.train()
    model = straight.model
    # 4 iterations x batch 2 enqueued in both queues (length 64).
    assert int(model.global_loss.queue.ptr) == 8
    assert int(model.dense_loss.queue.ptr) == 8
    assert record.lambdas == [0.0, 0.0, 0.5, 0.5]
    # The key encoder started as a copy and now lags the online one.
    assert any(not torch.equal(key, online) for key, online in zip(
        model.key_backbone.parameters(), model.backbone.parameters()))
    checkpoint = torch.load(osp.join(tmp_path, 'straight', 'iter_4.pth'),
                            weights_only=True)
    assert len(checkpoint['rng_states']) == 1

    crashed = build(tmp_path / 'resumed', tiny_model_cfg, [CrashAt(2)])
    with pytest.raises(Crash):
        crashed.train()
    resumed_record = RecordLosses()
    resumed = build(tmp_path / 'resumed', tiny_model_cfg, [resumed_record],
                    resume=True)
    resumed.train()
    np.testing.assert_allclose(resumed_record.losses, record.losses[2:],
                               rtol=0, atol=1e-6)
    expected = straight.model.state_dict()
    actual = resumed.model.state_dict()
    for key in expected:  # online + key encoders, queues and pointers
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)


@pytest.mark.parametrize('missing', ['QueueUpdateHook', 'MomentumUpdateHook'])
def test_training_without_a_driving_hook_fails_at_the_first_step(
        tiny_model_cfg, tmp_path, missing):
    runner = build(tmp_path, tiny_model_cfg,
                   hooks=[h for h in HOOKS if h['type'] != missing])
    with pytest.raises(ValueError,
                       match=rf"without {missing}.*dict\(type='{missing}'\)"):
        runner.train()
    # Stopped before the optimizer stepped: the key encoder is still the
    # initial copy of the online one.
    model = runner.model
    for key, online in zip(model.key_encoder.module.parameters(),
                           [*model.backbone.parameters(),
                            *model.neck.parameters()]):
        assert torch.equal(key, online)


def test_compile_option_trains_to_the_same_losses(tiny_model_cfg, tmp_path):
    """`compile=...` in a config goes through torch.compile (dynamo traces
    the fused InfoNCE's autograd function) without changing the numbers."""
    eager, compiled = RecordLosses(), RecordLosses()
    build(tmp_path / 'eager', tiny_model_cfg, extra_hooks=[eager]).train()
    runner = build(tmp_path / 'compiled', tiny_model_cfg,
                   extra_hooks=[compiled], cfg=dict(compile=dict(
                       backend='eager')))
    runner.train()
    # mmengine swaps in the compiled train_step as an instance attribute.
    assert 'train_step' in vars(runner.model)
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-5)
