"""Catch config mistakes before a Runner builds anything.

mmengine reports an unknown ``type`` or keyword deep inside the build of the
component, after the dataset, the model and the hooks may already have been
constructed; a misspelt top-level key (``train_dataloder``) is silently
ignored. :func:`check_config` walks the whole config first and raises one
``ValueError`` that names the dotted field and the fix: unknown types,
arguments (also those a class passes on to its base through ``**kwargs``,
and dataloader settings), text where a number is expected, a training length
of zero, and view sizes that are not a multiple of the backbone's patch
size. :func:`check_train_batches` catches the one mistake that needs the
built dataset: a batch larger than the data.
"""
import ast
import difflib
import inspect
import os.path as osp
import re
import textwrap
import typing
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_world_size
from mmengine.registry import Registry
from torch.utils.data import DataLoader

from densevit import registry as densevit_registry
from densevit.engine.utils import pretrained_init_cfgs
from .strategy_setup import strategy_problems

# Keyword arguments of mmengine's Runner: a top-level key close to one of
# these but not equal is almost surely a typo of it.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name', 'cfg',
    'model_wrapper_cfg', 'runner_type', 'compile', 'strategy')

# Keys every registry passes to builders besides the constructor's own;
# ``_delete_`` is mmengine's config-merge marker.
_BUILDER_KEYS = {'type', '_scope_', '_delete_'}
# Keys consumed by the builder of a field rather than by its class (list
# indices dropped from the field): the optimizer-wrapper constructor takes
# these out before building the wrapper and passes the model's parameters
# to the optimizer itself; the scheduler builder turns epoch-based schedules
# into iteration-based ones with ``build_iter_from_epoch``.
_FIELD_BUILDER_KEYS = {
    'optim_wrapper': {'constructor', 'paramwise_cfg'},
    'optim_wrapper.optimizer': {'params'},
    'param_scheduler': {'convert_to_iter_based', 'epoch_length'},
}

# Fields whose ``type`` is resolved by a builder with its own conventions
# (collate functions, ...) or by a component that interprets them itself;
# ``strategy`` is checked by :func:`.strategy_setup.strategy_problems`.
_OPAQUE_FIELDS = {'init_cfg', 'collate_fn', 'paramwise_cfg', 'backend_args',
                  'file_client_args', 'strategy'}

# Keys of a ``*_dataloader`` dict: torch's DataLoader arguments plus those
# mmengine's ``Runner.build_dataloader`` takes out first.
_DATALOADER_KEYS = tuple(
    inspect.signature(DataLoader).parameters) + ('num_batch_per_epoch',
                                                 'disable_subprocess_warning')

# Transforms that set the size of the images the model sees, and the
# arguments holding it (the first is always given).
_OUTPUT_SIZE_KEYS = {
    'TwoViewCrop': ('size', 'local_size'),
    'ResizeWithMask': ('size', ),
    'RandomResizedCrop': ('scale', ),
    'CenterCrop': ('crop_size', ),
}


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


def _is_super_init(func: ast.expr) -> bool:
    """Whether ``func`` is ``super().__init__`` (or ``super(C, self)...``)."""
    return (isinstance(func, ast.Attribute) and func.attr == '__init__'
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == 'super')


