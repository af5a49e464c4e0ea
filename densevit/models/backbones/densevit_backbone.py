"""The ViT backbone of DenseViT: CLS token plus the patch-token grid."""
import difflib
from typing import Any, Dict, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner import CheckpointLoader
from mmpretrain.models.backbones import VisionTransformer
from torch import Tensor, nn

from densevit.engine.utils import (CheckpointMismatchError,
                                   compare_state_dict, log_partial_load,
                                   pretrained_init_cfgs, state_dict_of,
                                   without_pretrained_init_cfgs)
from densevit.registry import MODELS

_REQUIRED_KEYS = ('embed_dims', 'num_layers', 'num_heads')
_ARCH_KEYS = _REQUIRED_KEYS + ('feedforward_channels', )
# timm's (and the DeiT paper's) short names mean other nets in mmpretrain's
# arch zoo ('small' there is 768-d, 8 layers). DenseViT uses mmpretrain's
# names only, and points users of the short names to the equivalent one.
_TIMM_NAMES = {'tiny': 'deit-tiny', 'small': 'deit-small'}
# The keys of a `Pretrained` init_cfg: mmengine's PretrainedInit arguments
# and DenseViT's `strict`.
_PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'map_location', 'strict')


def resolve_arch(arch: Union[str, Dict]) -> Dict:
    """An arch name or dict -> the full arch dict (``embed_dims``,
    ``num_layers``, ``num_heads``, ``feedforward_channels``)."""
    if isinstance(arch, str):
        name = arch.lower()
        if name in _TIMM_NAMES:
            raise ValueError(
                f'DenseViTBackbone arch {arch!r} is ambiguous: timm calls '
                f'{_TIMM_NAMES[name]!r} {arch!r}, while mmpretrain\'s '
                f'{arch!r} is another net. Fix: arch={_TIMM_NAMES[name]!r} '
                "(or 'deit-base' = 'base', 'large', 'huge', any name of "
                "mmpretrain's VisionTransformer.arch_zoo, or a dict).")
        if name not in VisionTransformer.arch_zoo:
            raise ValueError(
                f'Unknown DenseViTBackbone arch {arch!r}. Fix: use one of '
                "mmpretrain's VisionTransformer archs (e.g. 'deit-tiny', "
                "'deit-small', 'deit-base') or a dict with keys "
                f'{_REQUIRED_KEYS} (and optionally feedforward_channels).')
        return dict(VisionTransformer.arch_zoo[name])
    if not isinstance(arch, dict):
        raise TypeError('DenseViTBackbone `arch` must be a str or a dict, '
                        f'got {type(arch).__name__}.')
    # mmpretrain ignores unknown arch keys, so a misspelt one (num_layer)
    # would silently train the default depth.
    unknown = [k for k in arch if k not in _ARCH_KEYS]
    if unknown:
        hints = {
            k: difflib.get_close_matches(str(k), _ARCH_KEYS, n=1)
            for k in unknown
        }
        did_you_mean = ', '.join(f'{h[0]!r} for {k!r}'
                                 for k, h in hints.items() if h)
        raise ValueError(
            f'DenseViTBackbone arch dict has unknown key(s) {unknown}'
            + (f' (did you mean {did_you_mean}?)' if did_you_mean else '')
            + f'. Valid keys: {list(_ARCH_KEYS)}.')
    missing = [k for k in _REQUIRED_KEYS if k not in arch]
    if missing:
        raise ValueError(
            f'DenseViTBackbone arch dict lacks {missing}. Fix: give '
            'e.g. dict(embed_dims=192, num_layers=4, num_heads=3).')
    settings = dict(arch)
    if settings['embed_dims'] % settings['num_heads']:
        raise ValueError(
            f"DenseViTBackbone: embed_dims={settings['embed_dims']} is not "
            f"divisible by num_heads={settings['num_heads']}.")
    settings.setdefault('feedforward_channels', 4 * settings['embed_dims'])
    return settings


def _check_pretrained_cfg(cfg: Dict[str, Any]) -> None:
    unknown = [key for key in cfg if key not in _PRETRAINED_KEYS]
    if unknown:
        raise ValueError(
            f'DenseViTBackbone init_cfg Pretrained has unknown key(s) '
            f'{unknown}. Valid keys: {list(_PRETRAINED_KEYS)}.')
    if 'checkpoint' not in cfg:
        raise ValueError(
            'DenseViTBackbone init_cfg Pretrained has no `checkpoint`. Fix: '
            "init_cfg=dict(type='Pretrained', checkpoint=PATH).")
    if not isinstance(cfg.get('strict', True), bool):
        raise ValueError(
            'DenseViTBackbone init_cfg Pretrained `strict` must be True '
            '(the default: refuse weights that do not fit) or False (load '
            f'what fits), got {cfg["strict"]!r}.')


