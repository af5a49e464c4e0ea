"""The FlexibleRunner ``strategy`` of a config: checked before anything is
built, adapted to where it is launched."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from densevit.apis import check_config
from densevit.apis.strategy_setup import adapt_strategy

FSDP_CONFIG = str(
    Path(__file__).resolve().parents[2] / 'configs' / 'densevit' /
    'densevit_vit-large-p16_8xb64-fsdp-amp-coslr-100e_in1k.py')


@pytest.fixture
def fsdp_cfg():
    return Config.fromfile(FSDP_CONFIG)


def problems(cfg) -> str:
    with pytest.raises(ValueError) as err:
        check_config(cfg, training=False)
    return str(err.value)


def test_shipped_fsdp_config_passes(fsdp_cfg):
    check_config(fsdp_cfg, training=False)
    assert fsdp_cfg.strategy.state_dict_cfg == 'full'


@pytest.mark.parametrize('change, message', [
    (dict(state_dict_cfg='local'),
     r"state_dict_cfg='local'.*directory of per-rank shards.*"
     r"Fix: state_dict_cfg='full'"),
    (dict(model_wrapper=dict(use_orig_params=False)),
     r'use_orig_params must be True.*EMA'),
    (dict(model_wrapper=dict(auto_wrap_policy=dict(
        module_types=['DenseViTBackbone', 'DenseProjectionNek']))),
     r"strategy.model_wrapper.auto_wrap_policy.module_types: "
     r"'DenseProjectionNek' is not a module class"),
])
def test_fsdp_settings_densevit_cannot_run_are_named(fsdp_cfg, change,
                                                     message):
    fsdp_cfg.merge_from_dict(dict(strategy=change))
    assert len(problems(fsdp_cfg).split('\n  - ')) == 2  # header + one
    with pytest.raises(ValueError, match=message):
        check_config(fsdp_cfg, training=False)


def test_gradient_clipping_under_fsdp_is_refused(fsdp_cfg):
    fsdp_cfg.optim_wrapper.clip_grad = dict(max_norm=1.0)
    assert "sees only this rank's shard" in problems(fsdp_cfg)


def test_strategy_needs_the_flexible_runner(fsdp_cfg):
    fsdp_cfg.runner_type = 'Runner'
    assert "`strategy` is read by FlexibleRunner only" in problems(fsdp_cfg)


def test_strategies_writing_directories_are_refused(fsdp_cfg):
    fsdp_cfg.strategy = dict(type='DeepSpeedStrategy')
    assert "strategy.type='DeepSpeedStrategy'" in problems(fsdp_cfg)


def test_one_process_without_a_launcher_trains_unsharded(fsdp_cfg):
    fsdp_cfg.launcher = 'none'
    notes = adapt_strategy(fsdp_cfg)
    assert fsdp_cfg.strategy == dict(type='SingleDeviceStrategy')
    assert 'FSDPStrategy replaced by SingleDeviceStrategy' in notes[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU fallbacks')
def test_fsdp_on_cpu_drops_bf16_and_takes_the_cpu(fsdp_cfg):
    fsdp_cfg.launcher = 'pytorch'
    notes = adapt_strategy(fsdp_cfg)
    wrapper = fsdp_cfg.strategy.model_wrapper
    assert 'mixed_precision' not in wrapper
    assert wrapper.device_id == 'cpu'
    assert wrapper.auto_wrap_policy.module_types[1:] == [
        'DenseViTBackbone', 'DenseProjectionNeck']
    assert any('mixed_precision' in note for note in notes)
