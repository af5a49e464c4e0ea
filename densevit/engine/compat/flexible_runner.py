"""mmengine's FlexibleRunner (DDP / FSDP strategies) with DenseViT's
checkpoint guarantees."""
import os.path as osp
from typing import List, Optional

import torch
from mmengine._strategy import FSDPStrategy as MMEngineFSDPStrategy
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.runner import FlexibleRunner as MMEngineFlexibleRunner
from torch.distributed.fsdp import FullyShardedDataParallel

from densevit.registry import RUNNERS
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .atomic_local_backend import ATOMIC_LOCAL_BACKEND, atomic_file


class FSDPStrategy(MMEngineFSDPStrategy):
    """mmengine's ``FSDPStrategy`` whose optimizer state loads on resume.

    mmengine 0.10 calls ``FSDP.optim_state_dict_to_load(state_dict, model,
    optimizer)``, the argument order of torch 1.13; torch 2 takes
    ``(model, optim, optim_state_dict)``, so every resume fails with
    ``TypeError: unhashable type: 'dict'``. :meth:`load_optim_state_dict`
    passes them by name. :class:`FlexibleRunner` builds this class for
    ``strategy=dict(type='FSDPStrategy', ...)``.
    """

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load the optimizer state saved by :meth:`optim_state_dict`."""
        self.optim_wrapper.load_state_dict(
            FullyShardedDataParallel.optim_state_dict_to_load(
                model=self.model,
                optim=self.optim_wrapper.optimizer,
                optim_state_dict=state_dict))


@RUNNERS.register_module()
class FlexibleRunner(MMEngineFlexibleRunner):
    """:class:`mmengine.runner.FlexibleRunner` whose checkpoints behave as
    the Runner's under :class:`AtomicCheckpointHook`.

    Built by ``runner_type='FlexibleRunner'`` (DenseViT's registry holds
    this class under mmengine's name). Differences from mmengine's:

    - Automatic resume. mmengine's ``FlexibleRunner.train`` loads the
      checkpoint *before* the ``before_run`` hooks (the Runner: after), and
      reads the ``last_checkpoint`` pointer verbatim, which DenseViT writes
      relative to the work dir. :meth:`load_or_resume` first lets
      :class:`AtomicCheckpointHook` choose the newest checkpoint that loads,
      as its ``before_run`` does for the Runner (it is idempotent: the later
      ``before_run`` finds the choice made).
    - Atomic files. The strategies' ``save_checkpoint`` write with
      mmengine's local backend whatever ``backend_args`` the hook passes, so
      in place. When the hook asks for the atomic local backend,
      :meth:`save_checkpoint` has the strategy write a temporary file that
      is then flushed and renamed over the checkpoint
      (:func:`~.atomic_local_backend.atomic_file`). Rank 0 writes the file
      (DDP, and FSDP with ``state_dict_cfg='full'``); the other ranks take
      part in gathering the state only.
    - FSDP resumes: ``strategy=dict(type='FSDPStrategy')`` builds
      :class:`FSDPStrategy`, which loads the optimizer state with torch 2.
    """

    def build_strategy(self, strategy=None, **kwargs):
        """mmengine's ``build_strategy``, with :class:`FSDPStrategy` for
        ``type='FSDPStrategy'``."""
        if isinstance(strategy, dict) and \
                strategy.get('type') == 'FSDPStrategy':
            strategy = dict(strategy, type=FSDPStrategy)
        return super().build_strategy(strategy, **kwargs)

    def load_or_resume(self) -> None:
        """Let :class:`AtomicCheckpointHook` choose the checkpoint of an
        automatic resume, then load or resume as mmengine does."""
        for hook in self.hooks:
            if isinstance(hook, AtomicCheckpointHook):
                hook.before_run(self)
        super().load_or_resume()

    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """mmengine's ``save_checkpoint``; atomic where ``backend_args``
        selects :data:`ATOMIC_LOCAL_BACKEND`."""
        kwargs = dict(
            file_client_args=file_client_args,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=backend_args)
        atomic = (backend_args or {}).get('backend') == ATOMIC_LOCAL_BACKEND
        if not (atomic and is_main_process()):
            super().save_checkpoint(out_dir, filename, **kwargs)
            return
        with atomic_file(osp.join(out_dir, filename)) as tmp_path:
            super().save_checkpoint(out_dir, osp.basename(tmp_path),
                                    **kwargs)


def adapt_strategy_to_cpu(cfg: Config) -> List[str]:
    """Give a ``runner_type='FlexibleRunner'`` config launched without a
    GPU the device ids its model wrapper needs on the CPU.

    Its strategies pass GPU ids unless ``strategy.model_wrapper`` gives
    them: ``DDPStrategy`` ``device_ids=[LOCAL_RANK]``, which DDP refuses
    for a CPU module, so it gets ``device_ids=None`` (on mmengine's default
    wrapper if none is given); ``FSDPStrategy`` ``device_id=LOCAL_RANK``,
    and FSDP refuses ``None`` without an accelerator but runs on the CPU
    (gloo) given ``device_id='cpu'``. ``state_dict_cfg='full'`` becomes the
    same full state dicts without ``offload_to_cpu``: for CPU tensors,
    torch's full optimizer state dict with ``offload_to_cpu=True`` returns
    each parameter's states as views of one gather buffer, so every state
    (AdamW's ``exp_avg``) holds the last one gathered (``exp_avg_sq``) and a
    resume silently continues with a wrong optimizer state.

    Returns:
        list[str]: A note for the log when a wrapper was changed.
    """
    if (torch.cuda.is_available()
            or cfg.get('runner_type') != 'FlexibleRunner'
            or cfg.get('launcher', 'none') == 'none'):
        return []
    if cfg.get('strategy') is None:  # FlexibleRunner's default
        cfg.strategy = dict(type='DDPStrategy')
    strategy = cfg.strategy
    if strategy.get('type') == 'FSDPStrategy':
        strategy.model_wrapper = dict(
            strategy.get('model_wrapper') or {}, device_id='cpu')
        if strategy.get('state_dict_cfg') == 'full':
            # Gathered on the CPU already; offloading would alias the
            # optimizer states (see the docstring).
            strategy.state_dict_cfg = dict(
                state_dict_type='FULL_STATE_DICT',
                state_dict_config=dict(
                    type='FullStateDictConfig', rank0_only=True,
                    offload_to_cpu=False),
                optim_state_dict_config=dict(
                    type='FullOptimStateDictConfig', rank0_only=True,
                    offload_to_cpu=False))
        return ["no GPU: FSDP model_wrapper.device_id='cpu', full state "
                'dicts gathered without offload_to_cpu']
    if strategy.get('type') == 'DDPStrategy':
        wrapper = strategy.get('model_wrapper') or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False)
        strategy.model_wrapper = dict(wrapper, device_ids=None)
        return ['no GPU: DDP model_wrapper.device_ids=None']
    return []
