"""Check and adapt the ``strategy`` of a ``runner_type='FlexibleRunner'``
config (DDP or FSDP through mmengine's strategies)."""
from typing import Any, List

import torch
from mmengine.config import Config

from densevit.engine.compat.flexible_runner import adapt_strategy_to_cpu
from densevit.engine.utils.fsdp_wrap_policy import resolve_module_types

#: Strategies whose checkpoints are one file written by rank 0, the files
#: DenseViT's checkpoint hooks, tools and loaders read.
SUPPORTED_STRATEGIES = ('SingleDeviceStrategy', 'DDPStrategy',
                        'FSDPStrategy')
_WRAP_POLICY_NAMES = ('densevit.engine.utils.module_type_wrap_policy',
                      'densevit.engine.utils.fsdp_wrap_policy.'
                      'module_type_wrap_policy')


def _is_full_state_dict(state_dict_cfg: Any) -> bool:
    if isinstance(state_dict_cfg, dict):
        return str(state_dict_cfg.get('state_dict_type')) in (
            'FULL_STATE_DICT', 'StateDictType.FULL_STATE_DICT')
    return state_dict_cfg == 'full'


def _fsdp_problems(cfg: Config) -> List[str]:
    strategy = cfg.strategy
    problems = []
    # mmengine's default is 'local': a directory of per-rank shards.
    if not _is_full_state_dict(strategy.get('state_dict_cfg', 'local')):
        problems.append(
            f'strategy.state_dict_cfg={strategy.get("state_dict_cfg")!r} '
            '(mmengine\'s default: \'local\') saves each checkpoint as a '
            'directory of per-rank shards, which resume, tools/test.py and '
            "the converters cannot read. Fix: state_dict_cfg='full' (one "
            'file gathered on rank 0, as under DDP).')
    wrapper = strategy.get('model_wrapper') or {}
    if wrapper.get('use_orig_params', True) is not True:
        problems.append(
            'strategy.model_wrapper.use_orig_params must be True (the '
            'default): the key-encoder EMA averages the original '
            "parameters' shards, and the optimizer's paramwise_cfg finds "
            'parameters by name. Fix: remove use_orig_params=False.')
    policy = wrapper.get('auto_wrap_policy')
    if isinstance(policy, dict) and policy.get('type') in _WRAP_POLICY_NAMES:
        try:
            resolve_module_types(tuple(policy.get('module_types', ())))
        except ValueError as exc:
            problems.append(f'strategy.model_wrapper.{exc}')
    if (cfg.get('optim_wrapper') or {}).get('clip_grad'):
        problems.append(
            'optim_wrapper.clip_grad under FSDPStrategy: mmengine clips with '
            'torch.nn.utils.clip_grad_norm_, which sees only this rank\'s '
            'shard of the gradients, so every rank would clip by a '
            'different norm. Fix: remove clip_grad, or train with DDP.')
    return problems


def strategy_problems(cfg: Config) -> List[str]:
    """The mistakes in ``runner_type`` / ``strategy``, one message each
    (empty when none); :func:`~densevit.apis.check_config` reports them.

    - ``strategy`` is read by ``FlexibleRunner`` only;
    - strategies other than :data:`SUPPORTED_STRATEGIES` save checkpoints
      as directories (DeepSpeed, ColossalAI), which DenseViT cannot resume;
    - ``FSDPStrategy`` needs ``state_dict_cfg='full'``,
      ``use_orig_params=True``, no ``optim_wrapper.clip_grad``, and the
      classes of ``module_type_wrap_policy`` must exist.
    """
    strategy = cfg.get('strategy')
    if cfg.get('runner_type') != 'FlexibleRunner':
        if strategy is None:
            return []
        return ['`strategy` is read by FlexibleRunner only; the Runner '
                "ignores it. Fix: add runner_type='FlexibleRunner' (or "
                'inherit configs/_base_/fsdp_runtime.py).']
    if strategy is None:
        return []
    kind = strategy.get('type')
    if kind not in SUPPORTED_STRATEGIES:
        return [f'strategy.type={kind!r}: DenseViT resumes and loads '
                'checkpoints written as one file by rank 0, which '
                f'{list(SUPPORTED_STRATEGIES)} write. Fix: '
                "type='FSDPStrategy' to shard a large model."]
    return _fsdp_problems(cfg) if kind == 'FSDPStrategy' else []


def adapt_strategy(cfg: Config) -> List[str]:
    """Make a FlexibleRunner strategy run where the config is launched;
    return what changed, for the log.

    - A single process without a launcher has nothing to shard and no
      process group for FSDP: ``FSDPStrategy`` becomes
      ``SingleDeviceStrategy``, so ``python tools/train.py CONFIG`` runs
      the FSDP configs on one device.
    - Without a GPU, FSDP's bf16 ``mixed_precision`` is dropped (as
      :func:`~densevit.apis.adapt_to_device` drops the bf16
      ``AmpOptimWrapper``), and the wrappers get CPU device ids
      (:func:`~densevit.engine.compat.adapt_strategy_to_cpu`).
    """
    strategy = cfg.get('strategy')
    if cfg.get('runner_type') != 'FlexibleRunner' or strategy is None:
        return []
    notes = []
    if (strategy.get('type') == 'FSDPStrategy'
            and cfg.get('launcher', 'none') == 'none'):
        cfg.strategy = dict(type='SingleDeviceStrategy')
        return ['one process, no launcher: FSDPStrategy replaced by '
                'SingleDeviceStrategy (nothing to shard); launch with '
                'tools/dist_train.sh to shard']
    if not torch.cuda.is_available() and strategy.get('type') == \
            'FSDPStrategy':
        wrapper = strategy.get('model_wrapper') or {}
        if wrapper.pop('mixed_precision', None) is not None:
            notes.append('no GPU: FSDP mixed_precision (bf16) dropped')
    return notes + adapt_strategy_to_cpu(cfg)


__all__ = ['SUPPORTED_STRATEGIES', 'adapt_strategy', 'strategy_problems']
