import pytest
import torch
import torch.nn.functional as F

from densevit.models.losses import info_nce, info_nce_reference


def unit(*shape, dtype=torch.float64):
    return F.normalize(torch.randn(*shape, dtype=dtype), dim=-1)


def float64_formula(q, k, negatives, tau):
    """-log(exp(q.k+/τ) / (exp(q.k+/τ) + Σ_j exp(q.n_j/τ))), row by row."""
    losses = []
    for i in range(q.shape[0]):
        pos = torch.exp(q[i] @ k[i] / tau)
        neg = torch.exp(negatives @ q[i] / tau).sum()
        losses.append(-torch.log(pos / (pos + neg)))
    return torch.stack(losses).mean()


@pytest.mark.parametrize('impl', ['auto', 'fused', 'chunked'])
@pytest.mark.parametrize('tau', [0.1, 0.2])
def test_loss_and_gradients_match_float64(impl, tau):
    torch.manual_seed(0)
    q64, k64, n64 = unit(37, 16), unit(37, 16), unit(500, 16)
    q64.requires_grad_()
    k64.requires_grad_()
    ref = float64_formula(q64, k64, n64, tau)
    ref_gq, ref_gk = torch.autograd.grad(ref, [q64, k64])

    q = q64.detach().float().requires_grad_()
    k = k64.detach().float().requires_grad_()
    loss = info_nce(q, k, n64.float(), tau, impl=impl)
    gq, gk = torch.autograd.grad(loss, [q, k])
    assert abs(loss.item() - ref.item()) / ref.item() <= 1e-5
    assert ((gq.double() - ref_gq).norm() / ref_gq.norm()).item() <= 1e-5
    assert ((gk.double() - ref_gk).norm() / ref_gk.norm()).item() <= 1e-5


@pytest.mark.parametrize('impl', ['fused', 'chunked'])
def test_bfloat16_within_one_percent(impl):
    torch.manual_seed(1)
    q, k, n = unit(64, 32), unit(64, 32), unit(1000, 32)
    ref = info_nce_reference(q, k, n, 0.2)
    q16 = q.bfloat16().requires_grad_()
    loss = info_nce(q16, k.bfloat16(), n.bfloat16(), 0.2, impl=impl)
    loss.backward()
    assert abs(loss.item() - ref.item()) / ref.item() <= 1e-2
    assert q16.grad.dtype == torch.bfloat16


def test_chunked_path_splits_rows(monkeypatch):
    # Force chunks of a few rows to exercise the loop boundaries.
    import densevit.models.losses.fused_info_nce as mod
    monkeypatch.setattr(mod, '_CHUNK_ELEMENTS', 3 * 100)
    torch.manual_seed(2)
    q, k, n = unit(10, 8), unit(10, 8), unit(100, 8)
    torch.testing.assert_close(
        info_nce(q, k, n, 0.2, impl='chunked'),
        info_nce_reference(q, k, n, 0.2))


def test_auto_falls_back_when_no_fused_kernel(monkeypatch):
    import densevit.models.losses.fused_info_nce as mod

    def no_kernel(*args, **kwargs):
        raise RuntimeError('no kernel for these inputs')

    monkeypatch.setattr(mod, '_fused_lse_and_output', no_kernel)
    monkeypatch.setattr(mod, '_FUSED_UNSUPPORTED', {})
    torch.manual_seed(3)
    q, k, n = unit(6, 4), unit(6, 4), unit(20, 4)
    loss = info_nce(q, k, n, 0.1, impl='auto')
    torch.testing.assert_close(loss, info_nce_reference(q, k, n, 0.1))
    assert ('cpu', torch.float64) in mod._FUSED_UNSUPPORTED
    with pytest.raises(RuntimeError, match='no kernel'):
        info_nce(q, k, n, 0.1, impl='fused')


def test_out_of_memory_is_not_taken_for_a_missing_kernel(monkeypatch):
    import densevit.models.losses.fused_info_nce as mod

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError('no memory')

    monkeypatch.setattr(mod, '_fused_lse_and_output', out_of_memory)
    monkeypatch.setattr(mod, '_FUSED_UNSUPPORTED', {})
    q, k, n = unit(6, 4), unit(6, 4), unit(20, 4)
    with pytest.raises(torch.OutOfMemoryError):
        info_nce(q, k, n, 0.1, impl='auto')
    assert mod._FUSED_UNSUPPORTED == {}


def test_negatives_get_no_gradient_and_reduction_none():
    q, k = unit(5, 4).requires_grad_(), unit(5, 4)
    n = unit(7, 4).requires_grad_()
    per_row = info_nce(q, k, n, 0.2, reduction='none')
    assert per_row.shape == (5, )
    per_row.sum().backward()
    assert n.grad is None and q.grad is not None


def test_bad_reduction_raises():
    # τ, impl and the shapes are validated where they enter (the losses'
    # constructors, DenseViT's build); `reduction` enters here.
    with pytest.raises(ValueError, match='reduction'):
        info_nce(unit(5, 4), unit(5, 4), unit(7, 4), 0.2, reduction='max')



