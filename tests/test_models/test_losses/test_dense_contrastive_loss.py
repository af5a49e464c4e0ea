import pytest
import torch
import torch.nn.functional as F

from densevit.models.losses import DenseContrastiveLoss, GlobalContrastiveLoss


def brute_force_correspondence(f1, f2):
    """(B, S, C) features -> argmax cosine, one pair at a time."""
    batch, num, _ = f1.shape
    out = torch.empty(batch, num, dtype=torch.long)
    for b in range(batch):
        for i in range(num):
            sims = [F.cosine_similarity(f1[b, i], f2[b, j], dim=0)
                    for j in range(num)]
            out[b, i] = int(torch.stack(sims).argmax())
    return out


def reference_dense_loss(q, k, qb, kb, queue, tau):
    """Float64 DenseCL loss on (B, S, D) tensors, written out per location."""
    q, k, qb, kb, queue = (t.double() for t in (q, k, qb, kb, queue))
    match = brute_force_correspondence(qb, kb)
    total, count = 0.0, 0
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            qi = F.normalize(q[b, i], dim=0)
            kpos = F.normalize(k[b, match[b, i]], dim=0)
            pos = torch.exp(qi @ kpos / tau)
            neg = torch.exp(queue @ qi / tau).sum()
            total = total - torch.log(pos / (pos + neg))
            count += 1
    return total / count


def test_extract_correspondence_equals_brute_force():
    torch.manual_seed(0)
    f1, f2 = torch.randn(3, 9, 5), torch.randn(3, 9, 5)
    match = DenseContrastiveLoss.extract_correspondence(f1, f2)
    assert match.dtype == torch.long and match.shape == (3, 9)
    assert torch.equal(match, brute_force_correspondence(f1, f2))
    # Same answer for the (B, C, H, W) layout.
    grid1 = f1.transpose(1, 2).reshape(3, 5, 3, 3)
    grid2 = f2.transpose(1, 2).reshape(3, 5, 3, 3)
    assert torch.equal(
        DenseContrastiveLoss.extract_correspondence(grid1, grid2), match)


def test_extract_correspondence_finds_a_permutation():
    torch.manual_seed(1)
    f2 = torch.randn(2, 16, 8)
    perm = torch.randperm(16)
    f1 = f2[:, perm] * 3.0  # scaled: cosine ignores the norm
    match = DenseContrastiveLoss.extract_correspondence(f1, f2)
    assert torch.equal(match, perm.expand(2, -1))


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('layout', ['bsd', 'bdhw'])
def test_loss_and_gradient_match_float64_reference(layout, batch):
    # batch 1 + (B, D, H, W): the flattened queries are a transposed view,
    # which once scrambled the CPU kernel's output and so the gradient.
    torch.manual_seed(2)
    h, w, dim, channels = 3, 3, 8, 6
    loss_fn = DenseContrastiveLoss(queue_len=50, feat_dim=dim,
                                   temperature=0.2)
    q = torch.randn(batch, h * w, dim, dtype=torch.float64)
    k = torch.randn(batch, h * w, dim)
    qb = torch.randn(batch, h * w, channels)
    kb = torch.randn(batch, h * w, channels)
    q.requires_grad_()
    expected = reference_dense_loss(q, k, qb, kb, loss_fn.queue.keys, 0.2)
    (expected_grad, ) = torch.autograd.grad(expected, q)

    def as_layout(x):
        if layout == 'bsd':
            return x
        # A contiguous (B, D, H, W) map, as a convolution or the neck makes.
        return x.transpose(1, 2).reshape(batch, x.shape[2], h, w).contiguous()

    q32 = q.detach().float().requires_grad_()
    loss = loss_fn(as_layout(q32), as_layout(k), as_layout(qb), as_layout(kb))
    loss.backward()
    assert abs(loss.item() - expected.item()) / expected.item() <= 1e-5
    assert ((q32.grad.double() - expected_grad).norm() /
            expected_grad.norm()).item() <= 1e-5


