import logging
import uuid

import pytest
import torch
from mmengine.logging import MessageHub
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


def total_loss(losses):
    # mmengine's rule: only the keys naming a loss add up.
    return sum(v for k, v in losses.items() if 'loss' in k)


def labelled(batch=4, num_classes=3):
    return [DataSample().set_gt_label(i % num_classes) for i in range(batch)]


def test_key_encoder_starts_equal_and_gets_no_gradient(tiny_model_cfg):
    model = build(tiny_model_cfg)
    for online, key in zip(model.backbone.parameters(),
                           model.key_backbone.parameters()):
        assert torch.equal(online, key) and not key.requires_grad
    losses = model(two_views(), mode='loss')
    assert set(losses) == {'loss_global', 'loss_dense', 'dims_cls',
                           'dims_dense'}
    total_loss(losses).backward()
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
    # The warm-up's scale multiplies λ; λ itself is untouched.
    model.dense_weight_scale = 0.0
    warmup = model(views, mode='loss')
    assert model.current_loss_lambda == 0.0 and model.loss_lambda == 0.25
    assert warmup['loss_dense'].item() == 0.0
    torch.testing.assert_close(warmup['loss_global'],
                               mixed['loss_global'] / 0.75)


def with_max_iters(max_iters):
    """A current MessageHub with the run length, as a Runner's."""
    MessageHub.get_instance(f'test_densevit_{uuid.uuid4().hex}').update_info(
        'max_iters', max_iters)


def test_momentum_update_is_exact_ema(tiny_model_cfg):
    # mmengine's convention: momentum 0.01 takes 1% of the online weights.
    model = build(tiny_model_cfg)
    with torch.no_grad():
        for p in [*model.backbone.parameters(), *model.neck.parameters()]:
            p.add_(1.0)
    old_key = [p.clone() for p in model.key_encoder.parameters()]
    online = [p.clone() for p in [*model.backbone.parameters(),
                                  *model.neck.parameters()]]
    model.momentum_update()
    model.momentum_update()
    for new, old, src in zip(model.key_encoder.parameters(), old_key,
                             online):
        torch.testing.assert_close(new, src + 0.99**2 * (old - src))


def test_cosine_momentum_from_the_model_config(tiny_model_cfg):
    tiny_model_cfg.update(momentum=0.2, end_momentum=0.0)
    model = build(tiny_model_cfg)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    old_key = [p.clone() for p in model.key_backbone.parameters()]
    with_max_iters(4)
    model.momentum_update(step=2)  # half way: m = 0.2 / 2
    for new, old, src in zip(model.key_backbone.parameters(), old_key,
                             model.backbone.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * src)


def test_key_encoder_state_dict_names(tiny_model_cfg):
    state = build(tiny_model_cfg).state_dict()
    assert 'key_encoder.steps' in state
    key = {k for k in state if k.startswith('key_encoder.module.')}
    online = {k for k in state if k.startswith(('backbone.', 'neck.'))}
    assert key == {f'key_encoder.module.{k}' for k in online}
    # The key_backbone / key_neck views add no second copy.
    assert not any(k.startswith(('key_backbone', 'key_neck')) for k in state)


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
        total = total_loss(losses)
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
    assert set(losses) == {'loss_global', 'loss_dense', 'loss_cls',
                           'dims_cls', 'dims_dense'}
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
    (lambda c: c.update(momentum=-0.1), 'share of the online'),
    (lambda c: c.update(momentum=1.0), 'share of the online'),
    (lambda c: c.update(end_momentum=0.5), 'end_momentum'),
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
    # Local crops: one size among themselves, the views' batch size.
    with pytest.raises(ValueError, match='one `local_size`'):
        model([v1, v2, torch.randn(4, 3, 16, 16), torch.randn(4, 3, 8, 8)],
              mode='loss')
    with pytest.raises(ValueError, match='one `local_size`'):
        model([v1, v2, torch.randn(3, 3, 16, 16)], mode='loss')


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


