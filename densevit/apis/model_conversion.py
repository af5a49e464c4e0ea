"""Convert weights between DenseViT and the ViTs people already have.

- :func:`extract_backbone`: the online backbone of a DenseViT checkpoint, in
  mmpretrain's ``VisionTransformer`` layout (``DenseViTBackbone``'s too).
- :func:`timm_to_densevit`: a timm ``VisionTransformer`` state dict
  (``vit_{tiny,small,base}_patch16_{224,384}``, DINO's ViTs, DINOv2's
  ``vit_*_patch14_dinov2`` and ``..._reg4_dinov2``, CLIP-style pre-norm;
  also the original DINOv2 release files) → ``DenseViTBackbone`` weights and
  the backbone config that loads them.
- :func:`densevit_to_timm`: a DenseViT checkpoint or backbone state dict →
  timm weights and the ``VisionTransformer`` arguments that load them.

Name map (block ``N``; timm → mmpretrain): ``patch_embed.proj`` →
``patch_embed.projection``, ``norm_pre`` → ``pre_norm``,
``blocks.N.norm1`` / ``norm2`` → ``layers.N.ln1`` / ``ln2``,
``blocks.N.attn.{qkv,proj}`` → ``layers.N.attn.{qkv,proj}`` (the same
q|k|v row order), ``blocks.N.ls1.gamma`` / ``ls2.gamma`` →
``layers.N.attn.gamma1.weight`` / ``ffn.gamma2.weight`` (LayerScale),
``blocks.N.mlp.fc1`` / ``fc2`` → ``layers.N.ffn.layers.0.0`` /
``layers.1``, ``norm`` → ``ln1`` (the final norm).

Position embeddings: DenseViT's (mmpretrain's) hold the CLS position and
the patch grid, and registers get none. A position of a prefix token is a
constant added to a learned constant, so it is folded into the token where
one side lacks it: timm's ``no_embed_class`` models (DINOv2 with registers,
DeiT III) get a zero CLS position in DenseViT, whose CLS position goes back
into timm's ``cls_token``; register positions (timm models without
``no_embed_class``) go into ``reg_token``. Folding changes no output at any
image size: neither side resizes prefix positions. (The patch positions
are resized with different kernels at other sizes: docs/get_started.md,
"Start from a timm ViT".)

Not representable (a :class:`ConversionError` names the weights): models
without a CLS token (``class_token=False``: SigLIP, ...), gated MLPs (SwiGLU:
``vit_giant_patch14_dinov2``), q/k norms (``qk_norm``), extra norms inside
attention or the MLP, a norm inside the patch embedding. The activation is
not in the weights: timm's QuickGELU models (``*_clip_quickgelu_*``) convert
without error but compute another function with GELU; do not convert them.
"""
import io
import math
import os.path as osp
import re
from typing import (Any, Callable, Dict, List, NamedTuple, Optional,
                    Sequence, Tuple, Union)

import torch
from torch import Tensor, nn

from densevit.engine.compat import (UnreadableCheckpointError,
                                    atomic_write_bytes, load_from_local_file)
from densevit.engine.utils import (CheckpointMismatchError, compare_state_dict,
                                   state_dict_of)
from densevit.registry import MODELS

#: Heads of timm's ViTs by width (ViT-Ti/S/B/L/H and the 1408-d giant);
#: the weights do not hold the head count.
TIMM_NUM_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}