def _keys_read_before_forwarding(init: Any, var_kw: str) -> Optional[Set[str]]:
    """The keys ``init`` reads by name from ``**var_kw``, if it only reads
    them (``kwargs.pop('x')``, ``'x' in kwargs``...) and passes the rest on
    to ``super().__init__``; None if it does anything else with them."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    parents = {
        child: node
        for node in ast.walk(tree) for child in ast.iter_child_nodes(node)
    }

    def constant_str(node: Optional[ast.AST]) -> Optional[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    read, forwarded = set(), False
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id == var_kw):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.keyword) and parent.arg is None:
            if not _is_super_init(parents[parent].func):
                return None
            forwarded = True
        elif isinstance(parent, ast.Compare):
            # A membership test reads nothing away.
            key = constant_str(parent.left)
            if key is not None:
                read.add(key)
        elif isinstance(parent, ast.Subscript) and constant_str(
                parent.slice) is not None:
            read.add(constant_str(parent.slice))
        elif (isinstance(parent, ast.Attribute)
              and parent.attr in ('get', 'pop', 'setdefault')
              and isinstance(parents.get(parent), ast.Call)
              and parents[parent].args
              and constant_str(parents[parent].args[0]) is not None):
            read.add(constant_str(parents[parent].args[0]))
        else:
            return None
    return read if forwarded else None


def _init_params(obj: Any) -> Optional[Dict[str, inspect.Parameter]]:
    """Keyword arguments ``obj`` accepts, or None when it takes any.

    A class whose ``__init__`` has ``**kwargs`` and only passes them on to
    ``super().__init__`` accepts its base's arguments too, so the walk goes
    up the MRO (a typo in ``DenseViTBackbone(img_sizee=...)`` is one of
    ``VisionTransformer``'s). ``**kwargs`` used any other way (stored,
    handed to another builder) accepts anything.
    """
    if not inspect.isclass(obj):
        try:
            params = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind == p.VAR_KEYWORD for p in params):
            return None
        return {p.name: p for p in params}
    accepted: Dict[str, inspect.Parameter] = {}
    for klass in obj.__mro__:
        init = vars(klass).get('__init__')
        if init is None:
            continue
        if klass is object:
            return accepted
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        var_kw = None
        for p in params:
            if p.kind == p.VAR_KEYWORD:
                var_kw = p.name
            elif p.kind != p.VAR_POSITIONAL:
                accepted.setdefault(p.name, p)
        if var_kw is None:
            return accepted
        read = _keys_read_before_forwarding(init, var_kw)
        if read is None:
            return None
        for key in read:
            accepted.setdefault(
                key, inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY))
    return accepted


def _allows_str(annotation: Any) -> bool:
    if isinstance(annotation, str):  # postponed evaluation
        return 'str' in annotation or 'Any' in annotation
    if annotation in (str, Any):
        return True
    return any(_allows_str(a) for a in typing.get_args(annotation))


def _expects_number(param: inspect.Parameter) -> bool:
    """A numeric default and no annotation that admits text."""
    default = param.default
    return (isinstance(default, (int, float))
            and not isinstance(default, bool)
            and not _allows_str(param.annotation))


def _argument_problems(path: str, node: dict, type_name: str,
                       params: Dict[str, inspect.Parameter]) -> Iterator[str]:
    """Unknown keys of ``node`` and text given for numeric arguments."""
    field = re.sub(r'\[\d+\]', '', path)
    builder_keys = _BUILDER_KEYS | _FIELD_BUILDER_KEYS.get(field, set())
    for key, value in node.items():
        if key in builder_keys:
            continue
        if key not in params:
            yield _unknown_key(f'{path}.{key}', f'an argument of {type_name}',
                               sorted(params))
        elif isinstance(value, str) and _expects_number(params[key]):
            yield (f'`{path}.{key}={value!r}` must be a number (the '
                   f'default of {type_name} is {params[key].default!r}).')


def _unknown_key(field: str, what: str, valid: List[str]) -> str:
    hint = difflib.get_close_matches(field.rsplit('.', 1)[-1], valid, n=1)
    return (f'`{field}` is not {what}'
            + (f'; did you mean `{hint[0]}`?' if hint else
               f'; valid: {valid}.'))


def _dataloader_problems(cfg: Config) -> Iterator[str]:
    """Keys of ``*_dataloader`` dicts that neither torch's DataLoader nor
    mmengine's builder takes (``train_dataloader.batchsize``)."""
    for key in cfg.keys():
        loader = cfg.get(key)
        if not key.endswith('dataloader') or not isinstance(loader, dict):
            continue
        for name in loader:
            if name not in _DATALOADER_KEYS and name not in _BUILDER_KEYS:
                yield _unknown_key(f'{key}.{name}', 'a dataloader setting',
                                   sorted(_DATALOADER_KEYS))


