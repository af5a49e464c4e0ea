"""tools/benchmark/memory_per_gpu.py on a tiny DenseViT (one process)."""
import json
import os.path as osp
import sys

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'benchmark'))

import memory_per_gpu  # noqa: E402

FSDP_CONFIG = osp.join(
    ROOT, 'configs', 'densevit',
    'densevit_vit-large-p16_8xb64-fsdp-amp-coslr-100e_in1k.py')


@pytest.fixture
def tiny_config(tmp_path):
    cfg = Config.fromfile(FSDP_CONFIG)
    cfg.model.backbone.update(
        arch=dict(embed_dims=32, num_layers=1, num_heads=2), img_size=64)
    cfg.model.neck.hid_channels = 32
    cfg.model.predictor.hid_channels = 32
    for loss in ('dense_loss', 'global_loss'):
        cfg.model[loss].queue_len = 64
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    return path


def test_reports_the_memory_of_a_step(tiny_config, tmp_path):
    out = str(tmp_path / 'memory.json')
    result = memory_per_gpu.main([tiny_config, '--batch', '4', '--out', out])
    with open(out) as f:
        assert json.load(f) == result
    assert (result['batch'], result['world_size']) == (4, 1)
    # Weights, AdamW state and queues are held; the step adds activations.
    assert result['state_mib'] > 0
    assert 0 < result['forward_extra_mib'] <= result['step_extra_mib']
    assert result['peak_mib'] == pytest.approx(
        result['state_mib'] + result['step_extra_mib'], abs=0.2)
    # The tiny ViT: 1 layer of 32 channels, its neck and predictor.
    assert 10_000 < result['online_params'] < 100_000


def test_a_batch_below_one_is_refused(tiny_config, capsys):
    with pytest.raises(SystemExit):
        memory_per_gpu.main([tiny_config, '--batch', '0'])
    assert '--batch must be >= 1, got 0' in capsys.readouterr().err
