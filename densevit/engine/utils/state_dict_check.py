"""Compare a checkpoint's weights with a model before loading them.

``torch.nn.Module.load_state_dict(strict=False)`` and MMEngine's loaders
(``load_checkpoint``, ``Runner.load_checkpoint``, which ``load_from`` and
resume use) skip missing, unexpected and wrongly shaped weights with a
warning, so a checkpoint of another architecture silently leaves random
weights behind. :func:`compare_state_dict` finds those weights without
touching the model; :func:`check_state_dict` turns them into an error, or,
for an explicit partial load, into a log line.
"""
import copy
import itertools
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model they are loaded into."""


@dataclass
class StateDictMismatch:
    """What a strict load of a state dict into a model would reject.

    Keys are the model's (after the model's own key upgrades and resizing,
    e.g. mmpretrain's position-embedding interpolation).

    Attributes:
        missing (list[str]): model weights the state dict does not have.
        unexpected (list[str]): state dict entries the model does not have.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``
            of weights present in both with different shapes.
    """

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 10) -> str:
        """The problems, one per line, at most ``limit`` per kind."""

        def section(title: str, items: List[str]) -> List[str]:
            if not items:
                return []
            more = len(items) - limit
            return ([f'{title} ({len(items)}):'] +
                    [f'  {item}' for item in items[:limit]] +
                    ([f'  ... and {more} more'] if more > 0 else []))

        mismatched = [
            f'{key}: checkpoint {list(ckpt)}, model {list(model)}'
            for key, ckpt, model in self.mismatched
        ]
        return '\n'.join(
            section('shape mismatch', mismatched) +
            section('missing in the checkpoint', self.missing) +
            section('not in the model', self.unexpected))


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta
    device: same structure and load hooks, no memory, and loading into it
    leaves ``model`` untouched."""
    memo: Dict[int, Any] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        meta = torch.empty_like(tensor, device='meta')
        if isinstance(tensor, nn.Parameter):
            meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = meta
    return copy.deepcopy(model, memo)


def compare_state_dict(model: nn.Module,
                       state_dict: Dict[str, Any]) -> StateDictMismatch:
    """Compare ``state_dict`` with ``model`` without modifying either.

    Runs the model's own loading code (``_load_from_state_dict`` overrides
    and load pre-hooks, so renamed legacy keys and resized position
    embeddings count as matching) on a meta-device copy of the model.

    Args:
        model (nn.Module): the model (model wrappers are unwrapped).
        state_dict (dict): the weights to load, keys as the model's.

    Returns:
        StateDictMismatch: empty (falsy) when a strict load would succeed.
    """
    if is_model_wrapper(model):
        model = model.module
    shadow = _meta_copy(model)
    result = StateDictMismatch()

    def record_mismatches(module, local_state, prefix, *args) -> None:
        # Registered last, so it sees the keys and tensors after the
        # module's own pre-hooks; takes the mismatches out so that torch
        # neither raises nor loads them.
        named = itertools.chain(
            module._parameters.items(),
            ((name, buf) for name, buf in module._buffers.items()
             if name not in module._non_persistent_buffers_set))
        for name, tensor in named:
            key = prefix + name
            if tensor is None or key not in local_state:
                continue
            given = local_state[key]
            given_shape = (tuple(given.shape) if isinstance(
                given, torch.Tensor) else type(given).__name__)
            if given_shape != tuple(tensor.shape):
                result.mismatched.append(
                    (key, given_shape, tuple(tensor.shape)))
                del local_state[key]

    for module in shadow.modules():
        module.register_load_state_dict_pre_hook(record_mismatches)
    # assign=True: the meta tensors are replaced, nothing is copied.
    missing, unexpected = shadow.load_state_dict(
        state_dict, strict=False, assign=True)
    taken_out = {key for key, _, _ in result.mismatched}
    result.missing = [key for key in missing if key not in taken_out]
    result.unexpected = list(unexpected)
    return result


def state_dict_of(checkpoint: Any,
                  source: str = 'the checkpoint') -> Dict[str, Any]:
    """The model weights of a checkpoint (``checkpoint['state_dict']`` or
    the checkpoint itself), without the ``module.`` prefix of wrapped
    models, as MMEngine's loaders read them. ``source`` names the file in
    the error for a checkpoint that is not a dict."""
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'Checkpoint {source} holds a {type(checkpoint).__name__}, not '
            'a dict of weights. Fix: save {"state_dict": model.state_dict()}.')
    state = checkpoint.get('state_dict', checkpoint)
    return {re.sub(r'^module\.', '', key): value
            for key, value in state.items()}


def _prefix_hint(model: nn.Module, mismatch: StateDictMismatch) -> str:
    """A hint when the checkpoint holds one child module's weights alone
    (e.g. ``tools/model_converters/extract_backbone.py`` output)."""
    missing = set(mismatch.missing)
    for name, _ in model.named_children():
        hits = sum(f'{name}.{key}' in missing for key in mismatch.unexpected)
        if mismatch.unexpected and hits * 2 >= len(mismatch.unexpected):
            return (f'\nIt looks like the weights of `model.{name}` alone '
                    '(e.g. tools/model_converters/extract_backbone.py '
                    f'output): load it with `model.{name}.init_cfg='
                    "dict(type='Pretrained', checkpoint=PATH)`.")
    return ''


def check_state_dict(model: nn.Module,
                     state_dict: Dict[str, Any],
                     source: str,
                     strict: bool = True,
                     partial_option: str = '') -> StateDictMismatch:
    """Refuse (or, with ``strict=False``, report) weights that do not fit.

    Args:
        model (nn.Module): the model the weights are for.
        state_dict (dict): the weights (see :func:`state_dict_of`).
        source (str): where they come from, for the messages (a path).
        strict (bool): raise on any mismatch. With False, the mismatch is
            logged as a warning listing what the load leaves out.
        partial_option (str): how the caller asks for a partial load
            (e.g. ``'--partial-load'``), named in the error as the fix.

    Returns:
        StateDictMismatch: what does not fit (empty when all does).

    Raises:
        CheckpointMismatchError: ``strict`` and a mismatch.
    """
    if is_model_wrapper(model):
        model = model.module
    mismatch = compare_state_dict(model, state_dict)
    if not mismatch:
        return mismatch
    if strict:
        fix = ('Fix: use a checkpoint of this config (the same architecture '
               'and queue sizes)')
        if partial_option:
            fix += f', or pass {partial_option} to load only the weights ' \
                   'that fit'
        raise CheckpointMismatchError(
            f'Checkpoint {source} does not fit the model '
            f'{type(model).__name__}:\n{mismatch.describe()}'
            f'{_prefix_hint(model, mismatch)}\n{fix}.')
    log_partial_load(source, mismatch)
    return mismatch


def log_partial_load(source: str, mismatch: StateDictMismatch) -> None:
    """Warn which weights a partial load of ``source`` leaves out."""
    print_log(
        f'Partial load of {source}: these weights keep their initial '
        f'values or are ignored:\n{mismatch.describe()}',
        logger='current',
        level=logging.WARNING)