def _train_length_problems(train_cfg: Any) -> Iterator[str]:
    """A training length that is not a positive integer: mmengine trains
    nothing for 0 and exits as if it had finished."""
    if not isinstance(train_cfg, dict):
        return
    for key in ('max_epochs', 'max_iters'):
        if key not in train_cfg:
            continue
        value = train_cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) \
                or value <= 0:
            yield (f'`train_cfg.{key}={value!r}` must be a positive integer: '
                   'the run would train nothing. Fix: e.g. --cfg-options '
                   f'train_cfg.{key}=1.')


def _pipelines(node: Any, path: str) -> Iterator[Tuple[str, list]]:
    """(dotted path, list) of every ``pipeline`` in a dataset config."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f'{path}.{key}'
            if key == 'pipeline' and isinstance(value, (list, tuple)):
                yield child, list(value)
            else:
                yield from _pipelines(value, child)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pipelines(value, f'{path}[{i}]')


def _patch_size_problems(cfg: Config) -> Iterator[str]:
    """View sizes the backbone cannot cut into whole patches; the backbone
    itself only sees them at the first forward pass."""
    model = cfg.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if not isinstance(backbone, dict) or not isinstance(
            backbone.get('type'), str):
        return
    patch_size = backbone.get('patch_size')
    if patch_size is None:
        params = _init_params(_lookup(backbone['type'])) or {}
        patch_size = getattr(params.get('patch_size'), 'default', None)
    if not isinstance(patch_size, int) or isinstance(patch_size, bool):
        return
    for key in cfg.keys():
        loader = cfg.get(key)
        if not key.endswith('dataloader') or not isinstance(loader, dict):
            continue
        for path, pipeline in _pipelines(loader.get('dataset'),
                                         f'{key}.dataset'):
            sized = [(i, t) for i, t in enumerate(pipeline)
                     if isinstance(t, dict) and _OUTPUT_SIZE_KEYS.get(
                         t.get('type'), ('', ))[0] in t]
            if not sized:
                continue
            i, transform = sized[-1]  # the last one sets the output size
            for size_key in _OUTPUT_SIZE_KEYS[transform['type']]:
                size = transform.get(size_key)
                sides = size if isinstance(size, (list, tuple)) else [size]
                if not all(isinstance(s, int) for s in sides) or not any(
                        s % patch_size for s in sides):
                    continue
                fixed = [max(1, s // patch_size) * patch_size for s in sides]
                fixed = tuple(fixed) if len(fixed) > 1 else fixed[0]
                yield (f'`{path}[{i}].{size_key}={size!r}` is not a multiple '
                       f'of the patch size {patch_size} '
                       '(model.backbone.patch_size), so the model would fail '
                       f'at the first step. Fix: e.g. {size_key}={fixed}.')


def _backbone_arch_problems(cfg: Config) -> Iterator[str]:
    """A ``DenseViTBackbone`` arch the backbone would refuse, reported with
    its dotted path before anything is built (the backbone's own check,
    :func:`resolve_arch`, is the one definition of a valid arch)."""
    from densevit.models.backbones.densevit_backbone import resolve_arch
    model = cfg.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if not isinstance(backbone, dict) or backbone.get('type') not in (
            'DenseViTBackbone', 'densevit.DenseViTBackbone'):
        return
    arch = backbone.get('arch', 'deit-small')
    try:
        resolve_arch(arch.to_dict() if isinstance(arch, ConfigDict) else arch)
    except (TypeError, ValueError) as exc:
        yield f'`model.backbone.arch={arch!r}`: {exc}'


def _pretrained_problems(node: Any, path: str) -> Iterator[str]:
    """Empty or missing ``Pretrained`` checkpoints, which fail mid-init."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        for pretrained in pretrained_init_cfgs(init_cfg):
            # A list's entry is named by its index: the field to override.
            index = '' if isinstance(init_cfg, dict) else next(
                f'[{i}]' for i, entry in enumerate(init_cfg)
                if entry is pretrained)
            field = f'{path}.init_cfg{index}.checkpoint'
            ckpt = pretrained.get('checkpoint')
            if not ckpt:
                # --cfg-options indexes a list with a dotted number.
                option = re.sub(r'\[(\d+)\]', r'.\1', field)
                yield (f'`{field}` is empty. Fix: pass the pretrained '
                       f'checkpoint, e.g. --cfg-options {option}='
                       'work_dirs/<run>/epoch_N.pth')
            elif '://' not in str(ckpt) and not osp.exists(str(ckpt)):
                yield (f'`{field}`: no file {ckpt!r}. Fix: the path of a '
                       'DenseViT checkpoint or backbone file; timm weights '
                       'must be converted first: python '
                       'tools/model_converters/timm_to_densevit.py SRC '
                       f'{ckpt} --timm-model NAME --config CONFIG (see '
                       'docs/get_started.md#start-from-a-timm-vit).')
        for key, value in node.items():
            yield from _pretrained_problems(value,
                                            f'{path}.{key}' if path else key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_problems(value, f'{path}[{i}]')


class ConfigError(ValueError):
    """A config that cannot run as written; the message names each dotted
    path and its fix. The tools print it without a traceback."""


def check_config(cfg: Config, training: bool = True) -> None:
    """Raise one ``ValueError`` listing every mistake found, each with its
    dotted field: unknown types, arguments, dataloader settings and
    top-level fields (with the closest valid name), text given for a
    numeric argument, view sizes that are not a multiple of the
    backbone's patch size, and a FlexibleRunner ``strategy`` DenseViT
    cannot run (:func:`~.strategy_setup.strategy_problems`).

    Args:
        cfg (Config): the config to check.
        training (bool): also check what only training uses: pretrained
            checkpoints named by ``init_cfg`` must be given and exist, and
            ``train_cfg.max_epochs`` / ``max_iters`` must be positive.
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
    problems.extend(_dataloader_problems(cfg))
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
        params = _init_params(obj)
        if params is not None:
            problems.extend(
                _argument_problems(path, node, type_name, params))
    problems.extend(_patch_size_problems(cfg))
    problems.extend(_backbone_arch_problems(cfg))
    problems.extend(strategy_problems(cfg))
    if training:
        problems.extend(_pretrained_problems(cfg.get('model'), 'model'))
        problems.extend(_train_length_problems(cfg.get('train_cfg')))
    if problems:
        raise ConfigError('Config errors:\n  - ' + '\n  - '.join(problems))


def check_train_batches(runner: Any) -> None:
    """Raise :class:`ConfigError` when an epoch of the runner's training
    holds no batch (the batch is larger than the data), instead of mmengine's
    "epoch_length must be a positive integer, but got 0" from a scheduler
    or a run that trains nothing.

    Builds the training loop and its dataloader (``Runner.train`` would
    build them first anyway); does nothing for a runner without training,
    or with an infinite sampler (iteration-based training), which draws
    batches across epochs of the data.
    """
    loop = runner.train_loop
    if loop is None:
        return
    loader = loop.dataloader
    sampler = getattr(loader.batch_sampler, 'sampler', loader.sampler)
    if len(loader) > 0 or isinstance(sampler, InfiniteSampler):
        return
    ranks = get_world_size()
    share = (f' ({len(sampler)} per process of {ranks})' if ranks > 1 else '')
    if len(sampler) == 0:
        raise ConfigError(
            f'train_dataloader.dataset holds no samples{share}, so training '
            'would do nothing. Fix: point it at your data.')
    raise ConfigError(
        f'train_dataloader.batch_size={loader.batch_size} is larger than the '
        f'{len(loader.dataset)} samples of train_dataloader.dataset{share}, '
        'so an epoch has no full batch (drop_last=True) and training would '
        'do nothing. Fix: lower the batch size (e.g. --cfg-options '
        f'train_dataloader.batch_size={len(sampler)}), or use more data.')


__all__ = [
    'ConfigError', 'check_config', 'check_train_batches', 'RUNNER_KEYS'
]
