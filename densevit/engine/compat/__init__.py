"""Workarounds for behaviour of mmengine 0.10, torch >= 2.6 and numpy 2.

Everything DenseViT does *around* a dependency, rather than with it, is
listed here. Each entry says what it works around, where it is plugged in,
and when it can be deleted. The *premise* test of an entry asserts the
upstream behaviour itself; when an upgrade makes it fail, delete the entry
(and its premise test). ``densevit/__init__.py`` refuses mmengine outside
``[0.10.3, 0.11.0)``, the series these overrides were written against.

1. ``atomic_local_backend``: :class:`AtomicLocalBackend`
   (``'densevit_atomic_local'``), :func:`atomic_write_bytes`,
   :func:`remove_stale_temp_files` (the temporary files of killed writes).

   - Works around: mmengine's ``LocalBackend.put`` opens the checkpoint with
     ``open(path, 'wb')`` and writes in place (0.10.0 to 0.11.0rc0), so a
     crash or a full disk mid-write leaves a truncated checkpoint.
   - Plugged in: :class:`AtomicCheckpointHook` selects the backend for a
     local ``out_dir``, and removes stale temporary files (rank 0,
     ``before_train``).
   - Delete when: ``LocalBackend.put`` writes to a temporary file and
     renames it. Premise:
     ``test_atomic_checkpoint_hook.py::test_stock_checkpoint_hook_loses_the_checkpoint``.

2. ``atomic_checkpoint_hook``: :class:`AtomicCheckpointHook` (registered;
   configs use ``default_hooks.checkpoint=dict(type='AtomicCheckpointHook')``).

   - Works around: (a) ``CheckpointHook._save_checkpoint_with_step`` deletes
     the oldest kept checkpoint *before* saving the new one (0.10.0 to
     0.11.0rc0), so with ``max_keep_ckpts=1`` a failed save leaves none;
     (b) ``Runner.save_checkpoint`` is ``@master_only``, so the
     ``before_save_checkpoint`` hook runs on rank 0 only and cannot gather
     other ranks' state. Overrides the private
     ``_save_checkpoint_with_step`` and ``_save_best_checkpoint``, and fires
     the custom event ``before_save_checkpoint_all_ranks`` on every rank.
   - Plugged in: ``default_hooks.checkpoint`` of the runtime base config.
   - Delete when: both (a) mmengine deletes stale checkpoints after the new
     one is written (premise as in 1: ``iter_2.pth`` is gone), and (b) the
     Runner fires a hook on every rank before saving (then move
     :class:`TrainStateHook`'s gathering there). Until then, a new
     mmengine minor release needs the override re-checked against
     ``CheckpointHook``.

3. ``weights_only``: :func:`to_weights_only`, :func:`from_weights_only`.

   - Works around: torch >= 2.6 loads with ``weights_only=True`` by default,
     and mmengine 0.10 puts ``HistoryBuffer`` objects (message hub
     ``log_scalars``) and NumPy values (``runtime_info``, ``meta``) into
     checkpoints, then loads them with a bare ``torch.load`` in
     ``load_from_local``: stock resume raises ``UnpicklingError``.
   - Plugged in: :class:`TrainStateHook` encodes in
     ``before_save_checkpoint`` and decodes in ``after_load_checkpoint``.
   - Delete when: mmengine's checkpoints hold only tensors and plain Python
     types. mmengine's main branch (0.11.0rc0, #1670) passes
     ``weights_only=False`` when loading, which fixes resume but not the
     checkpoints: DenseViT promises that its checkpoints load with
     ``torch.load(weights_only=True)`` (``tools/model_converters``,
     ``apis.init_model``), so that alone is not enough. Premise:
     ``test_train_state_hook.py::test_stock_checkpoints_fail_weights_only_loading``.

4. ``rng_state`` and ``train_state_hook``: :func:`get_rng_state`,
   :func:`set_rng_state`, :class:`TrainStateHook` (registered; configs use
   ``custom_hooks=[dict(type='TrainStateHook')]``).

   - Works around: mmengine 0.10 checkpoints carry the seed, not the state
     of Python's, NumPy's, torch's and CUDA's generators, so a resumed run
     draws different random numbers than an uninterrupted one. The RNG
     state is restored after ``IterBasedTrainLoop.run``'s dataloader
     fast-forward on resume (added in mmengine 0.10.3, hence the lower
     bound) by temporarily replacing ``loop.dataloader_iterator``.
   - Plugged in: ``custom_hooks`` of the model base configs
     (``configs/_base_/models/``) and of the linear-probe benchmarks;
     relies on 2 for every rank's state.
   - Delete when: mmengine saves and restores every rank's generator
     states on resume. Premise (control):
     ``test_train_state_hook.py::test_resume_without_rng_states_diverges``.

5. ``cpu_distributed``: :func:`clear_ddp_device_ids`,
   :func:`start_cpu_process_group`.

   - Works around: mmengine's ``init_dist`` calls ``torch.cuda.set_device``
     before ``init_process_group`` even for gloo, for the ``pytorch``
     (torchrun) and ``slurm`` launchers alike, and ``Runner.wrap_model``
     passes ``device_ids=[LOCAL_RANK]`` to DDP (0.10.0 to 0.11.0rc0); both
     fail without a GPU.
   - Plugged in: ``densevit.apis.build_runner`` (``tools/train.py``,
     ``tools/test.py``): :func:`start_cpu_process_group` runs mmengine's
     ``init_dist`` (backend gloo) with ``set_device`` a no-op for the call,
     before the Runner, which then keeps the group.
   - Delete when: ``init_dist`` skips ``set_device`` without CUDA and
     ``wrap_model`` leaves ``device_ids`` unset for CPU models. Premise:
     ``test_cpu_distributed.py::test_mmengine_init_dist_needs_a_gpu``
     (both launchers).

6. Not in this package: ``densevit.datasets.transforms.RandomColorJitter``.

   - Works around: mmcv 2.2's ``adjust_hue`` (used by mmpretrain's
     ``ColorJitter``) raises ``OverflowError`` for negative hue shifts under
     numpy 2 (uint8 arithmetic with a negative Python int).
   - Plugged in: the two-view pipeline in
     ``configs/_base_/datasets/two_view_pipeline.py``.
   - Delete when: ``mmcv.adjust_hue`` accepts negative hue under numpy 2;
     then mmpretrain's ``ColorJitter`` can replace it (a transform, so the
     swap changes the random stream: re-check the pipeline tests). Premise:
     ``test_color_jitter_premise.py::test_mmcv_adjust_hue_rejects_negative_hue``.

7. ``resumable_epoch_loop``: :class:`ResumableEpochBasedTrainLoop`
   (registered in ``densevit.registry.LOOPS`` as ``'EpochBasedTrainLoop'``).

   - Works around: mmengine's ``EpochBasedTrainLoop.run_epoch`` always
     starts at the epoch's first batch (0.10.0 to 0.11.0rc0), so a
     checkpoint saved mid-epoch (``CheckpointHook(by_epoch=False)``) resumes
     by training that epoch's trained batches again, and more steps than
     asked. The loop skips them as ``IterBasedTrainLoop`` does.
   - Plugged in: by its registered name: ``default_scope='densevit'`` of
     the runtime base config makes the schedules'
     ``train_cfg=dict(type='EpochBasedTrainLoop')`` build it.
   - Delete when: mmengine's epoch-based loop skips the batches already
     trained in a resumed epoch. Premise:
     ``test_resumable_epoch_loop.py::test_stock_loop_replays_the_resumed_epoch``.

8. ``checkpoint_files``: :func:`load_from_local_file`,
   :func:`read_last_checkpoint`, :func:`last_checkpoint_entry`,
   :func:`find_resumable_checkpoint`; with ``before_run`` and
   ``after_load_checkpoint`` of :class:`AtomicCheckpointHook` and
   :func:`densevit.engine.utils.check_state_dict`.

   - Works around (0.10.0 to 0.11.0rc0): (a) ``load_from_local`` calls a
     bare ``torch.load``: an empty file raises a bare ``EOFError``, a
     corrupted one torch's advice to load with ``weights_only=False``,
     neither naming the file; (b) ``find_latest_checkpoint`` returns the
     absolute path in ``last_checkpoint`` verbatim (a moved work dir cannot
     resume, a copied one resumes from the original), and
     ``load_or_resume`` resumes from it whether it loads or not; (c)
     ``load_or_resume`` and ``Runner.resume`` load weights with
     ``strict=False``, and ``load_state_dict`` only warns about missing or
     wrongly shaped weights, which keep their initial values.
   - Plugged in: importing the module registers :func:`load_from_local_file`
     as ``CheckpointLoader``'s loader of local paths (``force=True``);
     :class:`AtomicCheckpointHook` writes relative pointers, chooses the
     checkpoint of an automatic resume in ``before_run`` by setting the
     Runner's private ``_load_from`` (read by ``load_or_resume`` right
     after), and compares the weights with the model in
     ``after_load_checkpoint``.
   - Delete when: (a) ``load_from_local`` loads weights-only with errors
     that name the file; (b) ``find_latest_checkpoint`` resolves relative
     pointers and skips checkpoints that do not load; (c) the Runner loads
     ``load_from`` and resume checkpoints strictly or takes an option for
     it (keep :func:`~densevit.engine.utils.check_state_dict` for
     ``init_model``). Premise (a):
     ``test_checkpoint_files.py::test_stock_local_loader_errors_do_not_name_the_file``;
     Premise (b):
     ``test_checkpoint_files.py::test_stock_pointer_is_taken_verbatim``;
     Premise (c):
     ``test_atomic_checkpoint_hook.py::test_stock_load_keeps_wrongly_shaped_weights_silently``.

9. Not in this package: ``DenseViTBackbone.init_weights`` and
   ``DenseViTBackbone.train`` (``densevit/models/backbones/``).

   - Works around: (a) mmengine's ``PretrainedInit`` loads with
     ``strict=False`` (0.10.0 to 0.11.0rc0), so a ``Pretrained`` checkpoint
     of another architecture loads partly and leaves the rest random
     without an error; (b) mmpretrain 1.2's ``VisionTransformer`` puts its
     ``frozen_stages`` in eval mode only at construction, and
     ``train()`` switches their dropout and drop path back on.
   - Plugged in: (a) ``init_weights`` loads a ``Pretrained`` ``init_cfg``
     itself, after :func:`~densevit.engine.utils.compare_state_dict`
     (``strict=False`` in the ``init_cfg`` for a partial load); (b)
     ``train()`` calls ``_freeze_stages`` again.
   - Delete when: (a) ``PretrainedInit`` takes a ``strict`` option (pass
     DenseViT's through); (b) ``VisionTransformer.train`` keeps frozen
     stages in eval mode. Premises:
     ``test_densevit_backbone.py::test_stock_pretrained_init_loads_a_mismatching_checkpoint_silently``,
     ``test_densevit_backbone.py::test_stock_vit_unfreezes_frozen_stages_in_train_mode``.

10. ``flexible_runner``: :class:`FlexibleRunner` (registered in
    ``densevit.registry.RUNNERS`` under mmengine's name, built by
    ``runner_type='FlexibleRunner'``), :class:`FSDPStrategy`,
    :func:`adapt_strategy_to_cpu`; with
    :func:`~.atomic_local_backend.atomic_file`.

    - Works around (mmengine 0.10.0 to 0.11.0rc0, torch 2.x): (a)
      ``FlexibleRunner.train`` calls ``load_or_resume`` before the
      ``before_run`` hooks (the Runner after them), so
      :class:`AtomicCheckpointHook` chooses the checkpoint of an automatic
      resume too late, and mmengine's ``find_latest_checkpoint`` reads the
      relative pointer as a path from the current directory; (b) the
      strategies' ``save_checkpoint`` write with mmengine's in-place local
      backend whatever ``backend_args`` the hook passes; (c)
      ``FSDPStrategy.load_optim_state_dict`` passes its arguments to
      torch's ``FSDP.optim_state_dict_to_load`` in torch 1.13's order, so
      an FSDP resume fails; (d) ``DDPStrategy`` and ``FSDPStrategy`` give
      the model wrapper ``LOCAL_RANK`` as a GPU id, and FSDP refuses
      ``device_id=None`` without an accelerator (it runs on the CPU given
      ``'cpu'``); (e) for CPU tensors, torch's full optimizer state dict
      with ``offload_to_cpu=True`` (``state_dict_cfg='full'``) makes every
      state of a parameter a view of one gather buffer: all hold the last
      state gathered.
    - Plugged in: (a) ``load_or_resume`` lets the hook choose first; (b)
      the hook's atomic ``backend_args`` make ``save_checkpoint`` write a
      temporary file renamed over the checkpoint on rank 0; (c)
      ``FlexibleRunner.build_strategy`` builds :class:`FSDPStrategy` for
      ``type='FSDPStrategy'``; (d, e) :func:`densevit.apis.build_runner`
      applies :func:`adapt_strategy_to_cpu` (device ids, and full state
      dicts without ``offload_to_cpu``) on a machine without a GPU.
    - Delete when: (a) ``FlexibleRunner`` runs ``before_run`` before loading
      (or 8 (b) is gone); (b) the strategies honour ``backend_args``; (c)
      mmengine passes the arguments by name; (d) the strategies leave
      device ids unset for CPU processes; (e) torch copies offloaded CPU
      states. Premises:
      ``test_flexible_runner.py::test_stock_flexible_runner_loads_before_before_run``,
      ``test_flexible_runner.py::test_stock_strategy_writes_in_place``,
      ``test_flexible_runner.py::test_stock_fsdp_strategy_cannot_load_optimizer_state``,
      ``test_flexible_runner.py::test_stock_fsdp_needs_a_device_on_cpu``,
      ``test_fsdp.py::test_stock_offloaded_optimizer_states_alias_on_cpu``.

11. Not in this package: the rendezvous of ``tools/dist_train.sh`` with
    ``MAX_RESTARTS``.

    - Works around (torch 2.14): torchrun's static rendezvous
      (``--master_addr/--master_port``) hands every attempt's processes the
      same store, and so does the c10d one while its store is shared, so a
      restarted process group can read the failed attempt's addresses
      (gloo connects to a dead port, NCCL takes a stale id;
      pytorch/pytorch#135712).
    - Plugged in: with ``MAX_RESTARTS > 0`` the script starts torchrun with
      ``--rdzv_backend=c10d`` and ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``
      (each attempt's processes start a store of their own).
    - Delete when: the static rendezvous gives each attempt a fresh store
      (or prefixes its keys); then ``MAX_RESTARTS`` needs only
      ``--max_restarts``. Premise:
      ``test_cluster_launch.py::test_stock_static_rendezvous_keeps_the_failed_attempts_keys``.
"""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .atomic_local_backend import (ATOMIC_LOCAL_BACKEND, AtomicLocalBackend,
                                   atomic_file, atomic_write_bytes,
                                   remove_stale_temp_files)
