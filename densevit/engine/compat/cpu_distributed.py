"""Distributed training on CPU-only machines with mmengine's Runner."""
from typing import List

import torch
import torch.distributed as dist
from mmengine.config import Config


def clear_ddp_device_ids(cfg: Config) -> None:
    """Make the Runner wrap the model in DDP without device ids.

    mmengine's ``Runner.wrap_model`` passes
    ``device_ids=[LOCAL_RANK]`` to ``MMDistributedDataParallel`` unless the
    config says otherwise, and DDP rejects device ids for a CPU module. For
    a distributed launch without a GPU, ``cfg.model_wrapper_cfg`` is set to
    ``MMDistributedDataParallel`` (if absent) with ``device_ids=None``.
    """
    if torch.cuda.is_available() or cfg.get('launcher', 'none') == 'none':
        return
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel')
    cfg.model_wrapper_cfg.device_ids = None


def start_cpu_process_group(cfg: Config) -> List[str]:
    """Start the gloo process group for a torchrun launch without a GPU.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` before
    ``init_process_group``, which fails on a CPU-only machine; the Runner
    reuses a process group that already exists, so starting it here is
    enough.

    Returns:
        list[str]: A note for the log when the group was started here.
    """
    if (cfg.get('launcher') != 'pytorch' or torch.cuda.is_available()
            or dist.is_initialized()):
        return []
    dist.init_process_group(backend='gloo')
    return ['no GPU: gloo process group started for the torchrun launcher']