def test_forward_leaves_queue_and_exposes_mean_keys():
    torch.manual_seed(3)
    loss_fn = DenseContrastiveLoss(queue_len=20, feat_dim=4)
    before = loss_fn.queue.keys.clone()
    k = torch.randn(3, 5, 4)
    loss_fn(torch.randn(3, 5, 4), k, torch.randn(3, 5, 6),
            torch.randn(3, 5, 6))
    assert torch.equal(loss_fn.queue.keys, before)
    assert int(loss_fn.queue.ptr) == 0
    # DenseCL's definition (mmpretrain 1.2.0 `DenseCL.loss` enqueues its
    # neck's average-pooled, un-normalised grid, then normalises it).
    expected = F.normalize(k.mean(dim=1), dim=1)
    torch.testing.assert_close(loss_fn.pending_keys, expected)
    assert not torch.allclose(
        expected, F.normalize(F.normalize(k, dim=2).mean(dim=1), dim=1))
    loss_fn.update_queue()
    torch.testing.assert_close(loss_fn.queue.keys[:3], expected)
    assert int(loss_fn.queue.ptr) == 3 and loss_fn.pending_keys is None


def test_sample_mode_enqueues_per_location_keys():
    torch.manual_seed(4)
    loss_fn = DenseContrastiveLoss(queue_len=20, feat_dim=4,
                                   enqueue='sample', keys_per_image=2)
    k = torch.randn(3, 5, 4)
    loss_fn(torch.randn(3, 5, 4), k, torch.randn(3, 5, 6),
            torch.randn(3, 5, 6))
    keys = loss_fn.pending_keys
    assert keys.shape == (6, 4)
    candidates = F.normalize(k, dim=2)
    for row, image in zip(keys, [0, 0, 1, 1, 2, 2]):
        # Every sampled key is one of that image's own location keys.
        assert torch.isclose(candidates[image] @ row,
                             torch.tensor(1.0)).any()


def test_global_loss_matches_formula_and_exposes_keys():
    torch.manual_seed(5)
    loss_fn = GlobalContrastiveLoss(queue_len=30, feat_dim=8, temperature=0.1)
    q, k = torch.randn(4, 8), torch.randn(4, 8)
    qn, kn = F.normalize(q, dim=1).double(), F.normalize(k, dim=1).double()
    queue = loss_fn.queue.keys.double()
    pos = torch.exp((qn * kn).sum(1) / 0.1)
    neg = torch.exp(qn @ queue.T / 0.1).sum(1)
    expected = (-torch.log(pos / (pos + neg))).mean()
    loss = loss_fn(q, k)
    assert abs(loss.item() - expected.item()) / expected.item() <= 1e-5
    torch.testing.assert_close(loss_fn.pending_keys, F.normalize(k, dim=1))


@pytest.mark.parametrize('kwargs,match', [
    (dict(queue_len=0), 'queue_len'),
    (dict(queue_len=2.5), 'queue_len'),
    (dict(queue_len=True), 'queue_len'),
    (dict(feat_dim=0), 'feat_dim'),
    (dict(feat_dim=4.0), 'feat_dim'),
    (dict(temperature=0.0), 'temperature'),
    (dict(temperature=-0.1), 'temperature'),
    (dict(temperature='0.2'), 'temperature'),
    (dict(impl='triton'), 'impl'),
    (dict(enqueue='all'), 'enqueue'),
    (dict(keys_per_image=0), 'keys_per_image'),
])
@pytest.mark.parametrize('loss_type',
                         [DenseContrastiveLoss, GlobalContrastiveLoss])
def test_bad_config_raises(kwargs, match, loss_type):
    if loss_type is GlobalContrastiveLoss and match in ('enqueue',
                                                        'keys_per_image'):
        pytest.skip('a DenseContrastiveLoss setting')
    # The losses' constructors are the one place these values are checked
    # (MemoryQueue and info_nce take them as given), so the message names
    # the loss and the config field.
    with pytest.raises(ValueError, match=f'{loss_type.__name__} `{match}`'):
        loss_type(**kwargs)


def test_features_of_the_wrong_rank_raise():
    loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4)
    with pytest.raises(ValueError, match=r'\(B, S, C\)'):
        loss_fn(torch.randn(4, 4), torch.randn(4, 4), torch.randn(4, 6),
                torch.randn(4, 6))


def _maps(batch, channels, grid):
    return torch.randn(batch, channels, *grid)


def test_window_zero_on_identical_views_matches_each_patch_to_itself():
    torch.manual_seed(6)
    loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=0)
    boxes = torch.tensor([[[0., 0., 40., 40.], [0., 0., 40., 40.]]] * 2)
    flips = torch.tensor([[False, False], [True, True]])
    from densevit.models.utils.view_geometry import (locate_in_other_view,
                                                     window_mask)
    position, inside = locate_in_other_view(boxes, flips, (4, 4))
    assert inside.all()
    allowed = window_mask(position, (4, 4), 0)
    # Whatever the features say, the only allowed cell is the patch itself.
    match = loss_fn.extract_correspondence(
        _maps(2, 6, (4, 4)), _maps(2, 6, (4, 4)), allowed)
    assert torch.equal(match, torch.arange(16).expand(2, -1))


