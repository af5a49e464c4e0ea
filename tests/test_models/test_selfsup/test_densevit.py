import pytest
import torch
from mmpretrain.structures import DataSample
from torch.overrides import TorchFunctionMode

from densevit.registry import MODELS


def build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def two_views(batch=4, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, size, size, generator=generator)
            for _ in range(2)]


def labelled(batch=4, num_classes=3):
    return [DataSample().set_gt_label(i % num_classes) for i in range(batch)]


def test_key_encoder_starts_equal_and_gets_no_gradient(tiny_model_cfg):
    model = build(tiny_model_cfg)
    for online, key in zip(model.backbone.parameters(),
                           model.key_backbone.parameters()):
        assert torch.equal(online, key) and not key.requires_grad
    losses = model(two_views(), mode='loss')
    assert set(losses) == {'loss_global', 'loss_dense'}
    sum(losses.values()).backward()
    online_grads = [p.grad for p in [*model.backbone.parameters(),
                                     *model.neck.parameters()]]
    assert all(g is not None for g in online_grads)
    assert sum(g.abs().sum() for g in online_grads) > 0
    assert all(p.grad is None for p in [*model.key_backbone.parameters(),
                                        *model.key_neck.parameters()])


def test_loss_weighting_by_lambda(tiny_model_cfg):
    model = build(tiny_model_cfg)
    views = two_views()
    model.loss_lambda = 1.0
    full_dense = model(views, mode='loss')
    model.loss_lambda = 0.25
    mixed = model(views, mode='loss')
    assert full_dense['loss_global'].item() == 0.0
    torch.testing.assert_close(mixed['loss_dense'],
                               full_dense['loss_dense'] * 0.25)


def test_momentum_update_is_exact_ema(tiny_model_cfg):
    model = build(tiny_model_cfg)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    old_key = [p.clone() for p in model.key_backbone.parameters()]
    online = [p.clone() for p in model.backbone.parameters()]
    model.momentum_update(0.9)
    for new, old, src in zip(model.key_backbone.parameters(), old_key,
                             online):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * src)
    model.momentum_update()  # base momentum 0.99 from the config
    first = next(model.key_backbone.parameters())
    expected = 0.99 * (0.9 * old_key[0] + 0.1 * online[0]) + 0.01 * online[0]
    torch.testing.assert_close(first, expected)


def test_update_queues_moves_both_pointers(tiny_model_cfg):
    model = build(tiny_model_cfg)
    model(two_views(batch=5), mode='loss')
    model.update_queues()
    assert int(model.global_loss.queue.ptr) == 5
    assert int(model.dense_loss.queue.ptr) == 5
    model.update_queues()  # nothing pending: no-op
    assert int(model.dense_loss.queue.ptr) == 5


def test_total_loss_falls_on_a_fixed_batch(tiny_model_cfg):
    torch.manual_seed(0)
    model = build(tiny_model_cfg)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    views = two_views(batch=8)
    totals = []
    for _ in range(30):
        losses = model(views, mode='loss')
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        # No queue update: with one fixed batch, the batch's own keys would
        # become its negatives and the task would get harder every step.
        model.momentum_update()
        totals.append(total.item())
    assert totals[-1] < 0.8 * totals[0], totals


def test_joint_mode_adds_classification(tiny_model_cfg):
    tiny_model_cfg['head'] = dict(
        type='LinearClsHead', num_classes=3, in_channels=32)
    model = build(tiny_model_cfg)
    losses = model(two_views(), labelled(), mode='loss')
    assert set(losses) == {'loss_global', 'loss_dense', 'loss_cls'}
    losses['loss_cls'].backward()
    assert model.head.fc.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='gt_label'):
        model(two_views(), [DataSample() for _ in range(4)], mode='loss')


