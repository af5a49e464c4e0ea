import copy

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from densevit.apis import extract_dense_features, init_model
from densevit.engine.compat import UnreadableCheckpointError
from densevit.engine.utils import CheckpointMismatchError


def test_init_model_and_extract(tmp_path, tiny_model_cfg):
    model = init_model(Config(dict(model=tiny_model_cfg)))
    assert not model.training
    ckpt = tmp_path / 'model.pth'
    with torch.no_grad():
        model.backbone.cls_token.fill_(0.5)
    torch.save({'state_dict': model.state_dict()}, ckpt)
    loaded = init_model(Config(dict(model=tiny_model_cfg)), str(ckpt))
    assert torch.all(loaded.backbone.cls_token == 0.5)

    rgb = np.random.RandomState(0).randint(0, 255, (40, 50, 3), np.uint8)
    path = tmp_path / 'img.png'
    Image.fromarray(rgb).save(path)
    feats = extract_dense_features(loaded, str(path), size=64)
    assert feats['cls'].shape == (32, )
    assert feats['patches'].shape == (32, 4, 4)
    assert feats['dense'].shape == (4, 4, 16)
    # The same image given as an array gives the same features.
    again = extract_dense_features(loaded, rgb, size=64)
    torch.testing.assert_close(again['dense'], feats['dense'])


def test_bad_inputs(tiny_model_cfg):
    model = init_model(Config(dict(model=tiny_model_cfg)))
    with pytest.raises(ValueError, match='multiple of the patch size 16'):
        extract_dense_features(model, np.zeros((8, 8, 3)), size=60)
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        extract_dense_features(model, np.zeros((8, 8)), size=64)
    with pytest.raises(ValueError, match='model'):
        init_model(Config(dict()))


def test_size_follows_the_backbone_patch_size(tiny_model_cfg):
    from densevit.apis import extract_dense_features
    from densevit.registry import MODELS
    tiny_model_cfg['backbone']['patch_size'] = 8
    model = MODELS.build(tiny_model_cfg).eval()
    feats = extract_dense_features(model, np.zeros((8, 8, 3)), size=24)
    assert feats['dense'].shape == (3, 3, 16)


def test_init_model_refuses_weights_of_another_architecture(
        tmp_path, tiny_model_cfg):
    deeper = copy.deepcopy(tiny_model_cfg)
    deeper['backbone']['arch']['num_layers'] = 2
    source = init_model(Config(dict(model=deeper)))
    with torch.no_grad():
        source.backbone.cls_token.fill_(0.5)
    ckpt = tmp_path / 'deeper.pth'
    torch.save({'state_dict': source.state_dict()}, ckpt)
    with pytest.raises(CheckpointMismatchError,
                       match=r'(?s)deeper.pth does not fit.*'
                       r'backbone\.layers\.1\..*strict=False'):
        init_model(Config(dict(model=tiny_model_cfg)), str(ckpt))
    # An explicit partial load takes what fits.
    model = init_model(
        Config(dict(model=tiny_model_cfg)), str(ckpt), strict=False)
    assert torch.all(model.backbone.cls_token == 0.5)


def test_init_model_names_an_unreadable_checkpoint(tmp_path,
                                                   tiny_model_cfg):
    bad = tmp_path / 'empty.pth'
    bad.write_bytes(b'')
    with pytest.raises(UnreadableCheckpointError, match=f'{bad} is empty'):
        init_model(Config(dict(model=tiny_model_cfg)), str(bad))


@pytest.mark.parametrize('in_a_list', [False, True])
def test_init_model_with_a_checkpoint_needs_no_pretrained_file(
        tmp_path, tiny_model_cfg, in_a_list):
    """A post-pretraining config names the converted weights it started
    from (alone, or in mmengine's list of init_cfgs); its trained checkpoint
    loads without that file (strict: every weight comes from the
    checkpoint), and without a checkpoint the missing file is named."""
    trained = init_model(Config(dict(model=tiny_model_cfg)))
    torch.save({'state_dict': trained.state_dict()}, tmp_path / 'iter_4.pth')
    pretrained = dict(type='Pretrained', checkpoint=str(tmp_path / 'gone.pth'))
    tiny_model_cfg['backbone']['init_cfg'] = [
        dict(type='Constant', layer='LayerNorm', val=1.0), pretrained
    ] if in_a_list else pretrained
    config = Config(dict(model=tiny_model_cfg))
    model = init_model(config, str(tmp_path / 'iter_4.pth'))
    assert torch.equal(model.backbone.pos_embed, trained.backbone.pos_embed)
    assert config.model.backbone.init_cfg == tiny_model_cfg['backbone'][
        'init_cfg']  # untouched
    with pytest.raises(FileNotFoundError, match='gone.pth'):
        init_model(config)