def test_window_loss_leaves_out_patches_outside_view_two():
    torch.manual_seed(7)
    loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1)
    # View 2 is the right half of view 1: view-1 columns 0-1 have no
    # counterpart.
    boxes = torch.tensor([[[0., 0., 40., 40.], [20., 0., 40., 40.]]])
    flips = torch.tensor([[False, False]])
    q, k = _maps(1, 4, (4, 4)), _maps(1, 4, (4, 4))
    qb, kb = _maps(1, 6, (4, 4)), _maps(1, 6, (4, 4))
    loss = loss_fn(q, k, qb, kb, (boxes, flips))
    from densevit.models.utils.view_geometry import (locate_in_other_view,
                                                     window_mask)
    position, inside = locate_in_other_view(boxes, flips, (4, 4))
    assert inside.reshape(4, 4)[:, 2:].all() and not inside.reshape(
        4, 4)[:, :2].any()
    match = loss_fn.extract_correspondence(
        qb, kb, window_mask(position, (4, 4), 1))
    per_patch = reference_per_patch_losses(q, k, match, loss_fn)
    expected = per_patch[inside[0]].mean()
    assert abs(loss.item() - expected.item()) <= 1e-5


def reference_per_patch_losses(q, k, match, loss_fn):
    qn = F.normalize(q.flatten(2).transpose(1, 2)[0].double(), dim=1)
    kn = F.normalize(k.flatten(2).transpose(1, 2)[0].double(), dim=1)
    queue = loss_fn.queue.keys.double()
    tau = loss_fn.temperature
    pos = torch.exp((qn * kn[match[0]]).sum(1) / tau)
    neg = torch.exp(qn @ queue.T / tau).sum(1)
    return -torch.log(pos / (pos + neg))


def test_window_without_geometry_matches_over_the_whole_grid():
    torch.manual_seed(8)
    maps = [_maps(1, 4, (2, 2)) for _ in range(2)] + \
        [_maps(1, 6, (2, 2)) for _ in range(2)]
    windowed = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1)
    whole = DenseContrastiveLoss(queue_len=8, feat_dim=4)
    whole.queue.keys.copy_(windowed.queue.keys)
    assert windowed(*maps) == whole(*maps)


@pytest.mark.parametrize('bad', [-1, 1.5, True])
def test_bad_match_window_raises(bad):
    with pytest.raises(ValueError, match='match_window'):
        DenseContrastiveLoss(match_window=bad)


def test_window_mean_counts_patches_in_float32_under_bfloat16():
    # 17 x 17 = 289 patches, all inside view 2: a bf16 count would be 288.
    torch.manual_seed(9)
    maps = [_maps(1, 4, (17, 17)).bfloat16() for _ in range(2)] + \
        [_maps(1, 6, (17, 17)) for _ in range(2)]
    boxes = torch.tensor([[[0., 0., 68., 68.], [0., 0., 68., 68.]]])
    flips = torch.tensor([[False, False]])
    windowed = DenseContrastiveLoss(queue_len=8, feat_dim=4,
                                    match_window=16)
    whole = DenseContrastiveLoss(queue_len=8, feat_dim=4)
    whole.queue.keys.copy_(windowed.queue.keys)
    torch.testing.assert_close(
        windowed(*maps, (boxes, flips)), whole(*maps), rtol=1e-4, atol=0)


def test_window_needs_feature_maps():
    loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1)
    boxes = torch.tensor([[[0., 0., 8., 8.], [0., 0., 8., 8.]]])
    with pytest.raises(ValueError, match=r'\(B, D, H, W\)'):
        loss_fn(torch.randn(1, 4, 4), torch.randn(1, 4, 4),
                torch.randn(1, 4, 6), torch.randn(1, 4, 6),
                (boxes, torch.tensor([[False, False]])))


