import pytest
import torch

from densevit.models.utils import effective_dims


def test_effective_dims_counts_equally_used_directions():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 16))[0]
    # +-1 on 3 orthogonal directions, every sign pattern: a covariance with
    # three equal eigenvalues and no others.
    signs = torch.cartesian_prod(*[torch.tensor([-1., 1.])] * 3)
    x = signs @ basis[:3] + 5.0  # a shared offset is not a direction
    assert effective_dims(x).item() == pytest.approx(3.0, rel=1e-5)


def test_effective_dims_is_one_for_collapsed_features_and_near_full_for_noise():
    torch.manual_seed(1)
    line = torch.randn(64, 1) * torch.randn(1, 32)
    assert effective_dims(line).item() == pytest.approx(1.0, rel=1e-4)
    noise = effective_dims(torch.randn(4096, 32)).item()
    assert 30 < noise <= 32
    # Fewer rows than channels: the smaller Gram matrix gives the same value.
    few = torch.randn(8, 64)
    gram_rows = effective_dims(few)
    centred = few - few.mean(0)
    eig = torch.linalg.eigvalsh(centred.T @ centred).clamp(min=0)
    assert gram_rows.item() == pytest.approx(
        (eig.sum() ** 2 / (eig ** 2).sum()).item(), rel=1e-4)
