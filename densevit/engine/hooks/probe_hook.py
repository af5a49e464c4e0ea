"""Evaluate frozen features during training with ``tools/test.py``'s metrics."""
import copy
from typing import Any, Dict, List, Optional, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from torch.utils.data import DataLoader

from densevit.registry import HOOKS

DataLoaderCfg = Union[DataLoader, Dict[str, Any], str]
EvaluatorCfg = Union[Evaluator, Dict[str, Any], List[Dict[str, Any]], str]


@HOOKS.register_module()
class ProbeHook(Hook):
    """Run an mmengine ``Evaluator`` over ``model.predict`` while training.

    Every ``interval`` epochs (iterations when ``by_epoch=False``) and once
    more after training (unless the last interval just ran), the hook puts
    the model in eval mode, feeds every batch of ``dataloader`` through
    ``model.val_step`` (the data preprocessor, then ``mode='predict'``: what
    ``tools/test.py``'s ``TestLoop`` runs) under ``torch.no_grad()``, hands
    the predictions to the metrics of ``evaluator`` and restores train mode.
    The metrics (e.g. ``KNNAccuracy``, ``LinearProbeAccuracy``,
    ``DenseProbe``, ``CorrespondenceAccuracy``) fit and score on the split
    themselves, so the numbers equal ``tools/test.py``'s on the same split
    and checkpoint, under the same names (``linear_probe/top1``, ...): they
    go to ``runner.message_hub``, to the visualiser backends (at the epoch,
    or the iteration when ``by_epoch=False``, as mmengine logs validation)
    and to one log line. Under DDP every rank predicts its sampler shard
    and the metrics gather the results (``collect_device``).

    Before training, one batch runs through a throwaway copy of the metrics,
    so a split the metrics cannot use (no labels, one view where two are
    needed, ...) fails with the metric's error before the first step.

    Args:
        dataloader (dict | DataLoader | str): the split to evaluate, as a
            Runner dataloader config, or the name of a top-level config
            field holding one (e.g. ``'probe_dataloader'``, so the hook is
            written once and each dataset config supplies its split). A
            missing ``sampler`` defaults to ``DefaultSampler(shuffle=False)``
            and a missing ``collate_fn`` to ``default_collate`` (batched
            tensors, as the self-supervised data preprocessors expect).
        evaluator (dict | list[dict] | Evaluator | str): the metric
            config(s), or the name of a config field holding them (e.g.
            ``'test_evaluator'``, to probe with the metrics
            ``tools/test.py`` reports).
        interval (int): evaluate every ``interval`` epochs (iterations when
            ``by_epoch=False``). Defaults to 1.
        by_epoch (bool): count ``interval`` in epochs. Defaults to True.
    """

    priority = 'LOW'

    def __init__(self,
                 dataloader: DataLoaderCfg,
                 evaluator: EvaluatorCfg,
                 interval: int = 1,
                 by_epoch: bool = True) -> None:
        if not isinstance(dataloader, (dict, DataLoader, str)):
            raise TypeError(
                'ProbeHook: dataloader must be a dataloader config dict, a '
                'DataLoader or the name of a config field, but got '
                f'{type(dataloader).__name__}.')
        if not isinstance(evaluator, (dict, list, Evaluator, str)):
            raise TypeError(
                'ProbeHook: evaluator must be a metric config dict, a list '
                'of them, an Evaluator or the name of a config field, but '
                f'got {type(evaluator).__name__}.')
        if not isinstance(interval, int) or interval < 1:
            raise ValueError('ProbeHook: interval must be an int >= 1, but '
                             f'got {interval!r}.')
        self.dataloader_cfg = dataloader
        self.evaluator_cfg = evaluator
        self.interval = interval
        self.by_epoch = by_epoch
        self.dataloader: Optional[DataLoader] = None
        self.evaluator: Optional[Evaluator] = None
        self._last_probe_iter: Optional[int] = None

    def before_train(self, runner) -> None:
        """Build the dataloader and evaluator; try the metrics on one batch."""
        loader_cfg = self._resolve(runner, 'dataloader', self.dataloader_cfg)
        if not isinstance(loader_cfg, DataLoader):
            loader_cfg = copy.copy(loader_cfg)
            # Every sample once, in dataset order, as batched tensors; only
            # what the user did not choose.
            loader_cfg.setdefault('sampler',
                                  dict(type='DefaultSampler', shuffle=False))
            loader_cfg.setdefault('collate_fn', dict(type='default_collate'))
        self.dataloader = runner.build_dataloader(loader_cfg, seed=runner.seed)
        evaluator_cfg = self._resolve(runner, 'evaluator', self.evaluator_cfg)
        self.evaluator = runner.build_evaluator(copy.deepcopy(evaluator_cfg))
        trial = runner.build_evaluator(copy.deepcopy(evaluator_cfg))
        self._predict(runner, [next(iter(self.dataloader))], trial)

    @staticmethod
    def _predict(runner, batches, evaluator: Evaluator) -> None:
        """Process the predictions of ``batches``: eval mode, no grad."""
        model = runner.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for data in batches:
                    evaluator.process(model.val_step(data), data)
        finally:
            model.train(was_training)

    @staticmethod
    def _resolve(runner, name: str, cfg):
        """``cfg`` itself, or the config field it names."""
        if not isinstance(cfg, str):
            return cfg
        if runner.cfg.get(cfg) is None:
            raise ValueError(
                f'ProbeHook: {name}={cfg!r} names a config field the config '
                f'does not define. Fix: define `{cfg} = ...` or pass the '
                f'{name} config itself.')
        return runner.cfg.get(cfg)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Probe every ``interval`` iterations when ``by_epoch=False``."""
        if not self.by_epoch and self.every_n_train_iters(
                runner, self.interval):
            self._probe(runner, runner.iter + 1, runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        """Probe every ``interval`` epochs when ``by_epoch=True``."""
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            self._probe(runner, runner.iter, runner.epoch + 1)

    def after_train(self, runner) -> None:
        """Probe the final weights unless the last interval just did."""
        if self.evaluator is not None and \
                self._last_probe_iter != runner.iter:
            step = runner.epoch if self.by_epoch else runner.iter
            self._probe(runner, runner.iter, step)

    def _probe(self, runner, done_iters: int, step: int) -> Dict[str, Any]:
        """Evaluate; log the metrics at ``step`` (epoch or iteration)."""
        self._predict(runner, self.dataloader, self.evaluator)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        for key, value in metrics.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(metrics, step=step)
        summary = ', '.join(f'{k} {v:.4f}' for k, v in metrics.items())
        unit = 'epoch' if self.by_epoch else 'iter'
        runner.logger.info(f'ProbeHook ({unit} {step}): {summary}')
        self._last_probe_iter = done_iters
        return metrics