from .checkpoint_files import (CheckpointNotFoundError,
                               UnreadableCheckpointError,
                               find_resumable_checkpoint,
                               last_checkpoint_entry, load_from_local_file,
                               read_last_checkpoint)
from .cpu_distributed import clear_ddp_device_ids, start_cpu_process_group
from .flexible_runner import (FlexibleRunner, FSDPStrategy,
                              adapt_strategy_to_cpu)
from .resumable_epoch_loop import ResumableEpochBasedTrainLoop
from .rng_state import get_rng_state, set_rng_state
from .train_state_hook import TrainStateHook
from .weights_only import TYPE_KEY, from_weights_only, to_weights_only

__all__ = [
    'CheckpointNotFoundError',
    'ATOMIC_LOCAL_BACKEND', 'AtomicCheckpointHook', 'AtomicLocalBackend',
    'FSDPStrategy', 'FlexibleRunner', 'ResumableEpochBasedTrainLoop',
    'TYPE_KEY', 'TrainStateHook', 'UnreadableCheckpointError',
    'adapt_strategy_to_cpu', 'atomic_file', 'atomic_write_bytes',
    'clear_ddp_device_ids', 'find_resumable_checkpoint', 'from_weights_only',
    'get_rng_state', 'last_checkpoint_entry', 'load_from_local_file',
    'read_last_checkpoint', 'remove_stale_temp_files', 'set_rng_state',
    'start_cpu_process_group', 'to_weights_only'
]