# (timm, DenseViT) name prefixes inside block / layer N.
_BLOCK_NAMES = (
    ('norm1.', 'ln1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('ls1.gamma', 'attn.gamma1.weight'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('ls2.gamma', 'ffn.gamma2.weight'),
)
# (timm, DenseViT) names outside the blocks; cls_token, reg_token and
# pos_embed are converted on their own.
_TOP_NAMES = (
    ('patch_embed.proj.', 'patch_embed.projection.'),
    ('norm_pre.', 'pre_norm.'),
    ('norm.', 'ln1.'),
)
_BLOCKS = ('blocks.', 'layers.')
# timm's classification head (and the pooling before it): not a backbone
# weight; DenseViT's CLS output is the token before pooling.
_TIMM_HEAD = ('head.', 'fc_norm.', 'attn_pool.')
# What a timm weight that has no DenseViT name is, for the error.
_UNSUPPORTED = (
    (r'\.(q|k)_norm\.', 'q/k norms (timm qk_norm=True)'),
    (r'\.attn\.norm\.', 'a norm inside attention (scale_attn_norm)'),
    (r'\.mlp\.norm\.', 'a norm inside the MLP (scale_mlp_norm)'),
    (r'\.mlp\.(fc1_g|fc1_x|w12|w3)\.',
     'a gated MLP (SwiGLU, e.g. vit_giant_patch14_dinov2)'),
    (r'^patch_embed\.norm\.', 'a norm in the patch embedding'),
)
#: Layer-scale start value given to converted configs; any value > 0
#: creates the weights, which the checkpoint then overwrites.
LAYER_SCALE_INIT = 1e-5


class ConversionError(ValueError):
    """Weights that cannot be converted: the message names them and the
    fix."""


class Conversion(NamedTuple):
    """What a conversion returns.

    Attributes:
        state_dict (dict): the converted weights.
        config (dict): what builds the model they load into strictly: a
            ``DenseViTBackbone`` config (:func:`timm_to_densevit`) or the
            keyword arguments of timm's ``VisionTransformer``
            (:func:`densevit_to_timm`).
        dropped (list[str]): source weights left out on purpose (timm's
            classification head, DINOv2's ``mask_token``).
    """

    state_dict: Dict[str, Tensor]
    config: Dict[str, Any]
    dropped: List[str]


def extract_backbone(checkpoint: dict, prefix: str = 'backbone.') -> dict:
    """``{'state_dict': ...}`` or a bare state dict → the backbone's."""
    state = checkpoint.get('state_dict', checkpoint)
    backbone = {k[len(prefix):]: v for k, v in state.items()
                if k.startswith(prefix)}
    if not backbone:
        raise ConversionError(f'No `{prefix}*` weights in the checkpoint: '
                              'is it a DenseViT checkpoint?')
    return backbone


def build_on_meta(build: Callable[..., nn.Module], *args,
                  **kwargs) -> nn.Module:
    """``build(*args, **kwargs)`` with its tensors on the meta device: the
    names and shapes of a model (for :func:`require_fit`) without its
    memory."""
    with torch.device('meta'):
        return build(*args, **kwargs)


def require_fit(model: nn.Module, state_dict: Dict[str, Tensor],
                problem: str, fix: str) -> None:
    """Raise :class:`~densevit.engine.utils.CheckpointMismatchError`
    listing the weights of ``state_dict`` that a strict load into ``model``
    rejects (missing, unexpected, other shapes), after ``problem`` and
    before ``Fix: fix``."""
    mismatch = compare_state_dict(model, state_dict)
    if mismatch:
        raise CheckpointMismatchError(
            f'{problem}:\n{mismatch.describe()}\nFix: {fix}.')


def build_timm_model(name: str, **kwargs) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)`` on the meta
    device (nothing downloaded), with an error saying how to get timm."""
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            'Checking against a timm model needs timm: pip install timm.'
        ) from exc
    return build_on_meta(timm.create_model, name, pretrained=False, **kwargs)


def load_weights_file(path: str) -> Dict[str, Any]:
    """A checkpoint file, read without running code from it: ``.safetensors``
    with safetensors, anything else (``.pth``, ``.bin``) with
    ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        UnreadableCheckpointError: the file cannot be read (safely).
    """
    if not path.endswith('.safetensors'):
        return load_from_local_file(path, map_location='cpu')
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path} does not exist.')
    from safetensors.torch import load_file
    try:
        return load_file(path, device='cpu')
    except Exception as exc:  # safetensors' errors on damaged bytes
        raise UnreadableCheckpointError(
            path, f'is not a readable safetensors file ({exc})',
            'copy the file again if it was transferred') from exc


def save_weights_file(state_dict: Dict[str, Tensor], path: str,
                      safetensors: bool = False) -> None:
    """Write ``state_dict`` atomically (a crash leaves the old file or
    none): with safetensors (``format: pt`` metadata, as Hugging Face's
    libraries expect), or with ``torch.save`` as ``{'state_dict': ...}``,
    which mmengine's ``Pretrained`` init, timm's ``load_checkpoint`` and
    ``torch.load(weights_only=True)`` read."""
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    if safetensors:
        from safetensors.torch import save

        # Own storage each: safetensors refuses tensors sharing memory.
        data = save({k: v.clone() for k, v in tensors.items()},
                    metadata={'format': 'pt'})
    else:
        buffer = io.BytesIO()
        torch.save({'state_dict': tensors}, buffer)
        data = buffer.getvalue()
    atomic_write_bytes(data, path)


def _rename(key: str, to_densevit: bool) -> Optional[str]:
    """A weight's name on the other side, None if it has none."""
    src, dst = (0, 1) if to_densevit else (1, 0)
    block = re.match(rf'{re.escape(_BLOCKS[src])}(\d+)\.(.+)$', key)
    if block:
        index, rest = block.groups()
        for names in _BLOCK_NAMES:
            if rest.startswith(names[src]):
                return (f'{_BLOCKS[dst]}{index}.{names[dst]}'
                        f'{rest[len(names[src]):]}')
        return None
    for names in _TOP_NAMES:
        if key.startswith(names[src]):
            return names[dst] + key[len(names[src]):]
    return None


