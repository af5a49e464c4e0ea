"""The ViT backbone of DenseViT: CLS token plus the patch-token grid."""
from typing import Dict, Tuple, Union

from mmpretrain.models.backbones import VisionTransformer
from torch import Tensor

from densevit.registry import MODELS

_ARCHS = {
    'tiny': dict(embed_dims=192, num_layers=12, num_heads=3),
    'small': dict(embed_dims=384, num_layers=12, num_heads=6),
    'base': dict(embed_dims=768, num_layers=12, num_heads=12),
}
_REQUIRED_KEYS = ('embed_dims', 'num_layers', 'num_heads')


def resolve_arch(arch: Union[str, Dict]) -> Dict:
    """Arch name or dict -> a full mmpretrain ViT arch dict."""
    if isinstance(arch, str):
        if arch.lower() not in _ARCHS:
            raise ValueError(
                f'Unknown DenseViTBackbone arch {arch!r}. Fix: use one of '
                f'{sorted(_ARCHS)} or a dict with keys {_REQUIRED_KEYS} '
                '(and optionally feedforward_channels).')
        settings = dict(_ARCHS[arch.lower()])
    elif isinstance(arch, dict):
        missing = [k for k in _REQUIRED_KEYS if k not in arch]
        if missing:
            raise ValueError(
                f'DenseViTBackbone arch dict lacks {missing}. Fix: give '
                'e.g. dict(embed_dims=192, num_layers=1, num_heads=3).')
        settings = dict(arch)
    else:
        raise TypeError('DenseViTBackbone `arch` must be a str or a dict, '
                        f'got {type(arch).__name__}.')
    if settings['embed_dims'] % settings['num_heads']:
        raise ValueError(
            f"DenseViTBackbone: embed_dims={settings['embed_dims']} is not "
            f"divisible by num_heads={settings['num_heads']}.")
    # The standard ViT MLP ratio of 4 unless the arch says otherwise.
    settings.setdefault('feedforward_channels', 4 * settings['embed_dims'])
    return settings


@MODELS.register_module()
class DenseViTBackbone(VisionTransformer):
    """mmpretrain's ViT returning both the CLS token and the patch grid.

    Position embeddings are stored for ``img_size`` and interpolated for
    other input sizes, so a 224-px model also runs on 64-px images (a 4×4
    grid).

    Args:
        arch (str | dict): 'tiny' (192-d, 12 layers, 3 heads), 'small'
            (384, 12, 6), 'base' (768, 12, 12), or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads`` and optionally
            ``feedforward_channels`` (default 4 × embed_dims).
        img_size (int): Size the position embeddings are built for.
            Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        **kwargs: Other :class:`mmpretrain.models.VisionTransformer`
            arguments (drop_path_rate, frozen_stages, init_cfg, ...).
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'small',
                 img_size: int = 224,
                 patch_size: int = 16,
                 **kwargs) -> None:
        for fixed in ('out_type', 'with_cls_token', 'out_indices'):
            if fixed in kwargs:
                raise ValueError(
                    f'DenseViTBackbone sets `{fixed}` itself (it always '
                    'returns the last layer CLS token and patch grid); '
                    'remove it from the config.')
        super().__init__(
            arch=resolve_arch(arch),
            img_size=img_size,
            patch_size=patch_size,
            out_type='raw',
            with_cls_token=True,
            out_indices=-1,
            **kwargs)
        self.patch_size = patch_size

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Return ``(cls (B, C), patches (B, C, H/16, W/16))``."""
        if x.dim() != 4 or x.shape[-2] % self.patch_size \
                or x.shape[-1] % self.patch_size:
            raise ValueError(
                f'DenseViTBackbone expects (B, 3, H, W) images with H and W '
                f'multiples of patch_size={self.patch_size}, got '
                f'{tuple(x.shape)}. Fix: crop/resize to e.g. 224 or 64 px.')
        tokens = super().forward(x)[-1]
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        cls = tokens[:, 0]
        patches = tokens[:, self.num_extra_tokens:].transpose(1, 2).reshape(
            x.shape[0], self.embed_dims, *grid)
        return cls, patches