@pytest.mark.parametrize('joint,cosine', [(False, False), (True, True)])
def test_training_step_reads_nothing_back_to_the_host(tiny_model_cfg, joint,
                                                      cosine):
    # The hot path: forward, backward, optimiser step, queue update and EMA,
    # as the hooks run them. Twice, so the second step runs with a queue
    # pointer that the first one moved.
    if joint:
        tiny_model_cfg['head'] = dict(
            type='LinearClsHead', num_classes=3, in_channels=32)
    if cosine:
        tiny_model_cfg['end_momentum'] = 0.0
        with_max_iters(2)
    model = build(tiny_model_cfg)
    model.driving_hooks.update(model.REQUIRED_HOOKS)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=0.03, momentum=0.9, weight_decay=1e-4)
    views = two_views(batch=4)
    samples = labelled(batch=4) if joint else None
    with _NoHostReads():
        for step in (1, 2):
            losses = model(views, samples, mode='loss')
            loss, _ = model.parse_losses(losses)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model.update_queues()
            model.momentum_update(step)
    assert int(model.dense_loss.queue.ptr) == 8
    assert int(model.key_encoder.steps) == 2


def test_runner_step_without_the_driving_hooks_fails(tiny_model_cfg):
    model = build(tiny_model_cfg)
    losses = model(two_views(), mode='loss')  # direct calls: no check
    model.driving_hooks.add('MomentumUpdateHook')
    with pytest.raises(ValueError, match=r"without QueueUpdateHook.*"
                       r"add dict\(type='QueueUpdateHook'\) to custom_hooks"):
        model.parse_losses(losses)
    model.driving_hooks.clear()
    with pytest.raises(ValueError, match='QueueUpdateHook and '
                       'MomentumUpdateHook'):
        model.parse_losses(losses)
    model.driving_hooks.update(model.REQUIRED_HOOKS)
    loss, _ = model.parse_losses(losses)
    torch.testing.assert_close(loss, total_loss(losses))


@pytest.mark.parametrize(
    'warmup', [dict(dense_warmup_iters=5),
               dict(geometric_warmup_iters=5)])
def test_a_warmup_needs_its_hook(tiny_model_cfg, warmup):
    tiny_model_cfg['dense_loss']['match_window'] = 1
    model = build(dict(tiny_model_cfg, **warmup))
    losses = model(two_views(), geometry_samples(), mode='loss')
    model.driving_hooks.update(model.REQUIRED_HOOKS)
    with pytest.raises(ValueError, match="LossWeightWarmupHook"):
        model.parse_losses(losses)
    model.driving_hooks.add('LossWeightWarmupHook')
    model.parse_losses(losses)


@pytest.mark.parametrize('bad', [-1, 2.5, True])
def test_bad_dense_warmup_iters(tiny_model_cfg, bad):
    with pytest.raises(ValueError, match='dense_warmup_iters'):
        build(dict(tiny_model_cfg, dense_warmup_iters=bad))


def test_channel_counts_are_derived_from_the_module_that_defines_them(
        tiny_model_cfg):
    del tiny_model_cfg['neck']['in_channels']
    del tiny_model_cfg['dense_loss']['feat_dim']
    del tiny_model_cfg['global_loss']['feat_dim']
    tiny_model_cfg['head'] = dict(type='LinearClsHead', num_classes=3)
    model = build(tiny_model_cfg)
    assert model.neck.in_channels == 32  # the backbone's embed_dims
    assert model.head.in_channels == 32
    assert model.dense_loss.feat_dim == model.global_loss.feat_dim == 16


def geometry_samples(batch=4):
    samples = []
    for i in range(batch):
        sample = DataSample()
        sample.set_metainfo(dict(
            view_boxes=torch.tensor([[0., 0., 32., 32.],
                                     [16. * (i % 2), 0., 32., 32.]]),
            view_flips=torch.tensor([False, bool(i % 3 == 0)])))
        samples.append(sample)
    return samples


