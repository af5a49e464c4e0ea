import math
import uuid

import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.models.utils import CosineEMA
from torch import nn

from densevit.models.utils import KeyEncoderEMA


@pytest.fixture
def max_iters():
    """The run length the cosine reads, as RuntimeInfoHook publishes it."""
    hub = MessageHub.get_instance(f'test_key_encoder_ema_{uuid.uuid4().hex}')
    hub.update_info('max_iters', 10)
    return 10


def cosine_ema_momentum(steps: int) -> float:
    """The momentum mmpretrain's CosineEMA applies when its ``steps`` buffer
    is ``steps``: read off one scalar averaged from 0 towards 1."""
    source = nn.Linear(1, 1, bias=False).double()
    ema = CosineEMA(source, momentum=0.01, end_momentum=0.0)
    ema.steps.fill_(steps)
    with torch.no_grad():
        ema.module.weight.zero_()
        source.weight.fill_(1.0)
    ema.update_parameters(source)
    return ema.module.weight.item()


def test_cosine_matches_mmpretrain_cosine_ema_step_for_step(max_iters):
    # CosineEMA updates at the start of iteration k (steps == k; k = 0 is its
    # initial copy) towards the weights of k optimizer steps; KeyEncoderEMA
    # is given step k right after the k-th step: the same momentum.
    ema = KeyEncoderEMA(nn.Linear(1, 1), momentum=0.01, end_momentum=0.0)
    ours = [ema.momentum_at(k) for k in range(1, max_iters)]
    theirs = [cosine_ema_momentum(k) for k in range(1, max_iters)]
    # CosineEMA takes the cosine of its float32 steps tensor.
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ema.momentum_at(0) == pytest.approx(0.01)
    assert ema.momentum_at(max_iters) == pytest.approx(0.0)
    assert all(a > b for a, b in zip(ours, ours[1:]))


def test_update_is_the_mmengine_ema_without_host_reads(max_iters):
    online = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = KeyEncoderEMA(online, momentum=0.25, end_momentum=0.0)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online[1].running_mean.fill_(2.0)
    old = [p.clone() for p in ema.module.parameters()]
    ema.update_parameters(online, step=3)
    m = 0.25 * (math.cos(math.pi * 3 / max_iters) + 1) / 2
    for key, k0, src in zip(ema.module.parameters(), old,
                            online.parameters()):
        torch.testing.assert_close(key, (1 - m) * k0 + m * src)
        assert not key.requires_grad
    torch.testing.assert_close(ema.module[1].running_mean,
                               torch.full((3, ), 2.0))
    assert int(ema.steps) == 1


def test_constant_momentum_needs_no_step():
    online = nn.Linear(2, 2)
    ema = KeyEncoderEMA(online, momentum=0.5)
    with torch.no_grad():
        online.weight.add_(2.0)
    before = ema.module.weight.clone()
    ema.update_parameters(online)
    torch.testing.assert_close(ema.module.weight,
                               0.5 * before + 0.5 * online.weight)
    assert ema.momentum_at(123) == 0.5


def test_cosine_without_a_step_or_a_run_length_says_why():
    ema = KeyEncoderEMA(nn.Linear(2, 2), momentum=0.1, end_momentum=0.0)
    with pytest.raises(TypeError, match='needs the step'):
        ema.update_parameters(nn.Linear(2, 2))
    MessageHub.get_instance(f'test_key_encoder_ema_{uuid.uuid4().hex}')
    with pytest.raises(RuntimeError, match='max_iters'):
        ema.momentum_at(1)


@pytest.mark.parametrize('kwargs,match', [
    (dict(momentum=0.0), r'`momentum` must be a number in \(0, 1\)'),
    (dict(momentum=1.0), 'share of the online'),
    (dict(momentum=-0.1), 'momentum'),
    (dict(momentum='0.1'), 'momentum'),
    (dict(momentum=0.01, end_momentum=0.5), r'end_momentum.*\[0, momentum'),
    (dict(momentum=0.01, end_momentum=-0.1), 'end_momentum'),
])
def test_bad_momentum_raises_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KeyEncoderEMA(nn.Linear(2, 2), **kwargs)


def test_shards_that_do_not_line_up_are_refused():
    """Under FSDP each encoder's parameters are this rank's shards; a key
    encoder sharded unlike the online one (here a bias shard of 1 element
    against 3, which lerp would broadcast) stops the update, naming both
    parameters and the fix, and leaves the key encoder unchanged."""
    online = nn.Linear(3, 3)
    ema = KeyEncoderEMA(online, momentum=0.5)
    with torch.no_grad():
        ema.module.bias.data = ema.module.bias.data[:1].clone()
    before = [p.clone() for p in ema.module.parameters()]
    with pytest.raises(ValueError, match=r'bias has shape \(1,\) on this '
                       r'rank, its online counterpart bias \(3,\)'
                       r'.*auto_wrap_policy'):
        ema.update_parameters(online)
    for key, old in zip(ema.module.parameters(), before):
        assert torch.equal(key, old)
    assert int(ema.steps) == 0
