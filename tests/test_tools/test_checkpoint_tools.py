import importlib.util
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from densevit.apis import init_model
from densevit.engine.compat import UnreadableCheckpointError
from densevit.engine.utils import CheckpointMismatchError
from densevit.registry import MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_tool(relative):
    spec = importlib.util.spec_from_file_location(
        Path(relative).stem, REPO_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_init_checkpoint_then_extract_backbone(tmp_path, tiny_model_cfg):
    config = tmp_path / 'tiny.py'
    Config(dict(model=tiny_model_cfg)).dump(str(config))
    init_ckpt = tmp_path / 'init.pth'
    load_tool('tools/analysis_tools/init_checkpoint.py').main(
        [str(config), str(init_ckpt), '--seed', '3'])
    state = torch.load(init_ckpt, weights_only=True)['state_dict']
    # Initialised, not zeros: the position embedding is trunc-normal.
    assert state['backbone.pos_embed'].std() > 0.005
    # Same seed → same weights.
    again = tmp_path / 'again.pth'
    load_tool('tools/analysis_tools/init_checkpoint.py').main(
        [str(config), str(again), '--seed', '3'])
    torch.testing.assert_close(
        torch.load(again, weights_only=True)['state_dict']['backbone.pos_embed'],
        state['backbone.pos_embed'])

    out = tmp_path / 'backbone.pth'
    load_tool('tools/model_converters/extract_backbone.py').main(
        [str(init_ckpt), str(out)])
    backbone = torch.load(out, weights_only=True)['state_dict']
    assert 'pos_embed' in backbone and not any(
        k.startswith(('neck', 'key_', 'backbone.')) for k in backbone)
    # It loads into a plain mmpretrain VisionTransformer.
    vit = MODELS.build(dict(
        type='VisionTransformer',
        arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                  feedforward_channels=128),
        img_size=32, out_type='cls_token'))
    vit.load_state_dict(backbone)


def test_init_checkpoint_names_a_missing_pretrained_checkpoint(
        tmp_path, tiny_model_cfg):
    """A Pretrained file that is not there stops the tool with the field
    and the fix (check_config's message), not a loader traceback."""
    missing = tmp_path / 'timm_converted.pth'
    tiny_model_cfg['backbone']['init_cfg'] = dict(type='Pretrained',
                                                  checkpoint=str(missing))
    config = tmp_path / 'post_pretrain.py'
    Config(dict(model=tiny_model_cfg)).dump(str(config))
    out = tmp_path / 'init.pth'
    with pytest.raises(SystemExit, match=r'(?s)ConfigError: .*'
                       r'`model.backbone.init_cfg.checkpoint`: no file .*'
                       r'timm_to_densevit.py'):
        load_tool('tools/analysis_tools/init_checkpoint.py').main(
            [str(config), str(out)])
    assert not out.exists()


def test_extract_backbone_rejects_other_checkpoints():
    module = load_tool('tools/model_converters/extract_backbone.py')
    with pytest.raises(ValueError, match='DenseViT checkpoint'):
        module.extract_backbone({'state_dict': {'fc.weight': torch.zeros(1)}})


def test_extracted_backbone_is_not_a_model_checkpoint(tmp_path,
                                                      tiny_model_cfg):
    config = Config(dict(model=tiny_model_cfg))
    full = tmp_path / 'full.pth'
    torch.save({'state_dict': init_model(config).state_dict()}, full)
    backbone = tmp_path / 'backbone.pth'
    load_tool('tools/model_converters/extract_backbone.py').main(
        [str(full), str(backbone)])
    # Loading it as the whole model says what it is and how to use it.
    with pytest.raises(CheckpointMismatchError,
                       match=r"model\.backbone\.init_cfg=dict\(type="
                       r"'Pretrained'"):
        init_model(config, str(backbone))


def test_extract_backbone_names_an_unreadable_checkpoint(tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint at all')
    with pytest.raises(UnreadableCheckpointError,
                       match=f'{bad} is truncated or corrupted'):
        load_tool('tools/model_converters/extract_backbone.py').main(
            [str(bad), str(tmp_path / 'out.pth')])