@pytest.mark.parametrize('symmetric', [False, True])
def test_match_window_uses_the_recorded_geometry(tiny_model_cfg, symmetric):
    tiny_model_cfg['dense_loss']['match_window'] = 0
    model = build(dict(tiny_model_cfg, symmetric_loss=symmetric))
    samples = geometry_samples()
    boxes, flips = model._view_geometry(samples, torch.device('cpu'))
    assert boxes.shape == (4, 2, 4) and flips.shape == (4, 2)
    seen = []
    original = model.dense_loss.forward

    def record(*args):
        seen.append(args[4])
        return original(*args)

    model.dense_loss.forward = record
    model(two_views(), samples, mode='loss')
    geometry = seen[0]
    expected = (boxes, flips)
    if symmetric:
        # The second half of the batch has the views swapped.
        expected = (torch.cat([boxes, boxes.flip(1)]),
                    torch.cat([flips, flips.flip(1)]))
    for got, want in zip(geometry, expected):
        assert torch.equal(got, want)


def test_geometric_only_is_the_geometric_positive_alone(tiny_model_cfg):
    # What LossWeightWarmupHook switches on during geometric_warmup_iters:
    # exactly the loss of match_window=0 (the crop geometry's cell).
    def dense_loss(window, geometric_only):
        tiny_model_cfg['dense_loss']['match_window'] = window
        torch.manual_seed(0)
        model = build(dict(tiny_model_cfg, geometric_warmup_iters=3))
        model.dense_loss.geometric_only = geometric_only
        torch.manual_seed(1)
        return model(two_views(), geometry_samples(), mode='loss')[
            'loss_dense']

    geometric = dense_loss(0, False)
    torch.testing.assert_close(dense_loss(1, True), geometric)
    assert not torch.allclose(dense_loss(1, False), geometric)


def test_a_geometric_warmup_needs_the_geometry(tiny_model_cfg):
    tiny_model_cfg['dense_loss']['match_window'] = None
    with pytest.raises(ValueError, match='match_window'):
        build(dict(tiny_model_cfg, geometric_warmup_iters=5))


@pytest.mark.parametrize('bad', [-1, 2.5, True])
def test_bad_geometric_warmup_iters(tiny_model_cfg, bad):
    tiny_model_cfg['dense_loss']['match_window'] = 1
    with pytest.raises(ValueError, match='geometric_warmup_iters'):
        build(dict(tiny_model_cfg, geometric_warmup_iters=bad))


def test_match_window_without_geometry_warns_once_and_trains(
        tiny_model_cfg, caplog):
    from mmengine.logging import MMLogger
    tiny_model_cfg['dense_loss']['match_window'] = 1
    model = build(tiny_model_cfg)
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        for _ in range(2):
            losses = model(two_views(), None, mode='loss')
            assert torch.isfinite(losses['loss_dense'])
    finally:
        logger.removeHandler(handler)
    warnings = [m for m in messages if 'view_boxes' in m]
    assert len(warnings) == 1 and 'TwoViewCrop' in warnings[0]


def test_checkpoints_of_the_earlier_key_encoder_layout_load(tiny_model_cfg):
    source = build(tiny_model_cfg)
    with torch.no_grad():
        for param in source.key_encoder.parameters():
            param.add_(1.0)
    old = {}
    for key, value in source.state_dict().items():
        for new, was in (('key_encoder.module.backbone.', 'key_backbone.'),
                         ('key_encoder.module.neck.', 'key_neck.')):
            if key.startswith(new):
                key = was + key[len(new):]
        if key != 'key_encoder.steps':
            old[key] = value
    target = build(tiny_model_cfg)
    with torch.no_grad():
        target.key_encoder.steps.fill_(7)
    # Strict: the step count the earlier layout lacks is supplied (0).
    target.load_state_dict(old, strict=True)
    assert int(target.key_encoder.steps) == 0
    for a, b in zip(source.key_encoder.parameters(),
                    target.key_encoder.parameters()):
        assert torch.equal(a, b)