def test_autocast_runs_the_kernel_in_the_autocast_dtype(monkeypatch):
    import densevit.models.losses.fused_info_nce as mod
    seen = []
    original = mod.negative_logsumexp

    def spy(q, negatives, scale, impl='auto'):
        seen.append(q.dtype)
        return original(q, negatives, scale, impl)

    monkeypatch.setattr(mod, 'negative_logsumexp', spy)
    torch.manual_seed(4)
    q = unit(32, 16, dtype=torch.float32).requires_grad_()
    k, n = unit(32, 16, dtype=torch.float32), unit(200, 16,
                                                   dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = info_nce(q, k, n, 0.2)
    loss.backward()
    assert seen == [torch.bfloat16]
    assert q.grad.dtype == torch.float32  # autograd casts back
    ref = info_nce_reference(q.detach().double(), k.double(), n.double(), 0.2)
    assert abs(loss.item() - ref.item()) / ref.item() <= 1e-2


@pytest.mark.parametrize('threads,rows', [(2, 37), (3, 37), (3, 2), (1, 5)])
def test_cpu_kernel_gives_each_thread_an_equal_share_of_rows(
        monkeypatch, threads, rows):
    # The CPU flash kernel splits work by (batch, 256-row block); one batch
    # per thread keeps every thread busy. Padding rows must not leak out,
    # and a transposed query must not scramble the kernel's output.
    import densevit.models.losses.fused_info_nce as mod
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    batches = []

    def spy(q4, k4, v4, *args, **kwargs):
        batches.append((q4.shape[0], k4.stride(0)))
        return kernel(q4, k4, v4, *args, **kwargs)

    monkeypatch.setattr(torch.ops.aten,
                        '_scaled_dot_product_flash_attention_for_cpu', spy)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(7)
        # A transposed (non-contiguous) query block, as a (B, D, H, W) map
        # flattened to rows produces.
        q64 = F.normalize(torch.randn(16, rows, dtype=torch.float64).T, dim=1)
        k64, n64 = unit(rows, 16), unit(300, 16)
        q = q64.float().requires_grad_()
        assert rows == 1 or not q.is_contiguous()
        loss = info_nce(q, k64.float(), n64.float(), 0.1, impl='fused')
        loss.backward()
    finally:
        torch.set_num_threads(previous)
    parts = min(threads, rows)
    assert batches == [(parts, 0 if parts > 1 else 300 * 16)]
    q64.requires_grad_()
    ref = float64_formula(q64, k64, n64, 0.1)
    ref.backward()
    assert abs(loss.item() - ref.item()) / ref.item() <= 1e-5
    assert ((q.grad.double() - q64.grad).norm() /
            q64.grad.norm()).item() <= 1e-5


@pytest.mark.parametrize('impl', ['auto', 'fused', 'chunked'])
def test_no_negatives_gives_zero_loss_instead_of_crashing(impl):
    # With an empty bank the positive is the whole softmax: loss 0, grad 0.
    # (PyTorch's CPU flash kernel kills the process with SIGFPE on 0 keys.)
    q = unit(4, 8, dtype=torch.float32).requires_grad_()
    loss = info_nce(q, unit(4, 8, dtype=torch.float32),
                    torch.zeros(0, 8), 0.2, impl=impl)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(q.grad) == 0


@pytest.mark.parametrize('dtype,tolerance', [(torch.float64, 1e-12),
                                             (torch.float32, 1e-5)])
def test_chunked_gradients_across_several_chunks_match_float64(
        monkeypatch, dtype, tolerance):
    # 8 rows per chunk against 100 negatives: 37 queries span five chunks,
    # the last one partial. Each row gets its own upstream gradient, so a
    # chunk whose softmax-weighted negatives (the only input of the q
    # gradient the loss value does not show) land in the wrong rows fails.
    import densevit.models.losses.fused_info_nce as mod
    monkeypatch.setattr(mod, '_CHUNK_ELEMENTS', 8 * 100)
    torch.manual_seed(8)
    q64, k64, n64 = unit(37, 16), unit(37, 16), unit(100, 16)
    upstream = torch.rand(37, dtype=torch.float64) + 0.5
    q64.requires_grad_()
    k64.requires_grad_()
    pos = (q64 * k64).sum(1, keepdim=True)
    logits = torch.cat([pos, q64 @ n64.T], dim=1) / 0.2
    ref = torch.logsumexp(logits, dim=1) - logits[:, 0]
    ref_gq, ref_gk = torch.autograd.grad((ref * upstream).sum(), [q64, k64])

    q = q64.detach().to(dtype).requires_grad_()
    k = k64.detach().to(dtype).requires_grad_()
    per_row = info_nce(q, k, n64.to(dtype), 0.2, reduction='none',
                       impl='chunked')
    gq, gk = torch.autograd.grad((per_row * upstream.to(dtype)).sum(),
                                 [q, k])
    torch.testing.assert_close(per_row.double(), ref.detach(),
                               rtol=tolerance, atol=0)
    for grad, reference in ((gq, ref_gq), (gk, ref_gk)):
        error = (grad.double() - reference).norm() / reference.norm()
        assert error.item() <= tolerance
