"""Catch config mistakes before a Runner builds anything.

mmengine reports an unknown ``type`` or keyword deep inside the build of the
component, after the dataset, the model and the hooks may already have been
constructed; a misspelt top-level key (``train_dataloder``) is silently
ignored. :func:`check_config` walks the whole config first and raises one
``ValueError`` that names the dotted field and the fix.
"""
import difflib
import inspect
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import Registry

from densevit import registry as densevit_registry

# Keyword arguments of mmengine's Runner: a top-level key close to one of
# these but not equal is almost surely a typo of it.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name', 'cfg',
    'model_wrapper_cfg', 'runner_type', 'compile')

# Keys every registry passes to builders besides the constructor's own.
_BUILDER_KEYS = {'type', '_scope_'}
# Keys consumed by the builder of a field rather than by its class: the
# optimizer-wrapper constructor takes these out before building the wrapper.
_FIELD_BUILDER_KEYS = {'optim_wrapper': {'constructor', 'paramwise_cfg'}}

# Fields whose ``type`` is resolved by a builder with its own conventions
# (optimizer classes by name from torch, samplers, collate functions, ...)
# or by a component that interprets them itself.
_OPAQUE_FIELDS = {'init_cfg', 'collate_fn', 'optimizer', 'paramwise_cfg',
                  'backend_args', 'file_client_args'}


def _registries() -> List[Registry]:
    return [
        getattr(densevit_registry, name)
        for name in densevit_registry.__all__
    ]


def _lookup(type_name: str) -> Optional[Any]:
    """The class registered as ``type_name`` in any DenseViT registry."""
    for reg in _registries():
        obj = reg.get(type_name)
        if obj is not None:
            return obj
    return None


def _known_type_names() -> List[str]:
    names = set()
    for reg in _registries():
        current = reg
        while current is not None:
            names.update(current.module_dict)
            current = current.parent
    return sorted(names)


def _walk(node: Any, path: str) -> Iterator[Tuple[str, dict]]:
    """Yield (dotted path, dict) for every dict with a string ``type``."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path, node
        for key, value in node.items():
            if key in _OPAQUE_FIELDS:
                continue
            yield from _walk(value, f'{path}.{key}' if path else key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]')


def _accepted_keys(obj: Any) -> Optional[set]:
    """Constructor keywords of ``obj``, or None when it takes **kwargs."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name != 'self'}


def _pretrained_problems(node: Any, path: str) -> Iterator[str]:
    """Empty or missing ``Pretrained`` checkpoints, which fail mid-init."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            ckpt = init_cfg.get('checkpoint')
            field = f'{path}.init_cfg.checkpoint'
            if not ckpt:
                yield (f'`{field}` is empty. Fix: pass the pretrained '
                       f'checkpoint, e.g. --cfg-options {field}='
                       'work_dirs/<run>/epoch_N.pth')
            elif '://' not in str(ckpt) and not osp.exists(str(ckpt)):
                yield f'`{field}`: no file {ckpt!r}.'
        for key, value in node.items():
            yield from _pretrained_problems(value,
                                            f'{path}.{key}' if path else key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_problems(value, f'{path}[{i}]')


def check_config(cfg: Config, training: bool = True) -> None:
    """Raise ``ValueError`` for unknown types, keys and top-level fields.

    Args:
        cfg (Config): the config to check.
        training (bool): also check what only training uses: pretrained
            checkpoints named by ``init_cfg`` must be given and exist.
            Defaults to True.
    """
    problems = []
    for key in cfg.keys():
        if key in RUNNER_KEYS:
            continue
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.85)
        if close:
            problems.append(f'top-level key `{key}` is not a Runner field; '
                            f'did you mean `{close[0]}`?')
    known = None
    for path, node in _walk(cfg.to_dict() if isinstance(cfg, Config)
                            else dict(cfg), ''):
        type_name = node['type']
        obj = _lookup(type_name)
        if obj is None:
            known = known or _known_type_names()
            hint = difflib.get_close_matches(type_name, known, n=3)
            problems.append(
                f"`{path}.type='{type_name}'` is not a registered type"
                + (f'; did you mean {hint}?' if hint else
                   '; check the spelling or register the class.'))
            continue
        accepted = _accepted_keys(obj)
        if accepted is None:
            continue
        builder_keys = _BUILDER_KEYS | _FIELD_BUILDER_KEYS.get(path, set())
        for key in node:
            if key in builder_keys or key in accepted:
                continue
            hint = difflib.get_close_matches(key, sorted(accepted), n=1)
            problems.append(
                f'`{path}.{key}` is not an argument of {type_name}'
                + (f'; did you mean `{hint[0]}`?' if hint else
                   f'; it accepts {sorted(accepted)}.'))
    if training:
        problems.extend(_pretrained_problems(cfg.get('model'), 'model'))
    if problems:
        raise ValueError('Config errors:\n  - ' + '\n  - '.join(problems))


__all__ = ['check_config', 'RUNNER_KEYS']