def test_momentum_update_moves_the_key_neck_by_the_formula(tiny_model_cfg):
    # The key encoder is an EMA of backbone AND neck; the loss reads the
    # neck through `key_neck`. Name by name, with a momentum other than the
    # default: key_neck = (1 - m) * key_neck + m * neck.
    tiny_model_cfg.update(momentum=0.3)
    model = build(tiny_model_cfg)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in [*model.neck.parameters(), *model.key_neck.parameters()]:
            p.add_(torch.randn(p.shape, generator=generator))
    online = {n: p.clone() for n, p in model.neck.named_parameters()}
    key = {n: p.clone() for n, p in model.key_neck.named_parameters()}
    assert online.keys() == key.keys() and len(online) == 8
    model.momentum_update()
    updated = dict(model.key_neck.named_parameters())
    for name in online:
        assert not torch.equal(key[name], online[name])
        torch.testing.assert_close(updated[name],
                                   0.7 * key[name] + 0.3 * online[name])
    for name, p in model.neck.named_parameters():
        assert torch.equal(p, online[name])  # the online neck is untouched


def test_loss_weights_are_one_minus_lambda_and_lambda(tiny_model_cfg):
    # loss_global = (1 - λ) * InfoNCE(q, k, queue) and loss_dense = λ * the
    # dense loss, with the InfoNCE materialised here from the encoders'
    # outputs (λ = 0.3, so neither weight is the other's).
    import torch.nn.functional as F

    from densevit.models.losses import info_nce_reference
    tiny_model_cfg.update(loss_lambda=0.3)
    model = build(tiny_model_cfg)
    view_q, view_k = two_views()
    losses = model([view_q, view_k], mode='loss')
    with torch.no_grad():
        q_cls, q_patches = model.backbone(view_q)
        q_global, q_dense = model.neck((q_cls, q_patches))
        k_cls, k_patches = model.key_backbone(view_k)
        k_global, k_dense = model.key_neck((k_cls, k_patches))
        direct_global = info_nce_reference(
            F.normalize(q_global, dim=1), F.normalize(k_global, dim=1),
            model.global_loss.queue.keys, model.global_loss.temperature)
        direct_dense = model.dense_loss(q_dense, k_dense, q_patches,
                                        k_patches)
    torch.testing.assert_close(losses['loss_global'].detach(),
                               0.7 * direct_global)
    torch.testing.assert_close(losses['loss_dense'].detach(),
                               0.3 * direct_dense)


def test_predictor_sits_on_the_query_path_only(tiny_model_cfg):
    tiny_model_cfg['predictor'] = dict(type='DenseProjectionNeck',
                                       hid_channels=32)
    model = build(tiny_model_cfg)
    assert (model.predictor.in_channels, model.predictor.out_channels) == \
        (16, 16)  # the neck's out_channels, derived
    views = two_views()
    losses = model(views, mode='loss')
    total_loss(losses).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.predictor.parameters())
    # The key encoder copies backbone + neck, never the predictor.
    assert not any('predictor' in name
                   for name in model.key_encoder.state_dict())

    # The losses compare predictor(neck(view 1)) with neck(view 2): an
    # identity predictor (relu(x) - relu(-x) = x) gives exactly the losses
    # of the same model without one.
    plain = build(dict(tiny_model_cfg, predictor=None))
    plain.load_state_dict(model.state_dict(), strict=False)
    eye = torch.eye(16)
    with torch.no_grad():
        for mlp in (model.predictor.global_mlp, model.predictor.dense_mlp):
            mlp[0].weight.copy_(torch.cat([eye, -eye]))
            mlp[2].weight.copy_(torch.cat([eye, -eye], dim=1))
            mlp[0].bias.zero_()
            mlp[2].bias.zero_()
    with_identity = model(views, mode='loss')
    without = plain(views, mode='loss')
    for name in ('loss_global', 'loss_dense'):
        torch.testing.assert_close(with_identity[name], without[name])
    with torch.no_grad():  # the query's channels reversed: another loss
        model.predictor.dense_mlp[2].weight.copy_(
            model.predictor.dense_mlp[2].weight.flip(0))
    assert not torch.allclose(model(views, mode='loss')['loss_dense'],
                              without['loss_dense'])

    # Features handed out are the neck's, with or without a predictor.
    for a, b in zip(model(views[0], mode='tensor'),
                    plain(views[0], mode='tensor')):
        torch.testing.assert_close(a, b)


