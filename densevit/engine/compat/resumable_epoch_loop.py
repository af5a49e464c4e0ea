"""An epoch-based training loop that resumes mid-epoch at the right batch."""
from mmengine.runner import EpochBasedTrainLoop

from densevit.registry import LOOPS
from .rng_state import get_rng_state, set_rng_state


# Registered under mmengine's name: with ``default_scope='densevit'`` (the
# runtime base config) every ``train_cfg=dict(type='EpochBasedTrainLoop')``
# resolves to this loop; ``type='mmengine.EpochBasedTrainLoop'`` still names
# the stock one.
@LOOPS.register_module(name='EpochBasedTrainLoop')
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """:class:`mmengine.runner.EpochBasedTrainLoop` that continues a resumed
    epoch after the last trained batch.

    A checkpoint saved mid-epoch (``default_hooks.checkpoint.by_epoch=False``)
    records the epoch it was in and the iterations done. MMEngine's loop
    resumes such a checkpoint by training its epoch again from the first
    batch, so the run trains more steps than ``max_epochs`` asks and sees
    those batches twice. This loop fast-forwards the dataloader past the
    ``iter - epoch * len(dataloader)`` batches already trained in that epoch,
    as :class:`~mmengine.runner.IterBasedTrainLoop` does on resume: the
    skipped batches are loaded (so dataloader workers draw the same random
    numbers as in the uninterrupted run), not trained, and the global RNG
    state is put back after them, so the first trained batch sees the state
    :class:`TrainStateHook` restored in ``before_train_epoch``. Everything
    else, hooks included, runs as in MMEngine's loop.

    Raises:
        ValueError: If the checkpoint's iteration does not fall in its epoch
            with this dataloader's number of batches (resumed with another
            batch size, dataset or number of ranks).
    """

    def _batches_done_in_epoch(self) -> int:
        """Batches of the current epoch trained before a resume (0 unless
        the run resumed a checkpoint saved mid-epoch)."""
        per_epoch = len(self.dataloader)
        done = self._iter - self._epoch * per_epoch
        if not 0 <= done <= per_epoch:
            raise ValueError(
                f'Cannot resume epoch {self._epoch + 1} at iteration '
                f'{self._iter}: with {per_epoch} batches per epoch that '
                f'epoch spans iterations {self._epoch * per_epoch} to '
                f'{(self._epoch + 1) * per_epoch}. The checkpoint was saved '
                'with another train_dataloader (batch size, dataset) or '
                'number of ranks; resume with the same ones, or start a new '
                'schedule from its weights with load_from=... instead of '
                '--resume.')
        return done

    def run_epoch(self) -> None:
        """Iterate the rest of one epoch (all of it unless resumed
        mid-epoch)."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        skip = self._batches_done_in_epoch()
        if skip == 0:
            batches = iter(self.dataloader)
        else:
            self.runner.logger.info(
                f'Resuming epoch {self._epoch + 1} after its first {skip} '
                'batches (trained before the checkpoint): skipping them.')
            # Creating the iterator and loading the skipped batches draw
            # random numbers the uninterrupted run drew before the checkpoint.
            rng_state = get_rng_state()
            batches = iter(self.dataloader)
            for _ in range(skip):
                next(batches)
            set_rng_state(rng_state)
        for idx, data_batch in enumerate(batches, start=skip):
            self.run_iter(idx, data_batch)

        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