def test_intra_negatives_add_far_cells_of_the_same_image_to_the_softmax():
    torch.manual_seed(10)
    loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1,
                                   intra_negatives=1)
    # View 2 is the right half of view 1 (columns 2-3 of view 1 land in
    # view 2; columns 0-1 sit the loss out).
    boxes = torch.tensor([[[0., 0., 40., 40.], [20., 0., 40., 40.]]])
    flips = torch.tensor([[False, False]])
    q = _maps(1, 4, (4, 4)).requires_grad_()
    k, qb, kb = _maps(1, 4, (4, 4)), _maps(1, 6, (4, 4)), _maps(1, 6, (4, 4))
    loss = loss_fn(q, k, qb, kb, (boxes, flips))
    loss.backward()

    from densevit.models.utils.view_geometry import (locate_in_other_view,
                                                     window_mask)
    position, inside = locate_in_other_view(boxes, flips, (4, 4))
    match = loss_fn.extract_correspondence(
        qb, kb, window_mask(position, (4, 4), 1))[0]
    # Written out per patch in float64: the view-2 cells more than one cell
    # (Chebyshev) from the patch's place in view 2 join the queue's keys.
    qn = F.normalize(q.detach().flatten(2)[0].T.double(), dim=1)
    kn = F.normalize(k.flatten(2)[0].T.double(), dim=1)
    queue, tau = loss_fn.queue.keys.double(), loss_fn.temperature
    cells = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(4),
                                       indexing='ij'), -1).reshape(16, 2)
    expected = []
    for i in torch.nonzero(inside[0]).flatten().tolist():
        place = position[0, i].floor()
        far = (cells - place).abs().max(dim=1).values > 1
        pos = torch.exp(qn[i] @ kn[match[i]] / tau)
        neg = torch.exp(queue @ qn[i] / tau).sum() + \
            torch.exp(kn[far] @ qn[i] / tau).sum()
        assert far.any() and not far[match[i]]
        expected.append(-torch.log(pos / (pos + neg)))
    assert abs(loss.item() - torch.stack(expected).mean().item()) <= 1e-5
    assert torch.isfinite(q.grad).all()
    plain = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1)
    plain.queue.keys.copy_(loss_fn.queue.keys)
    assert loss.item() > plain(q, k, qb, kb, (boxes, flips)).item()


def test_intra_negatives_with_a_window_covering_the_grid_change_nothing():
    # Every cell is within 3 of every place on a 4x4 grid: no intra
    # negative, so the loss (and its gradient) is the queue-only one.
    torch.manual_seed(11)
    boxes = torch.tensor([[[0., 0., 40., 40.], [0., 0., 40., 40.]]])
    flips = torch.tensor([[False, True]])
    maps = [_maps(1, 4, (4, 4)) for _ in range(2)] + \
        [_maps(1, 6, (4, 4)) for _ in range(2)]
    maps[0].requires_grad_()
    intra = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1,
                                 intra_negatives=3)
    plain = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1)
    plain.queue.keys.copy_(intra.queue.keys)
    with_intra = intra(*maps, (boxes, flips))
    grad_intra, = torch.autograd.grad(with_intra, maps[0])
    without = plain(*maps, (boxes, flips))
    grad_plain, = torch.autograd.grad(without, maps[0])
    torch.testing.assert_close(with_intra, without)
    torch.testing.assert_close(grad_intra, grad_plain)


@pytest.mark.parametrize('kwargs', [
    dict(intra_negatives=1),  # no geometry to tell near from far
    dict(match_window=2, intra_negatives=1),  # the positive could be one
    dict(match_window=1, intra_negatives=-1),
    dict(match_window=1, intra_negatives=True),
])
def test_bad_intra_negatives_raise(kwargs):
    with pytest.raises(ValueError, match='intra_negatives'):
        DenseContrastiveLoss(**kwargs)


def _half_overlap_case(seed):
    torch.manual_seed(seed)
    # View 2 is the right half of view 1, flipped: columns 0-1 of view 1
    # sit the loss out.
    boxes = torch.tensor([[[0., 0., 40., 40.], [20., 0., 40., 40.]]] * 2)
    flips = torch.tensor([[False, True], [True, False]])
    maps = [_maps(2, 4, (4, 4)) for _ in range(2)] + \
        [_maps(2, 6, (4, 4)) for _ in range(2)]
    return maps, (boxes, flips)


