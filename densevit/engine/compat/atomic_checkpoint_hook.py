"""CheckpointHook that never leaves a truncated or missing checkpoint."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from densevit.registry import HOOKS
from .atomic_local_backend import ATOMIC_LOCAL_BACKEND, atomic_write_bytes


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` with crash-safe saving.

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

    The previous *best* checkpoint is still replaced as MMEngine does
    (delete, then save); best checkpoints are not used for resuming.
    """

    def before_train(self, runner) -> None:
        """Select the atomic backend for a local ``out_dir``, then set up as
        :class:`CheckpointHook` does."""
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        # Local paths have no 'scheme://' prefix (s3://, petrel://, ...).
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend=ATOMIC_LOCAL_BACKEND)
        super().before_train(runner)

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
        atomic_write_bytes(self.last_ckpt.encode(),
                           osp.join(runner.work_dir, 'last_checkpoint'))
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
