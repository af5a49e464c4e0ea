"""CheckpointHook that never leaves a truncated or missing checkpoint, and
never resumes from or loads a broken or ill-fitting one."""
import os.path as osp

import torch
from mmengine.dist import (barrier, broadcast_object_list, get_world_size,
                           is_main_process)
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel

from densevit.engine.utils.state_dict_check import (CheckpointMismatchError,
                                                    check_state_dict,
                                                    state_dict_of)
from densevit.registry import HOOKS, MODELS
from .atomic_local_backend import (ATOMIC_LOCAL_BACKEND, atomic_write_bytes,
                                   remove_stale_temp_files)
from .checkpoint_files import (LAST_CHECKPOINT, find_resumable_checkpoint,
                               last_checkpoint_entry)


def _model_to_check(runner) -> nn.Module:
    """The model a checkpoint's weights must fit: the unwrapped model, or,
    where FSDP units hold shards of it, a build of its config on the meta
    device (no memory): FSDPStrategy's full state dict has the unwrapped
    model's names and shapes."""
    model = runner.model
    if is_model_wrapper(model):
        model = model.module
    if not any(isinstance(module, FullyShardedDataParallel)
               for module in model.modules()):
        return model
    with torch.device('meta'):
        return MODELS.build(runner.cfg.model)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` with crash-safe saving and
    checked loading.

    Takes the same arguments and runs at the same points (``after_train_iter``
    / ``after_train_epoch`` / ``after_val_epoch``, priority ``VERY_LOW``).
    Use it as ``default_hooks.checkpoint``. Differences:

    - Atomic files. MMEngine writes a checkpoint in place, so a crash or a
      full disk mid-write leaves a truncated file. For a local ``out_dir``
      and no ``backend_args``/``file_client_args``, this hook selects the
      :class:`AtomicLocalBackend` (temporary file, fsync, ``os.replace``);
      the ``last_checkpoint`` pointer is replaced atomically too. Remote
      backends are left as configured.
    - Delete after save. With ``max_keep_ckpts``, MMEngine deletes the
      oldest checkpoint *before* writing the new one; with
      ``max_keep_ckpts=1`` a failed save leaves no checkpoint at all. Here
      the stale checkpoints are deleted only after the new one and the
      pointer are written.
    - Every rank's training state. Before each save, on every rank, it fires
      the custom hook event ``before_save_checkpoint_all_ranks`` (MMEngine's
      ``before_save_checkpoint`` runs on rank 0 only, where no collective is
      possible); :class:`TrainStateHook` gathers RNG states there.
    - Relative pointer. ``last_checkpoint`` holds the path relative to the
      work dir (when the checkpoints are inside it), so a moved or copied
      work dir resumes from its own files (:func:`.read_last_checkpoint`).
    - Intact resume. With ``resume=True`` and no path (``tools/train.py
      --resume``), ``before_run`` picks the newest checkpoint that loads
      (:func:`.find_resumable_checkpoint`), with a warning naming each newer
      one it skips, and raises when none loads. An explicit path is loaded
      as given; a bad file raises :class:`.UnreadableCheckpointError`.
    - Strict weights. Before the runner loads weights (``load_from``,
      resume, ``tools/test.py``), ``after_load_checkpoint`` compares them
      with the model and raises
      :class:`~densevit.engine.utils.CheckpointMismatchError` listing
      missing, unexpected and wrongly shaped weights (MMEngine only warns
      and keeps their initial values). ``strict_load=False`` loads what
      fits and logs the rest; a resume is always strict. A model sharded by
      FSDP is compared through a meta-device build of ``cfg.model``.
    - Ranks leave together. ``after_run`` waits on a barrier in a
      distributed run, so no rank exits while rank 0 still writes the final
      checkpoint: a rank that dies at interpreter exit (e.g. a gloo thread
      still alive at shutdown) would otherwise make the launcher kill rank 0
      mid-save.
    - Leftovers. Temporary files of killed saves (``*.tmp-<pid>-*``) in the
      work dir and ``out_dir`` are removed in ``before_train`` on rank 0,
      and logged.

    The previous *best* checkpoint is still replaced as MMEngine does
    (delete, then save); best checkpoints are not used for resuming.

    Args:
        strict_load (bool): refuse weights that do not fit the model when
            loading with ``load_from`` (see above). Defaults to True.
        *args, **kwargs: those of :class:`mmengine.hooks.CheckpointHook`.
    """

    def __init__(self, *args, strict_load: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.strict_load = strict_load

    def before_run(self, runner) -> None:
        """For a resume without a path, choose the newest checkpoint of the
        work dir that loads (rank 0 decides, every rank uses it)."""
        # MMEngine 0.10's Runner keeps these privately; load_or_resume,
        # which runs right after before_run, resumes from _load_from.
        if not (runner._resume and runner._load_from is None):
            return
        choice = [None, []]
        if is_main_process():
            choice = list(
                find_resumable_checkpoint(runner.work_dir,
                                          self.filename_tmpl))
        broadcast_object_list(choice)
        path, skipped = choice
        for bad, reason in skipped:
            runner.logger.warning(f'Resume: skipping {bad}, which {reason}.')
        if path is None and skipped:
            raise RuntimeError(
                f'Resume: no checkpoint of {runner.work_dir} loads (see the '
                'warnings above). Fix: resume from a good copy with '
                '--resume PATH, or move the files away to start afresh.')
        if path is not None:
            runner.logger.info(f'Resume: the newest checkpoint that loads is '
                               f'{path}.')
            runner._load_from = path

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a checkpoint whose weights do not fit the model, before
        any is loaded; a resume also needs a training checkpoint."""
        resuming = runner._resume
        source = runner._load_from or 'the checkpoint'
        if resuming and not ('meta' in checkpoint
                             and 'state_dict' in checkpoint):
            raise CheckpointMismatchError(
                f'Checkpoint {source} is not a training checkpoint (no '
                '`meta`/`state_dict`), so training cannot resume from it. '
                f'Fix: start from its weights with --cfg-options '
                f'load_from={source} instead of --resume.')
        check_state_dict(
            _model_to_check(runner),
            state_dict_of(checkpoint, source),
            source,
            strict=self.strict_load or resuming,
            partial_option='' if resuming else (
                '--partial-load (tools/test.py) or --cfg-options '
                'default_hooks.checkpoint.strict_load=False'))

    def before_train(self, runner) -> None:
        """Select the atomic backend for a local ``out_dir``, set up as
        :class:`CheckpointHook` does, then remove stale temporary files."""
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        # Local paths have no 'scheme://' prefix (s3://, petrel://, ...).
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend=ATOMIC_LOCAL_BACKEND)
        super().before_train(runner)
        if not is_main_process():
            return
        folders = {runner.work_dir}
        if '://' not in str(self.out_dir):
            folders.add(self.out_dir)
        removed = [p for d in sorted(folders) for p in
                   remove_stale_temp_files(d)]
        if removed:
            runner.logger.warning(
                f'Removed {len(removed)} temporary file(s) left by '
                f'interrupted checkpoint saves: {", ".join(removed)}')

    def after_run(self, runner) -> None:
        """Wait for every rank (rank 0 has saved the last checkpoint)."""
        super().after_run(runner)
        if get_world_size() > 1:
            barrier()

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        runner.call_hook('before_save_checkpoint_all_ranks')
        stale = []
        # Bookkeeping as CheckpointHook (the message hub saved with the new
        # checkpoint lists the kept ids), but deletion happens after saving.
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        pointer = last_checkpoint_entry(runner.work_dir, self.last_ckpt)
        atomic_write_bytes(pointer.encode(),
                           osp.join(runner.work_dir, LAST_CHECKPOINT))
        for old_step in stale:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old_step))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed checkpoints
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if self.save_best:
            runner.call_hook('before_save_checkpoint_all_ranks')
        super()._save_best_checkpoint(runner, metrics)