def _rename_all(state: Dict[str, Tensor], to_densevit: bool,
                skip: Sequence[str] = ()) -> Tuple[Dict[str, Tensor],
                                                   List[str]]:
    """``(renamed weights, names without a counterpart)`` of every weight
    but the prefix tokens and positions (converted on their own) and
    ``skip``."""
    out, unsupported = {}, []
    for key, value in state.items():
        if key in ('cls_token', 'reg_token', 'pos_embed') or key in skip:
            continue
        name = _rename(key, to_densevit)
        if name is None:
            unsupported.append(key)
        else:
            out[name] = value
    return out, unsupported


def _patch_grid(num_positions: int, prefix_options: Sequence[int],
                patch_size: int,
                img_size: Union[int, Sequence[int], None]) -> Tuple[
                    Tuple[int, int], int]:
    """``(grid, prefix positions)`` of a position embedding with
    ``num_positions`` rows: a patch grid (square unless ``img_size`` says
    otherwise) after one of ``prefix_options`` prefix-token positions."""
    if img_size is not None:
        sides = (img_size, img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        wanted = (sides[0] // patch_size, sides[1] // patch_size)
    found = []
    for prefix in dict.fromkeys(prefix_options):
        cells = num_positions - prefix
        if img_size is not None:
            if cells == wanted[0] * wanted[1]:
                found.append((wanted, prefix))
        elif cells > 0 and math.isqrt(cells)**2 == cells:
            found.append(((math.isqrt(cells), ) * 2, prefix))
    if len(found) == 1:
        return found[0]
    given = f' and img_size={img_size}' if img_size is not None else ''
    raise ConversionError(
        f'pos_embed has {num_positions} positions: with patch_size='
        f'{patch_size}{given} that is '
        + ('no' if not found else 'more than one') +
        f' patch grid after {" or ".join(map(str, prefix_options))} '
        'prefix-token positions. Fix: give the image size the weights were '
        'trained at (img_size, CLI --img-size), or the timm model '
        '(CLI --timm-model).')


def _unwrap_timm(checkpoint: Any, dropped: List[str]) -> Dict[str, Tensor]:
    """A timm-layout state dict from what timm, DeiT/DINO (``{'model':
    ...}``) and DINOv2's release files hold."""
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('model'), dict):
        checkpoint = checkpoint['model']
    state = dict(state_dict_of(checkpoint))
    if any(key.startswith('backbone.') for key in state):
        raise ConversionError(
            'These weights have `backbone.*` names: a DenseViT (or other '
            'mmpretrain) checkpoint, not a timm state dict. Fix: convert it '
            'with densevit_to_timm (tools/model_converters/'
            'densevit_to_timm.py), or pass the timm model\'s state_dict().')
    # The DINOv2 release's names (timm's own loader renames them too).
    if 'register_tokens' in state:
        state['reg_token'] = state.pop('register_tokens')
    if 'mask_token' in state:  # masked-image modelling only
        state.pop('mask_token')
        dropped.append('mask_token')
    return state


def timm_to_densevit(checkpoint: Dict[str, Any],
                     num_heads: Optional[int] = None,
                     img_size: Union[int, Sequence[int], None] = None
                     ) -> Conversion:
    """timm ``VisionTransformer`` weights → ``DenseViTBackbone`` weights.

    Args:
        checkpoint (dict): ``model.state_dict()`` of a timm
            ``VisionTransformer`` (bare, or under ``'state_dict'`` or
            ``'model'``), or an original DINOv2 release file.
        num_heads (int, optional): attention heads; the weights do not say.
            Defaults to timm's count for the width (:data:`TIMM_NUM_HEADS`).
        img_size (int | tuple, optional): the image size the position
            embeddings are for; needed only for a non-square grid or when
            the length of ``pos_embed`` fits two layouts. Defaults to the
            square grid ``pos_embed`` holds.

    Returns:
        Conversion: ``state_dict`` in ``DenseViTBackbone`` names (no
        prefix, as ``init_cfg=dict(type='Pretrained', checkpoint=...)``
        loads them), ``config`` the backbone config (``arch``,
        ``img_size``, ``patch_size``, ``num_register_tokens``,
        ``layer_scale_init_value``, ``qkv_bias``, ``pre_norm``,
        ``final_norm``), ``dropped`` the head weights.

    Raises:
        ConversionError: not a timm ViT with a CLS token, or weights
            DenseViT cannot represent (named in the message).
        CheckpointMismatchError: the converted weights do not fit the
            config built from them (a layout this function misread).
    """
    dropped: List[str] = []
    state = _unwrap_timm(checkpoint, dropped)
    required = ('pos_embed', 'patch_embed.proj.weight',
                'blocks.0.attn.qkv.weight')
    missing = [key for key in required if key not in state]
    if missing:
        raise ConversionError(
            f'Not a timm VisionTransformer state dict: no {missing}. It '
            'needs learned position embeddings, a conv patch embedding and '
            f'`blocks.N.*` (found e.g. {sorted(state)[:5]}).')
    if 'cls_token' not in state:
        raise ConversionError(
            'The timm model has no CLS token (class_token=False, e.g. '
            'SigLIP or global-average-pooled ViTs); DenseViT trains on the '
            'CLS token and cannot use it. Fix: start from a ViT with a CLS '
            'token (vit_*_patch16_224, *_dinov2, ...).')
    dropped += [key for key in state if key.startswith(_TIMM_HEAD)]

    out, unsupported = _rename_all(state, to_densevit=True, skip=dropped)
    if unsupported:
        kinds = sorted({what for key in unsupported
                        for pattern, what in _UNSUPPORTED
                        if re.search(pattern, key)})
        raise ConversionError(
            'DenseViTBackbone (mmpretrain\'s VisionTransformer) cannot '
            f'represent {len(unsupported)} weight(s) of this model: '
            f'{unsupported[:8]}' + (f' ({"; ".join(kinds)})' if kinds else '')
            + '. Fix: start from a plain pre-norm ViT (timm '
            'vit_*_patch16_*, *_dinov2 up to large, *_reg4_dinov2).')

    embed_dims = state['cls_token'].shape[-1]
    proj = state['patch_embed.proj.weight']
    if proj.shape[1] != 3 or proj.shape[2] != proj.shape[3]:
        raise ConversionError(
            f'patch_embed.proj.weight has shape {list(proj.shape)}: DenseViT '
            'takes 3-channel images cut into square patches.')
    patch_size = proj.shape[-1]
    fc1, fc2 = state['blocks.0.mlp.fc1.weight'], state[
        'blocks.0.mlp.fc2.weight']
    if fc1.shape[0] != fc2.shape[1]:
        raise ConversionError(
            f'blocks.0.mlp.fc1 has {fc1.shape[0]} outputs but fc2 takes '
            f'{fc2.shape[1]}: a packed gated MLP (SwiGLU, e.g. '
            'vit_giant_patch14_dinov2), which DenseViTBackbone cannot '
            'represent. Fix: start from vit_large_patch14_dinov2 or smaller.')
    if num_heads is None:
        if embed_dims not in TIMM_NUM_HEADS:
            raise ConversionError(
                f'The weights do not say how many attention heads this '
                f'{embed_dims}-wide ViT has (timm\'s standard widths: '
                f'{TIMM_NUM_HEADS}). Fix: pass num_heads (CLI --num-heads, '
                'or --timm-model NAME).')
        num_heads = TIMM_NUM_HEADS[embed_dims]

    registers = state['reg_token'].shape[1] if 'reg_token' in state else 0
    pos = state['pos_embed']
    # timm: positions for CLS + registers, or none (no_embed_class); the
    # DINOv2 release: CLS only.
    grid, prefix = _patch_grid(pos.shape[1], (1 + registers, 1, 0),
                               patch_size, img_size)
    cls_position = pos[:, :1] if prefix else torch.zeros_like(pos[:, :1])
    out['cls_token'] = state['cls_token']
    out['pos_embed'] = torch.cat([cls_position, pos[:, prefix:]], dim=1)
    if registers:
        out['reg_token'] = state['reg_token'] + (
            pos[:, 1:1 + registers] if prefix == 1 + registers else 0)

    num_layers = 1 + max(
        int(key.split('.')[1]) for key in state if key.startswith('blocks.'))
    config = dict(
        type='DenseViTBackbone',
        arch=dict(embed_dims=embed_dims, num_layers=num_layers,
                  num_heads=num_heads, feedforward_channels=fc1.shape[0]),
        img_size=grid[0] * patch_size if grid[0] == grid[1] else
        (grid[0] * patch_size, grid[1] * patch_size),
        patch_size=patch_size,
        # Every structural setting, also the defaults: a config inheriting
        # another backbone's settings must not keep a different one.
        num_register_tokens=registers,
        layer_scale_init_value=(LAYER_SCALE_INIT if 'blocks.0.ls1.gamma'
                                in state else 0.),
        qkv_bias='blocks.0.attn.qkv.bias' in state,
        pre_norm='norm_pre.weight' in state,  # also no patch-embedding bias
        final_norm='norm.weight' in state)

    import densevit.models  # noqa: F401 (registers DenseViTBackbone)
    require_fit(
        build_on_meta(MODELS.build, config), out,
        f'The converted weights do not fit the backbone config built from '
        f'them, {config}', 'this timm variant is not supported; start from '
        'a plain pre-norm ViT (timm vit_*_patch16_*, *_dinov2)')
    return Conversion(out, config, dropped)


def densevit_to_timm(checkpoint: Dict[str, Any],
                     num_heads: int,
                     img_size: Union[int, Sequence[int], None] = None,
                     no_embed_class: Optional[bool] = None) -> Conversion:
    """DenseViT's online backbone → timm ``VisionTransformer`` weights.

    Args:
        checkpoint (dict): a DenseViT checkpoint (``backbone.*`` weights;
            the key encoder is left out), or a backbone state dict
            (:func:`extract_backbone`, :func:`timm_to_densevit` output).
        num_heads (int): attention heads of the backbone (its config's
            ``arch``); the weights do not say.
        img_size (int | tuple, optional): the backbone's ``img_size``;
            needed only for a non-square grid. Defaults to the square grid
            ``pos_embed`` holds.
        no_embed_class (bool, optional): the timm layout: True puts no
            position on the CLS token (folded into ``cls_token``), as
            timm's DINOv2-with-registers and DeiT III models; False keeps
            it in ``pos_embed`` (zero positions for registers). Defaults
            to True with registers, else False (timm's ViTs).

    Returns:
        Conversion: ``state_dict`` in timm names (no classification head),
        ``config`` the ``timm.models.VisionTransformer`` arguments that
        load it strictly (``num_classes=0``, ``global_pool='token'``; also
        for ``timm.create_model(name, **config)``), ``dropped`` empty.

    Raises:
        ConversionError: not a DenseViT backbone, or weights timm's
            ``VisionTransformer`` cannot represent.
        CheckpointMismatchError: (with timm installed) the weights do not
            fit the timm model built from ``config``.
    """
    state = state_dict_of(checkpoint)
    if any(key.startswith('backbone.') for key in state):
        state = extract_backbone(state)
    required = ('cls_token', 'pos_embed', 'patch_embed.projection.weight',
                'layers.0.attn.qkv.weight')
    missing = [key for key in required if key not in state]
    if missing:
        raise ConversionError(
            f'Not a DenseViT checkpoint or backbone state dict: no '
            f'{missing} (found e.g. {sorted(state)[:5]}). Fix: pass a '
            'checkpoint of tools/train.py or a backbone file of '
            'tools/model_converters/extract_backbone.py.')
    registers = state['reg_token'].shape[1] if 'reg_token' in state else 0
    if no_embed_class is None:
        no_embed_class = bool(registers)

    out, unsupported = _rename_all(state, to_densevit=False)
    if unsupported:
        raise ConversionError(
            'timm\'s VisionTransformer has no place for '
            f'{len(unsupported)} weight(s) of this backbone: '
            f'{unsupported[:8]}. Fix: export a DenseViTBackbone with the '
            'standard MLP (ffn_type origin) and out_type raw.')

    patch_size = state['patch_embed.projection.weight'].shape[-1]
    pos, cls = state['pos_embed'], state['cls_token']
    grid, _ = _patch_grid(pos.shape[1], (1, ), patch_size, img_size)
    if no_embed_class:
        out['cls_token'] = cls + pos[:, :1]
        out['pos_embed'] = pos[:, 1:]
    else:
        out['cls_token'] = cls
        out['pos_embed'] = torch.cat(
            [pos[:, :1], pos.new_zeros(1, registers, pos.shape[2]),
             pos[:, 1:]], dim=1)
    if registers:
        out['reg_token'] = state['reg_token']

    embed_dims = cls.shape[-1]
    if embed_dims % num_heads:
        raise ConversionError(
            f'num_heads={num_heads} does not divide the backbone width '
            f'{embed_dims}. Fix: give the num_heads of its config\'s arch.')
    hidden = state['layers.0.ffn.layers.0.0.weight'].shape[0]
    config = dict(
        img_size=grid[0] * patch_size if grid[0] == grid[1] else
        (grid[0] * patch_size, grid[1] * patch_size),
        patch_size=patch_size,
        embed_dim=embed_dims,
        depth=1 + max(int(key.split('.')[1]) for key in state
                      if key.startswith('layers.')),
        num_heads=num_heads,
        mlp_ratio=hidden / embed_dims,
        # Every structural setting, also the defaults: they override those
        # of a named model in timm.create_model(name, **config).
        qkv_bias='layers.0.attn.qkv.bias' in state,
        init_values=(LAYER_SCALE_INIT if 'layers.0.attn.gamma1.weight'
                     in state else None),
        class_token=True,
        reg_tokens=registers,
        no_embed_class=no_embed_class,
        pre_norm='pre_norm.weight' in state,
        final_norm='ln1.weight' in state,
        global_pool='token',
        num_classes=0)

    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        pass  # the export does not need timm; the check does
    else:
        require_fit(
            build_on_meta(VisionTransformer, **config), out,
            'The converted weights do not fit timm\'s VisionTransformer('
            f'**{config})', 'this backbone variant is not supported; export '
            'a DenseViTBackbone with the standard MLP')
    return Conversion(out, config, [])