def test_predict_and_tensor_outputs(tiny_model_cfg):
    tiny_model_cfg['head'] = dict(
        type='LinearClsHead', num_classes=3, in_channels=32)
    model = build(tiny_model_cfg).eval()
    views = two_views(batch=2, size=64)
    samples = model(views, labelled(2), mode='predict')
    sample = samples[0]
    assert sample.pred_score.shape == (3, )
    assert sample.cls_feats.shape == (32, )
    assert sample.patch_feats.shape == (32, 4, 4)
    assert sample.dense_feats.shape == (4, 4, 16)
    assert sample.pred_corr_backbone.shape == (16, )
    assert sample.patch_grid == (4, 4)
    expected = model.dense_loss.extract_correspondence(
        model.backbone(views[0])[1], model.backbone(views[1])[1])
    assert torch.equal(sample.pred_corr_backbone, expected[0])
    cls, patches, dense = model(views[0])
    assert cls.shape == (2, 32) and patches.shape == (2, 32, 4, 4)
    assert dense.shape == (2, 4, 4, 16)
    torch.testing.assert_close(dense[1], samples[1].dense_feats)
    single = model(views[0], mode='predict')
    assert 'pred_corr_backbone' not in single[0]


@pytest.mark.parametrize('change,match', [
    (lambda c: c['neck'].update(in_channels=48), 'neck.in_channels=48'),
    (lambda c: c['dense_loss'].update(feat_dim=8), 'dense_loss.feat_dim=8'),
    (lambda c: c['global_loss'].update(feat_dim=8), 'global_loss.feat_dim'),
    (lambda c: c.update(head=dict(type='LinearClsHead', num_classes=2,
                                  in_channels=16)), 'head.in_channels=16'),
    (lambda c: c.update(loss_lambda=1.5), 'loss_lambda'),
    (lambda c: c.update(momentum=-0.1), 'momentum'),
    (lambda c: c['backbone'].update(arch='gigantic'), 'Unknown'),
    (lambda c: c['dense_loss'].update(queue_len=0), 'queue_len'),
    (lambda c: c['dense_loss'].update(temperature=0), 'temperature'),
])
def test_bad_config_raises_at_build(tiny_model_cfg, change, match):
    change(tiny_model_cfg)
    with pytest.raises(ValueError, match=match):
        MODELS.build(tiny_model_cfg)


def test_bad_views_raise(tiny_model_cfg):
    model = build(tiny_model_cfg)
    v1, v2 = two_views()
    with pytest.raises(ValueError, match='2 views'):
        model([v1], mode='loss')
    with pytest.raises(ValueError, match='same batch size'):
        model([v1, v2[:3]], mode='loss')
    with pytest.raises(ValueError, match='same batch size'):
        model([v1, torch.randn(4, 3, 48, 48)], mode='loss')
    with pytest.raises(ValueError, match='Invalid mode'):
        model(v1, mode='features')


class _NoHostReads(TorchFunctionMode):
    """Fails on every way a tensor's value reaches Python: on a GPU each is
    a device->host sync that stalls the step."""
    READS = {
        torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.__int__,
        torch.Tensor.__float__, torch.Tensor.__index__, torch.Tensor.tolist,
        torch.Tensor.numpy, torch.Tensor.nonzero, torch.nonzero
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            raise AssertionError(f'host read in the hot path: {func}')
        return func(*args, **(kwargs or {}))


def test_no_host_reads_caught_by_the_guard():
    with pytest.raises(AssertionError, match='host read'):
        with _NoHostReads():
            if torch.ones(2).sum() > 0:
                pass


@pytest.mark.parametrize('joint', [False, True])
def test_training_step_reads_nothing_back_to_the_host(tiny_model_cfg, joint):
    # The hot path: forward, backward, optimiser step, queue update and EMA,
    # as the hooks run them. Twice, so the second step runs with a queue
    # pointer that the first one moved.
    if joint:
        tiny_model_cfg['head'] = dict(
            type='LinearClsHead', num_classes=3, in_channels=32)
    model = build(tiny_model_cfg)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=0.03, momentum=0.9, weight_decay=1e-4)
    views = two_views(batch=4)
    samples = labelled(batch=4) if joint else None
    with _NoHostReads():
        for _ in range(2):
            losses = model(views, samples, mode='loss')
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            model.update_queues()
            model.momentum_update()
    assert int(model.dense_loss.queue.ptr) == 8
