"""Load a trained DenseViT and get dense features for an image."""
from typing import Dict, Optional, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import CheckpointLoader, load_state_dict
from PIL import Image
from torch import Tensor, nn

from densevit.engine.utils import (check_state_dict, pretrained_init_cfgs,
                                   state_dict_of, without_pretrained_init_cfgs)
from densevit.registry import MODELS


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               strict: bool = True) -> nn.Module:
    """Build the model of ``config`` and load ``checkpoint`` into it.

    Args:
        config (str | Config): config file or object with a ``model`` field.
        checkpoint (str, optional): checkpoint path; loaded with
            ``torch.load(weights_only=True)`` (DenseViT writes checkpoints
            that need nothing else); an unreadable file raises
            :class:`~densevit.engine.compat.UnreadableCheckpointError`.
            With ``strict``, the config's ``Pretrained`` inits are skipped
            (the checkpoint replaces every weight), so their files need
            not exist.
        device (str): where to put the model. Defaults to 'cpu'.
        strict (bool): raise
            :class:`~densevit.engine.utils.CheckpointMismatchError` when the
            checkpoint's weights do not fit the model (missing, unexpected
            or differently shaped), before loading any. With False, load the
            weights that fit and log what was left out. Defaults to True.

    Returns:
        nn.Module: the model in eval mode.
    """
    if isinstance(config, str):
        config = Config.fromfile(config)
    if 'model' not in config:
        raise ValueError('The config has no `model` field; pass a DenseViT '
                         'training or benchmark config.')
    import densevit.models  # noqa: F401 (registers the model types)
    model_cfg = config.model
    if checkpoint is not None and strict:
        # The checkpoint replaces every weight: the file a Pretrained init
        # names (the converted timm weights a post-pretraining config starts
        # from) need not be at hand.
        model_cfg = _without_pretrained_init(model_cfg)
    model = MODELS.build(model_cfg)
    model.init_weights()
    if checkpoint is not None:
        # Local paths go through densevit.engine.compat's weights-only loader.
        state_dict = state_dict_of(
            CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu'),
            checkpoint)
        check_state_dict(model, state_dict, checkpoint, strict,
                         partial_option='strict=False')
        load_state_dict(model, state_dict, strict=False)
    return model.to(device).eval()


def _without_pretrained_init(node):
    """A copy of a config node without its ``Pretrained`` init_cfgs (each
    ``init_cfg`` keeps its other entries)."""
    if isinstance(node, (list, tuple)):
        return type(node)(_without_pretrained_init(item) for item in node)
    if not isinstance(node, dict):
        return node
    stripped = {key: _without_pretrained_init(value)
                for key, value in node.items()}
    if pretrained_init_cfgs(node.get('init_cfg')):
        stripped['init_cfg'] = without_pretrained_init_cfgs(node['init_cfg'])
    return stripped


def _to_batch(image: Union[str, np.ndarray, Image.Image],
              size: int) -> Tensor:
    """An RGB image → (1, 3, size, size) uint8 tensor in BGR order.

    BGR because DenseViT's data preprocessor (like mmpretrain's pipelines,
    which load with OpenCV channel order) converts BGR to RGB itself.
    """
    if isinstance(image, str):
        image = Image.open(image)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError('`image` arrays must be (H, W, 3) RGB, got '
                             f'shape {image.shape}.')
        image = Image.fromarray(image.astype(np.uint8))
    image = image.convert('RGB').resize((size, size), Image.BILINEAR)
    array = np.asarray(image)[..., ::-1].copy()
    return torch.from_numpy(array).permute(2, 0, 1)[None]


@torch.no_grad()
def extract_dense_features(model: nn.Module,
                           image: Union[str, np.ndarray, Image.Image],
                           size: int = 224) -> Dict[str, Tensor]:
    """Features of one image through the online encoder.

    Args:
        model (nn.Module): a DenseViT model (e.g. from :func:`init_model`).
        image (str | ndarray | PIL.Image): a path or an RGB image.
        size (int): the image is resized to ``size`` × ``size``; a multiple
            of the backbone's patch size. Defaults to 224.

    Returns:
        dict: ``cls`` (C,), ``patches`` (C, H, W) backbone patch features and
        ``dense`` (H, W, D) projected dense features.
    """
    patch_size = getattr(model.backbone, 'patch_size', 16)
    if size % patch_size:
        raise ValueError(f'`size` must be a multiple of the patch size '
                         f'{patch_size}, got {size}.')
    device = next(model.parameters()).device
    data = model.data_preprocessor(
        dict(inputs=[_to_batch(image, size).to(device)], data_samples=None),
        False)
    cls, patches, dense = model(data['inputs'][0], mode='tensor')
    return dict(cls=cls[0], patches=patches[0], dense=dense[0])
