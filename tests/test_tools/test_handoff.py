"""The hand-off recipes of docs/interop.md, run as the docs write them.

The config snippets are read from the docs (the code block after each
``checked by tests/test_tools/test_handoff.py: NAME`` marker), so the docs
and the tests cannot drift apart. The checkpoint is one of the ViT-S/16
post-pretraining config with random weights, and a different key encoder,
so that loading the wrong encoder would show.
"""
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, Registry
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.utils import import_modules_from_strings

from densevit.registry import MODELS

from test_checkpoint_tools import REPO_ROOT, load_tool

safetensors_torch = pytest.importorskip('safetensors.torch')

EXTRACT_BACKBONE = 'tools/model_converters/extract_backbone.py'
VIT_S_CONFIG = (REPO_ROOT / 'configs' / 'densevit' /
                'densevit_vit-small-p16-timm-init_8xb64-amp-coslr-10e_in1k.py')


def doc_snippet(name: str) -> Config:
    """The python block of docs/interop.md after the marker ``name``."""
    text = (REPO_ROOT / 'docs' / 'interop.md').read_text()
    found = re.search(
        r'<!-- checked by tests/test_tools/test_handoff\.py: '
        + re.escape(name) + r' -->\n```python\n(.*?)```', text, re.S)
    assert found, f'no snippet {name!r} in docs/interop.md'
    return Config.fromstring(found.group(1), '.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """``(path, online backbone weights)`` of a DenseViT ViT-S/16
    checkpoint as tools/train.py writes it (small queues)."""
    cfg = Config.fromfile(str(VIT_S_CONFIG))
    cfg.model.backbone.init_cfg = None
    for loss in ('dense_loss', 'global_loss'):
        cfg.model[loss].queue_len = 8
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for param in model.key_encoder.parameters():
            param.add_(1.0)
    path = tmp_path_factory.mktemp('work_dir') / 'epoch_10.pth'
    torch.save({'meta': {'epoch': 10}, 'state_dict': model.state_dict()},
               path)
    return path, model.backbone.state_dict()


def assert_holds(module, weights, resized=()):
    """``module`` has exactly ``weights``' names and tensors (those in
    ``resized`` are compared after mmpretrain's position resizing)."""
    state = module.state_dict()
    assert set(state) == set(weights)
    for key, value in weights.items():
        if key not in resized:
            assert torch.equal(state[key], value), key


def test_mmpretrain_classifier_loads_the_extracted_backbone(
        checkpoint, tmp_path):
    path, weights = checkpoint
    exported = tmp_path / 'dense-vit-small-p16.pth'
    load_tool(EXTRACT_BACKBONE).main([str(path), str(exported)])
    cfg = doc_snippet('mmpretrain-classifier')
    assert cfg.model.backbone.init_cfg.checkpoint == exported.name
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    # (The training checkpoint with prefix='backbone.', the docs'
    # alternative, is the segmentation entry's, tested below.)
    cfg.model.backbone.init_cfg.checkpoint = str(exported)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MMPRETRAIN_MODELS.build(cfg.model)
        classifier.init_weights()
    assert_holds(classifier.backbone, weights)
    classifier.eval()
    with torch.no_grad():
        logits = classifier(torch.randn(1, 3, 32, 32), mode='tensor')
    assert logits.shape == (1, 1000)


def test_segmentation_backbone_entry_loads_the_online_backbone(checkpoint):
    """The mmseg/mmdet entry, built the way those libraries build it: a
    child of mmengine's MODELS registry resolving the scoped
    ``mmpretrain.VisionTransformer`` after ``custom_imports``."""
    from mmpretrain.models.utils import resize_pos_embed
    path, weights = checkpoint
    cfg = doc_snippet('mmseg-backbone')
    assert cfg.model.backbone.init_cfg.checkpoint.endswith('epoch_10.pth')
    import_modules_from_strings(**cfg.custom_imports)
    backbone_cfg = cfg.model.backbone.to_dict()
    backbone_cfg.pop('_delete_')
    backbone_cfg['init_cfg']['checkpoint'] = str(path)
    segmentation_models = Registry(
        'model', parent=MMENGINE_MODELS, scope='handoff_segmentation')
    backbone = segmentation_models.build(backbone_cfg)
    backbone.init_weights()
    assert_holds(backbone, weights, resized=('pos_embed', ))
    torch.testing.assert_close(
        backbone.pos_embed,
        resize_pos_embed(weights['pos_embed'], (14, 14), (32, 32),
                         'bicubic', 1))
    # Four 384-channel maps for the MultiLevelNeck (at a small input here).
    backbone.eval()
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 384, 4, 4)] * 4
    assert cfg.model.neck.in_channels == [384] * 4


def test_extract_backbone_writes_safetensors(checkpoint, tmp_path):
    path, weights = checkpoint
    exported = tmp_path / 'dense-vit-small-p16.safetensors'
    load_tool(EXTRACT_BACKBONE).main(
        [str(path), str(exported), '--safetensors'])
    loaded = safetensors_torch.load_file(str(exported))
    assert set(loaded) == set(weights)
    for key, value in weights.items():
        assert torch.equal(loaded[key], value), key
    # mmpretrain's layout: a strict load into its VisionTransformer.
    from mmpretrain.models import VisionTransformer
    VisionTransformer('deit-small').load_state_dict(loaded, strict=True)
    # Without the flag: a torch file for mmengine's Pretrained.
    load_tool(EXTRACT_BACKBONE).main([str(path), str(tmp_path / 'b.pth')])
    assert set(torch.load(tmp_path / 'b.pth', weights_only=True)
               ['state_dict']) == set(weights)
