"""Distributed training on CPU-only machines with mmengine's Runner."""
import contextlib
from typing import Iterator, List

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dist import init_dist
from mmengine.utils.dl_utils import set_multi_processing


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


@contextlib.contextmanager
def _no_cuda_device_selection() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` do nothing for the duration (it raises
    on a CPU-only build, and there is no device to select)."""
    set_device = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = set_device


def start_cpu_process_group(cfg: Config) -> List[str]:
    """Start the gloo process group for a distributed launch without a GPU.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` before
    ``init_process_group`` for every launcher (``pytorch``: torchrun,
    ``slurm``: srun, ``mpi``), which fails on a CPU-only machine. This
    starts the group as ``Runner.setup_env`` would (``set_multi_processing``
    from ``env_cfg.mp_cfg``, then mmengine's ``init_dist`` with
    ``env_cfg.dist_cfg``, so the launcher's environment, e.g. Slurm's
    ``SLURM_PROCID``/``SLURM_NTASKS``/``scontrol`` node list, ``port`` and
    ``timeout``, is read by mmengine), with the backend gloo and
    ``set_device`` skipped. The Runner reuses a process group that already
    exists.

    Returns:
        list[str]: A note for the log when the group was started here.
    """
    launcher = cfg.get('launcher', 'none')
    if (launcher == 'none' or torch.cuda.is_available()
            or dist.is_initialized()):
        return []
    env_cfg = cfg.get('env_cfg', {})
    set_multi_processing(**env_cfg.get('mp_cfg', {}), distributed=True)
    dist_cfg = dict(env_cfg.get('dist_cfg', {}), backend='gloo')
    with _no_cuda_device_selection():
        init_dist(launcher, **dist_cfg)
    return [f'no GPU: gloo process group started for the {launcher} launcher']