@pytest.mark.parametrize('intra', [None, 1])
def test_geometric_weight_mixes_the_argmax_and_the_geometric_positive(intra):
    maps, geometry = _half_overlap_case(12)
    maps[0].requires_grad_()

    def loss_of(**kwargs):
        torch.manual_seed(0)  # the same queue for every loss
        loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4,
                                       intra_negatives=intra, **kwargs)
        loss = loss_fn(*maps, geometry)
        return loss, torch.autograd.grad(loss, maps[0])[0]

    argmax, grad_argmax = loss_of(match_window=1)
    geometric, grad_geometric = loss_of(match_window=0)
    # w = 1 is the geometric positive alone: match_window=0 exactly.
    torch.testing.assert_close(
        loss_of(match_window=1, geometric_weight=1.0), (geometric,
                                                        grad_geometric))
    assert not torch.allclose(argmax, geometric)
    # Otherwise a per-patch mix: its mean is the mix of the two means.
    mixed, grad_mixed = loss_of(match_window=1, geometric_weight=0.25)
    torch.testing.assert_close(mixed, 0.75 * argmax + 0.25 * geometric)
    torch.testing.assert_close(grad_mixed,
                               0.75 * grad_argmax + 0.25 * grad_geometric)


@pytest.mark.parametrize('kwargs', [
    dict(geometric_weight=0.5),  # no geometry
    dict(match_window=1, geometric_weight=1.5),
    dict(match_window=1, geometric_weight=-0.1),
    dict(match_window=1, geometric_weight=True),
])
def test_bad_geometric_weight_raises(kwargs):
    with pytest.raises(ValueError, match='geometric_weight'):
        DenseContrastiveLoss(**kwargs)


def test_global_loss_with_several_query_views_per_key():
    # R query views of every image, stacked view by view, share its key:
    # the loss is the mean of the per-view losses, the keys enqueue once.
    torch.manual_seed(13)
    loss_fn = GlobalContrastiveLoss(queue_len=30, feat_dim=8)
    views = [torch.randn(4, 8) for _ in range(3)]
    k = torch.randn(4, 8)
    expected = torch.stack([loss_fn(q, k) for q in views]).mean()
    torch.testing.assert_close(loss_fn(torch.cat(views), k), expected)
    torch.testing.assert_close(loss_fn.pending_keys, F.normalize(k, dim=1))
    with pytest.raises(ValueError, match='R·B rows'):
        loss_fn(torch.randn(6, 8), k)


def test_dense_loss_with_several_query_views_per_key():
    torch.manual_seed(14)
    loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=1,
                                   geometric_weight=0.5)
    k, kb = _maps(2, 4, (4, 4)), _maps(2, 6, (4, 4))
    views = [(_maps(2, 4, (4, 4)), _maps(2, 6, (4, 4))) for _ in range(2)]
    # Both query views lie wholly inside view 2, so every patch counts and
    # the loss over the stack is the mean of the two views' losses.
    boxes = torch.tensor([[[0., 0., 40., 40.], [0., 0., 40., 40.]]] * 2)
    flips = torch.tensor([[False, True], [True, False]])
    separate = [loss_fn(q, k, qb, kb, (boxes, flips)) for q, qb in views]
    expected_keys = loss_fn.pending_keys
    stacked = loss_fn(torch.cat([q for q, _ in views]), k,
                      torch.cat([qb for _, qb in views]), kb,
                      (torch.cat([boxes] * 2), torch.cat([flips] * 2)))
    torch.testing.assert_close(stacked, sum(separate) / 2)
    # The keys enqueued are view 2's, once per image.
    torch.testing.assert_close(loss_fn.pending_keys, expected_keys)
    assert loss_fn.pending_keys.shape == (2, 4)


def test_dense_loss_maps_a_coarser_query_grid_onto_the_key_grid():
    # A 2x2 query view of the top-left quarter of a 4x4 key view: by the
    # geometry, query cell (i, j) is key cell (i, j).
    torch.manual_seed(15)
    loss_fn = DenseContrastiveLoss(queue_len=8, feat_dim=4, match_window=0)
    q, k = _maps(1, 4, (2, 2)), _maps(1, 4, (4, 4))
    boxes = torch.tensor([[[0., 0., 20., 20.], [0., 0., 40., 40.]]])
    flips = torch.tensor([[False, False]])
    loss = loss_fn(q, k, _maps(1, 6, (2, 2)), _maps(1, 6, (4, 4)),
                   (boxes, flips))
    match = torch.tensor([[0, 1, 4, 5]])
    expected = reference_per_patch_losses(q, k, match, loss_fn).mean()
    assert abs(loss.item() - expected.item()) <= 1e-5