def _pretrained_hint(mismatch, prefix) -> str:
    """What a mismatch most likely means, when its keys say."""
    if not prefix and any(key.startswith('backbone.')
                          for key in mismatch.unexpected):
        return ('\nThe file holds a whole model (`backbone.*` weights): add '
                "prefix='backbone.' to the init_cfg.")
    if any(key.startswith('blocks.') for key in mismatch.unexpected):
        return ('\nThe file is in timm\'s layout (`blocks.N.*`): convert it '
                'first with tools/model_converters/timm_to_densevit.py.')
    return ''


@MODELS.register_module()
class DenseViTBackbone(VisionTransformer):
    """mmpretrain's ViT returning both the CLS token and the patch grid.

    Position embeddings are stored for ``img_size`` and interpolated for
    other input sizes, so a 224-px model also runs on 64-px images (a 4×4
    grid).

    Args:
        arch (str | dict): a name of mmpretrain's
            ``VisionTransformer.arch_zoo`` with mmpretrain's meaning:
            'deit-tiny' (192-d, 12 layers, 3 heads; timm's ViT-Ti),
            'deit-small' (384, 12, 6; timm's ViT-S), 'deit-base' / 'base'
            (768, 12, 12), 'large', 'huge'... The bare 'tiny' and 'small'
            are refused: mmpretrain's 'small' is 768-d with 8 layers. Or a
            dict with ``embed_dims``, ``num_layers``, ``num_heads`` and
            optionally ``feedforward_channels`` (default 4 × embed_dims).
        img_size (int | tuple[int, int]): Size the position embeddings are
            built for; a multiple of ``patch_size``. Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        num_register_tokens (int): Learned register tokens (Darcet et al.,
            "Vision Transformers Need Registers"; timm's ``reg_token``)
            placed between the CLS token and the patches, without position
            embeddings, as in timm's and DINOv2's register models. They take
            part in attention only: the outputs are the CLS token and the
            patches. Defaults to 0.
        **kwargs: Other :class:`mmpretrain.models.VisionTransformer`
            arguments (drop_path_rate, frozen_stages, init_cfg, ...).
            ``frozen_stages=N`` freezes the stem (patch embedding,
            positions, CLS token, registers, ``pre_norm``) and the first N
            layers: no gradients, and eval mode (no dropout or drop path)
            also after ``train()``.

    A ``Pretrained`` ``init_cfg`` (``checkpoint``, optional ``prefix`` and
    ``map_location`` as in mmengine) is loaded **strictly** by
    :meth:`init_weights`: weights the backbone lacks, left-over weights and
    other shapes stop the load with a
    :class:`~densevit.engine.utils.CheckpointMismatchError` listing them
    (mmengine's ``Pretrained`` would load what fits and leave the rest
    random). ``strict=False`` in the ``init_cfg`` loads what fits and logs
    the rest. Position embeddings of another grid are resized (not a
    mismatch).
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'deit-small',
                 img_size: int = 224,
                 patch_size: int = 16,
                 num_register_tokens: int = 0,
                 **kwargs) -> None:
        for fixed in ('out_type', 'with_cls_token', 'out_indices'):
            if fixed in kwargs:
                raise ValueError(
                    f'DenseViTBackbone sets `{fixed}` itself (it always '
                    'returns the last layer CLS token and patch grid); '
                    'remove it from the config.')
        sides = img_size if isinstance(img_size, (tuple, list)) else [img_size]
        if any(side % patch_size for side in sides):
            fixed = [max(1, side // patch_size) * patch_size for side in sides]
            raise ValueError(
                f'DenseViTBackbone: img_size={img_size} is not a multiple of '
                f'patch_size={patch_size}, and forward() only takes images '
                'cut into whole patches. Fix: use a multiple, e.g. '
                f'img_size={tuple(fixed) if len(fixed) > 1 else fixed[0]}.')
        if (isinstance(num_register_tokens, bool)
                or not isinstance(num_register_tokens, int)
                or num_register_tokens < 0):
            raise ValueError(
                'DenseViTBackbone `num_register_tokens` must be an int >= 0 '
                f'(0: no registers), got {num_register_tokens!r}.')
        for pretrained in pretrained_init_cfgs(kwargs.get('init_cfg')):
            _check_pretrained_cfg(pretrained)
        super().__init__(
            arch=resolve_arch(arch),
            img_size=img_size,
            patch_size=patch_size,
            out_type='raw',
            with_cls_token=True,
            out_indices=-1,
            **kwargs)
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.reg_token = None
        if num_register_tokens:
            self.reg_token = nn.Parameter(
                torch.zeros(1, num_register_tokens, self.embed_dims))
            # Random, not zeros (mmpretrain's CLS token start): registers
            # without position embeddings that start equal stay equal.
            trunc_normal_(self.reg_token, std=0.02)
            if self.frozen_stages > 0:  # frozen with the CLS token
                self.reg_token.requires_grad = False
            # mmpretrain's forward adds the position embeddings to the CLS
            # token and the patches, then applies `drop_after_pos`: the
            # registers go in just before, so they get no position (as in
            # timm and DINOv2) and the same dropout as the other tokens.
            self.drop_after_pos.register_forward_pre_hook(
                self._insert_registers)

    def _insert_registers(self, module: nn.Module,
                          args: Tuple[Tensor]) -> Tuple[Tensor]:
        tokens, = args
        registers = self.reg_token.expand(tokens.shape[0], -1, -1)
        return (torch.cat([tokens[:, :1], registers, tokens[:, 1:]], dim=1), )

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """mmpretrain's layer depths (layer-wise lr decay), with the
        registers and ``pre_norm`` at depth 0 like the rest of the stem
        they are frozen with (mmpretrain would put these names in the last
        depth, with the full learning rate)."""
        if param_name == prefix + 'reg_token' or param_name.startswith(
                prefix + 'pre_norm.'):
            return 0, self.num_layers + 2
        return super().get_layer_depth(param_name, prefix)

    def train(self, mode: bool = True) -> 'DenseViTBackbone':
        """``nn.Module.train``, keeping the frozen stages in eval mode.

        mmpretrain's ``VisionTransformer`` puts them in eval mode once, at
        construction, and ``train()`` would switch their dropout and drop
        path back on.
        """
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    def init_weights(self) -> None:
        """mmpretrain's initialisation, then a strict load of a
        ``Pretrained`` ``init_cfg`` (see the class docstring).

        Raises:
            CheckpointMismatchError: the checkpoint's weights do not fit
                (unless ``strict=False``), or ``prefix`` selects none.
            FileNotFoundError, UnreadableCheckpointError: the checkpoint
                cannot be read; the message names it.
        """
        pretrained = pretrained_init_cfgs(self.init_cfg)
        if not pretrained or self.is_init:
            super().init_weights()  # (mmengine warns about a second call)
            return
        init_cfg = self.init_cfg
        # mmengine's non-strict load replaced by ours; the other inits (and
        # mmpretrain's of the position embeddings) run first.
        self.init_cfg = without_pretrained_init_cfgs(init_cfg)
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        for cfg in pretrained:
            self._load_pretrained(cfg)

    def _load_pretrained(self, cfg: Dict[str, Any]) -> None:
        """Load one ``Pretrained`` init_cfg (checked by the constructor)."""
        path = cfg['checkpoint']
        strict = cfg.get('strict', True)
        prefix = cfg.get('prefix')
        checkpoint = CheckpointLoader.load_checkpoint(
            path, map_location=cfg.get('map_location', 'cpu'))
        state = state_dict_of(checkpoint, source=path)
        if prefix:
            # mmengine's PretrainedInit reads the prefix with a dot too.
            prefix = prefix if prefix.endswith('.') else prefix + '.'
            state = {key[len(prefix):]: value
                     for key, value in state.items() if key.startswith(prefix)}
            if not state:
                raise CheckpointMismatchError(
                    f'Pretrained checkpoint {path} has no `{prefix}*` '
                    f'weights (init_cfg prefix={cfg["prefix"]!r}). Fix: the '
                    "prefix of the backbone in the file ('backbone.' in a "
                    'DenseViT checkpoint), or no prefix for a backbone file '
                    '(timm_to_densevit.py, extract_backbone.py output).')
        mismatch = compare_state_dict(self, state)
        if mismatch and strict:
            raise CheckpointMismatchError(
                f'Pretrained checkpoint {path} does not fit this '
                f'DenseViTBackbone ({self._describe_arch()}):\n'
                f'{mismatch.describe()}{_pretrained_hint(mismatch, prefix)}'
                '\nFix: a backbone config that matches the file (the one '
                'tools/model_converters/timm_to_densevit.py printed for it; '
                '--config CONFIG there checks a config), or strict=False in '
                'the init_cfg to load only the weights that fit.')
        if mismatch:  # an explicit partial load: logged
            log_partial_load(path, mismatch)
            wrong_shape = {key for key, _, _ in mismatch.mismatched}
            state = {k: v for k, v in state.items() if k not in wrong_shape}
        self.load_state_dict(state, strict=False)
        print_log(
            f'DenseViTBackbone: loaded {len(state) - len(mismatch.unexpected)}'
            f' weights from {path}' + ('' if strict else ' (strict=False)'),
            logger='current')

    def _describe_arch(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_layers={self.num_layers}'
                f', num_heads={self.layers[0].attn.num_heads}, patch_size='
                f'{self.patch_size}, num_register_tokens='
                f'{self.num_register_tokens}')

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
        first_patch = self.num_extra_tokens + self.num_register_tokens
        patches = tokens[:, first_patch:].transpose(1, 2).reshape(
            x.shape[0], self.embed_dims, *grid)
        return cls, patches