def test_predictor_must_map_the_neck_output_to_itself(tiny_model_cfg):
    tiny_model_cfg['predictor'] = dict(type='DenseProjectionNeck',
                                       hid_channels=24, out_channels=8)
    with pytest.raises(ValueError, match='predictor.out_channels'):
        MODELS.build(tiny_model_cfg)


def multicrop_views_and_samples(batch=4):
    """Views 1 and 2 of 32 px and two local crops of 16 px, with boxes that
    put every query patch inside both views."""
    generator = torch.Generator().manual_seed(3)
    views = [torch.randn(batch, 3, size, size, generator=generator)
             for size in (32, 32, 16, 16)]
    samples = []
    for i in range(batch):
        sample = DataSample()
        sample.set_metainfo(dict(
            view_boxes=torch.tensor([[0., 0., 32., 32.], [0., 0., 32., 32.],
                                     [0., 0., 16., 16.],
                                     [8. * (i % 2), 8., 24., 24.]]),
            view_flips=torch.tensor([False, True, bool(i % 2), False])))
        samples.append(sample)
    return views, samples


@pytest.mark.parametrize('symmetric', [False, True])
def test_local_crops_are_more_query_views_of_the_same_keys(tiny_model_cfg,
                                                           symmetric):
    tiny_model_cfg['backbone']['patch_size'] = 8  # 4x4 views, 2x2 locals
    tiny_model_cfg['dense_loss'].update(match_window=1, geometric_weight=0.5)
    tiny_model_cfg['predictor'] = dict(type='DenseProjectionNeck',
                                       hid_channels=32)
    model = build(dict(tiny_model_cfg, symmetric_loss=symmetric))
    views, samples = multicrop_views_and_samples()
    losses = model(views, samples, mode='loss')

    # The reference: each (query view, key view) pair through the model's
    # own modules one at a time, every pair counting once.
    boxes, flips = model._view_geometry(samples, torch.device('cpu'))
    keys = (1, 0) if symmetric else (1, )
    pairs = [(query, key) for query in (0, 2, 3) for key in keys
             if query != key]
    global_losses, dense_losses = [], []
    for query, key in pairs:
        _, q_patches, q_global, q_dense = model._encode(views[query])
        q_global, q_dense = model.predictor((q_global, q_dense))
        with torch.no_grad():
            k_cls, k_patches = model.key_backbone(views[key])
            k_global, k_dense = model.key_neck((k_cls, k_patches))
        global_losses.append(model.global_loss(q_global, k_global))
        dense_losses.append(model.dense_loss(
            q_dense, k_dense, q_patches, k_patches,
            (boxes[:, [query, key]], flips[:, [query, key]])))
    if symmetric:  # view 2 is a query of view 1's key too
        _, q_patches, q_global, q_dense = model._encode(views[1])
        q_global, q_dense = model.predictor((q_global, q_dense))
        with torch.no_grad():
            k_cls, k_patches = model.key_backbone(views[0])
            k_global, k_dense = model.key_neck((k_cls, k_patches))
        global_losses.append(model.global_loss(q_global, k_global))
        dense_losses.append(model.dense_loss(
            q_dense, k_dense, q_patches, k_patches,
            (boxes[:, [1, 0]], flips[:, [1, 0]])))
    torch.testing.assert_close(
        losses['loss_global'], 0.5 * torch.stack(global_losses).mean())
    torch.testing.assert_close(
        losses['loss_dense'], 0.5 * torch.stack(dense_losses).mean())

    # The collapse signals watch view 1 alone.
    two_view = model(views[:2], samples, mode='loss')
    for name in ('dims_cls', 'dims_dense'):
        torch.testing.assert_close(losses[name], two_view[name])
    assert not torch.allclose(losses['loss_global'], two_view['loss_global'])
    # The local crops train the online encoder.
    total_loss(losses).backward()
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0
