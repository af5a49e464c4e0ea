"""Checkpoints that resume with torch's weights-only loader, bit-exactly."""
from typing import Any, Dict, List, Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from densevit.registry import HOOKS
from .rng_state import get_rng_state, set_rng_state
from .weights_only import from_weights_only, to_weights_only


class _RestoreAfterFastForward:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` during one
    resume.

    On resume ``IterBasedTrainLoop.run`` fast-forwards the dataloader by
    ``runner.iter`` batches after ``before_train_epoch``, and no hook runs
    between that and the first trained batch. Those discarded batches consume
    random numbers (transforms when ``num_workers=0``, sampler re-seeding at
    epoch ends), so the RNG state has to be restored after them: this wrapper
    lets ``skip`` calls through, then restores the state, puts the real
    iterator back and returns the first batch to train on.
    """

    def __init__(self, loop, skip: int, rng_state: Dict[str, Any]) -> None:
        self._loop = loop
        self._iterator = loop.dataloader_iterator
        self._skip = skip
        self._rng_state = rng_state

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator)
        self._loop.dataloader_iterator = self._iterator
        set_rng_state(self._rng_state)
        return next(self._iterator)

    def __getattr__(self, name: str):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class TrainStateHook(Hook):
    """Make checkpoints loadable with ``weights_only=True`` and carry every
    rank's RNG state, so ``--resume`` continues exactly where training was.

    **Saving** (``before_save_checkpoint``, rank 0 only; priority ``LOWEST``
    so it runs after other hooks and also encodes what they added):

    1. ``checkpoint['rng_states']``: a list indexed by rank of
       :func:`get_rng_state` dicts (Python ``random``, NumPy, torch CPU, CUDA
       once initialised). MMEngine calls ``before_save_checkpoint`` on rank 0
       only, so other ranks' states must be collected in a collective on
       every rank: :class:`AtomicCheckpointHook` fires the custom event
       ``before_save_checkpoint_all_ranks`` before each save, and this hook
       all-gathers there. With the stock ``CheckpointHook`` only rank 0's
       state is saved (complete for single-process runs; with several ranks
       the RNG is then not restored, and a warning says so).
    2. The whole checkpoint is walked and encoded by :func:`to_weights_only`:
       ``HistoryBuffer`` objects and NumPy values (message hub log scalars and
       runtime info, ``meta``, ``dataset_meta``) become tensors and plain
       types. No ``torch.serialization.add_safe_globals`` is needed. Values
       that cannot be encoded are kept and reported in a warning.

    **Loading** (``after_load_checkpoint``): MMEngine 0.10 runs
    ``Runner.resume`` as: ``torch.load`` -> ``after_load_checkpoint`` hooks
    -> model weights -> read ``meta`` (epoch, iter; ``set_randomness`` if the
    configured seed differs; ``dataset_meta`` comparison) ->
    ``message_hub.load_state_dict`` -> optimizer -> param schedulers; then
    ``train()`` calls ``before_train``, ``before_train_epoch``, fast-forwards
    the dataloader (iteration-based loop) and trains. This hook decodes the
    checkpoint in place, so everything after it sees the original
    ``HistoryBuffer``/NumPy objects. The RNG state is not set here, because
    ``set_randomness`` and the fast-forward would overwrite or consume it; it
    is set where the uninterrupted run would continue: in
    ``before_train_epoch`` for epoch-based loops, right after the
    fast-forward for :class:`IterBasedTrainLoop`. It is applied only when the
    runner really resumed (its iteration and epoch equal the checkpoint's),
    not for ``load_from``.

    **Validation**: validation inside training draws random numbers too
    (dataloader creation), which a resumed run would not replay. With
    ``isolate_val_rng=True`` the RNG state is saved in ``before_val`` and put
    back in ``after_val``, so training randomness does not depend on whether
    or how often validation runs, and a checkpoint saved during validation
    (best checkpoint, or MMEngine's re-save of the last one) records the
    training state from before validation.

    Exactness also needs ``randomness=dict(seed=...)`` (the sampler's shuffle
    seed is fixed when the dataloader is built, before a resume can apply
    the checkpoint's seed) and the same number of ranks.

    Args:
        isolate_val_rng (bool): See above. Defaults to True.
    """

    priority = 'LOWEST'

    def __init__(self, isolate_val_rng: bool = True) -> None:
        self.isolate_val_rng = isolate_val_rng
        self._pre_val_state: Optional[Dict[str, Any]] = None
        self._gathered: Optional[tuple] = None  # (runner.iter, states)
        self._pending: Optional[tuple] = None  # (state, iter, epoch)
        self._warned: set = set()

    # --- RNG capture -----------------------------------------------------

    def _training_rng_state(self) -> Dict[str, Any]:
        # During validation, training continues from the pre-val state.
        if self._pre_val_state is not None:
            return self._pre_val_state
        return get_rng_state()

    def before_save_checkpoint_all_ranks(self, runner) -> None:
        """Gather every rank's RNG state (a collective: every rank calls it).

        Fired by :class:`AtomicCheckpointHook` right before it saves.
        """
        states = all_gather_object(self._training_rng_state())
        self._gathered = (runner.iter, states)

    def before_val(self, runner) -> None:
        """Remember the training RNG state before validation draws from it."""
        if self.isolate_val_rng:
            self._pre_val_state = get_rng_state()

    def after_val(self, runner) -> None:
        """Put the training RNG state back."""
        if self._pre_val_state is not None:
            set_rng_state(self._pre_val_state)
            self._pre_val_state = None

    # --- save --------------------------------------------------------------

    def _warn_once(self, runner, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            runner.logger.warning(message)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add RNG states and encode the checkpoint for ``weights_only``."""
        if self._gathered is not None and self._gathered[0] == runner.iter:
            states: List[Dict[str, Any]] = self._gathered[1]
        else:
            states = [self._training_rng_state()]
            if get_world_size() > 1:
                self._warn_once(
                    runner, 'TrainStateHook: only rank 0 RNG state is saved, '
                    'so a resume will not restore RNG states. Use '
                    "default_hooks.checkpoint=dict(type='AtomicCheckpointHook'"
                    ', ...) to save every rank\'s state.')
        checkpoint['rng_states'] = states
        for key in list(checkpoint):
            checkpoint[key], unsafe = to_weights_only(checkpoint[key],
                                                      f'checkpoint[{key!r}]')
            for path, kind in unsafe:
                self._warn_once(
                    runner, f'TrainStateHook: {path} is a {kind.__name__}, '
                    'which torch.load(weights_only=True) rejects; convert '
                    'it to a tensor or plain Python type where it is set.')

    # --- load ----------------------------------------------------------------

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Decode the checkpoint in place; keep this rank's RNG state for the
        point where training continues."""
        for key in list(checkpoint):
            checkpoint[key] = from_weights_only(checkpoint[key])
        self._pending = None
        states = checkpoint.get('rng_states')
        meta = checkpoint.get('meta', {})
        if states is None:
            return
        world_size = get_world_size()
        if len(states) != world_size:
            runner.logger.warning(
                f'TrainStateHook: the checkpoint holds RNG states of '
                f'{len(states)} rank(s) but {world_size} are running; RNG '
                'states are not restored, so the resumed run is not '
                'bit-identical to an uninterrupted one.')
            return
        self._pending = (states[get_rank()], meta.get('iter'),
                         meta.get('epoch'))

    def before_train_epoch(self, runner) -> None:
        """Restore the RNG state where the uninterrupted run would be."""
        if self._pending is None:
            return
        state, ckpt_iter, ckpt_epoch = self._pending
        self._pending = None
        if (runner.iter, runner.epoch) != (ckpt_iter, ckpt_epoch):
            return  # load_from (fine-tuning), not a resume
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and runner.iter > 0:
            loop.dataloader_iterator = _RestoreAfterFastForward(
                loop, runner.iter, state)
        else:
            set_rng_state(state)
        runner.logger.info(
            f'TrainStateHook: RNG state of rank {get_rank()} restored from '
            f'the checkpoint (iteration {runner.iter}).')
