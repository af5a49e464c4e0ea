"""Every type DenseViT registers builds from a plain config dict."""
import pytest

import densevit.models  # noqa: F401
from densevit.registry import MODELS


@pytest.mark.parametrize('cfg', [
    dict(type='DenseViTBackbone', arch='deit-tiny'),
    dict(type='DenseProjectionNeck', in_channels=192),
    dict(type='DenseContrastiveLoss', queue_len=128),
    dict(type='GlobalContrastiveLoss', queue_len=128),
])
def test_model_components_build(cfg):
    module = MODELS.build(cfg)
    assert type(module).__name__ == cfg['type']


def test_densevit_builds_and_parent_types_resolve(tiny_model_cfg):
    tiny_model_cfg['head'] = dict(
        type='LinearClsHead', num_classes=2, in_channels=32)
    model = MODELS.build(tiny_model_cfg)
    # LinearClsHead and SelfSupDataPreprocessor live in mmpretrain's
    # registry: found through the parent.
    assert type(model.head).__name__ == 'LinearClsHead'
    assert type(model.data_preprocessor).__name__ == 'SelfSupDataPreprocessor'


def test_registry_scope_is_densevit():
    assert MODELS.scope == 'densevit'
    assert MODELS.parent.scope == 'mmpretrain'
