"""Projection MLPs for the global and the dense contrastive branches."""
from typing import Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from densevit.registry import MODELS


def _mlp(in_channels: int, hid_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(in_channels, hid_channels), nn.ReLU(inplace=True),
        nn.Linear(hid_channels, out_channels))


@MODELS.register_module()
class DenseProjectionNeck(BaseModule):
    """Two MLPs: CLS token → global embedding, each patch → dense embedding.

    The dense MLP is applied to every patch token independently (the 1×1
    convolutions of DenseCL's neck, written as linear layers on tokens).

    Args:
        in_channels (int): Backbone embedding dimension.
        hid_channels (int): Hidden width of both MLPs. Defaults to 2048.
        out_channels (int): Output (contrastive) dimension D.
            Defaults to 128.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 hid_channels: int = 2048,
                 out_channels: int = 128,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('hid_channels', hid_channels),
                            ('out_channels', out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 1:
                raise ValueError(
                    f'DenseProjectionNeck `{name}` must be a positive int, '
                    f'got {value!r}. Fix: leave neck.in_channels unset '
                    "(DenseViT derives it from the backbone) and use e.g. "
                    'hid_channels=2048, out_channels=128.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.global_mlp = _mlp(in_channels, hid_channels, out_channels)
        self.dense_mlp = _mlp(in_channels, hid_channels, out_channels)

    def forward(self, feats: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
        """``(cls (B, C), patches (B, C, H, W))`` → ``(global (B, D),
        dense (B, D, H, W))``.

        ``C`` is ``in_channels``: checked once, when ``DenseViT`` is built
        (``neck.in_channels`` against the backbone's ``embed_dims``), not
        on every forward.
        """
        cls, patches = feats
        batch, _, height, width = patches.shape
        dense = self.dense_mlp(patches.flatten(2).transpose(1, 2))
        dense = dense.transpose(1, 2).reshape(batch, self.out_channels,
                                              height, width)
        return self.global_mlp(cls), dense
