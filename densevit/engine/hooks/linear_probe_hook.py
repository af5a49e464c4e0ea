"""Periodic frozen-feature probes during training."""
import copy
import math
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.dist import (broadcast_object_list, collect_results,
                           get_dist_info)
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from torch import Tensor
from torch.utils.data import DataLoader

from densevit.evaluation.functional import (fit_linear_probe, knn_top1,
                                            linear_probe_top1,
                                            masks_to_patch_labels, mean_iou)
from densevit.evaluation.metrics.correspondence_accuracy import \
    CorrespondenceAccuracy
from densevit.evaluation.metrics.utils import get_field, get_label
from densevit.registry import HOOKS

DataLoaderCfg = Union[DataLoader, Dict[str, Any], str]


@HOOKS.register_module()
class LinearProbeHook(Hook):
    """Probe the frozen backbone every ``interval`` epochs and after training.

    Each probe extracts CLS features (and patch features + masks for the
    dense probe) of two labelled single-view splits with the unwrapped
    model's ``extract_feat`` under ``torch.no_grad()`` in eval mode (train
    mode is restored after), then on the cached features:

    - ``probe/top1``: linear probe (L-BFGS logistic regression on
      standardised features, fitted on ``train_dataloader``) top-1 on
      ``val_dataloader``;
    - ``probe/knn_top1``: weighted k-NN top-1 (cosine, ``exp(s / T)`` votes);
    - ``probe/dense_mIoU`` (and ``probe/dense_pixel_acc``): per-patch linear
      probe on majority-vote patch labels, when the splits carry
      ``gt_mask``;
    - ``probe/corr_acc_backbone`` and ``probe/corr_acc_dense``: patch
      correspondence accuracy on an optional two-view split
      (``corr_dataloader``). The model's own ``predict`` (``mode='predict'``
      on both views, same eval mode / no-grad setting) mines the matches and
      :class:`CorrespondenceAccuracy` scores them against the crop geometry.

    Values are in ``[0, 1]``. They go to ``runner.message_hub`` (keys
    above), to the visualiser backends (``add_scalars`` at the number of
    finished iterations) and to a one-line log summary.

    Distributed: every rank extracts features of its own sampler shard with
    its own model copy (identical weights under DDP); the parts are gathered
    to rank 0 (``collect_results``), which fits the probes and broadcasts
    the values so every rank's message hub agrees. Fitting takes seconds on
    cached features, so the other ranks' wait is short.

    Args:
        train_dataloader (dict | DataLoader | str): labelled split the probes
            are fitted on, as a Runner dataloader config, or the name of a
            top-level config field holding one (e.g.
            ``'probe_train_dataloader'``, so the hook list is written once in
            the runtime config and each dataset config supplies its splits).
            A missing ``sampler``
            defaults to ``DefaultSampler(shuffle=False)`` and a missing
            ``collate_fn`` to ``default_collate`` (batched tensors, as the
            self-supervised data preprocessors expect).
        val_dataloader (dict | DataLoader | str): labelled split the probes
            are scored on; same forms and defaults.
        corr_dataloader (dict | DataLoader | str, optional): two-view split
            for correspondence accuracy, in the same forms and with the same
            defaults; its pipeline must be ``TwoViewCrop`` (crops and flips
            only, so the true correspondence is exact) then
            ``PackDenseInputs``, which records ``view_boxes`` /
            ``view_flips``. Labels are not needed. The model must return
            ``pred_corr_backbone`` / ``pred_corr_dense`` from
            ``mode='predict'`` on two views, as ``DenseViT`` does. Defaults
            to None (no correspondence probe).
        interval (int): probe every ``interval`` epochs (iterations when
            ``by_epoch=False``). Defaults to 1.
        by_epoch (bool): count ``interval`` in epochs. Defaults to True.
        num_classes (int, optional): image classes; when None, the length
            of the dataset's ``metainfo['classes']``, else the largest label
            + 1.
        num_seg_classes (int, optional): mask classes (background
            included); when None, the length of the dataset's
            ``metainfo['seg_classes']``, else the largest mask id + 1.
        knn_k (int): k-NN neighbours. Defaults to 20.
        knn_temperature (float): k-NN vote temperature. Defaults to 0.07.
        dense_probe (bool | str): True requires ``gt_mask`` in both splits,
            False disables the dense probe, ``'auto'`` runs it when both
            splits carry masks. Defaults to 'auto'.
        max_samples (int, optional): at most this many samples of each split
            (``corr_dataloader`` included) are used (caps extraction time
            and feature memory). Defaults to None (all).
        weight_decay (float): L2 penalty of the linear probes. Defaults to
            1e-4.
        max_iter (int): L-BFGS iterations of the linear probes. Defaults to
            100.
        ignore_index (int): mask label to ignore. Defaults to 255.
        collect_device (str): 'cpu' or 'gpu', how features are gathered
            across ranks. Defaults to 'cpu'.
    """

    priority = 'LOW'

    def __init__(self,
                 train_dataloader: DataLoaderCfg,
                 val_dataloader: DataLoaderCfg,
                 corr_dataloader: Optional[DataLoaderCfg] = None,
                 interval: int = 1,
                 by_epoch: bool = True,
                 num_classes: Optional[int] = None,
                 num_seg_classes: Optional[int] = None,
                 knn_k: int = 20,
                 knn_temperature: float = 0.07,
                 dense_probe: Union[bool, str] = 'auto',
                 max_samples: Optional[int] = None,
                 weight_decay: float = 1e-4,
                 max_iter: int = 100,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu') -> None:
        for name, loader in (('train_dataloader', train_dataloader),
                             ('val_dataloader', val_dataloader),
                             ('corr_dataloader', corr_dataloader)):
            if name == 'corr_dataloader' and loader is None:
                continue
            if not isinstance(loader, (dict, DataLoader, str)):
                raise TypeError(
                    f'LinearProbeHook: {name} must be a dataloader config '
                    'dict, a DataLoader or the name of a config field, but '
                    f'got {type(loader).__name__}.')
        if not isinstance(interval, int) or interval < 1:
            raise ValueError('LinearProbeHook: interval must be an int >= 1, '
                             f'but got {interval!r}.')
        for name, value in (('num_classes', num_classes),
                            ('num_seg_classes', num_seg_classes)):
            if value is not None and (not isinstance(value, int) or value < 2):
                raise ValueError(f'LinearProbeHook: {name} must be None or '
                                 f'an int >= 2, but got {value!r}.')
        if not isinstance(knn_k, int) or knn_k < 1:
            raise ValueError('LinearProbeHook: knn_k must be an int >= 1, '
                             f'but got {knn_k!r}.')
        if knn_temperature <= 0:
            raise ValueError('LinearProbeHook: knn_temperature must be > 0, '
                             f'but got {knn_temperature}.')
        if dense_probe not in (True, False, 'auto'):
            raise ValueError('LinearProbeHook: dense_probe must be True, '
                             f"False or 'auto', but got {dense_probe!r}.")
        if max_samples is not None and (not isinstance(max_samples, int)
                                        or max_samples < 2):
            raise ValueError('LinearProbeHook: max_samples must be None or an '
                             f'int >= 2, but got {max_samples!r}.')
        self.train_dataloader_cfg = train_dataloader
        self.val_dataloader_cfg = val_dataloader
        self.corr_dataloader_cfg = corr_dataloader
        self.interval = interval
        self.by_epoch = by_epoch
        self.num_classes = num_classes
        self.num_seg_classes = num_seg_classes
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        self.dense_probe = dense_probe if dense_probe == 'auto' else bool(
            dense_probe)
        self.max_samples = max_samples
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.ignore_index = ignore_index
        self.collect_device = collect_device

        self._loaders: Dict[str, DataLoader] = {}
        # Scores each sample's mined matches; only its per-sample counts are
        # kept, so the hook gathers them like features and pools on rank 0.
        self._corr_metric = CorrespondenceAccuracy(
            collect_device=collect_device)
        self._use_dense = False
        self._last_probe_iter: Optional[int] = None

    # ------------------------------------------------------------------ setup
    def before_train(self, runner) -> None:
        """Build the dataloaders once and check their first sample.

        Raises ValueError here, before any training step, if a probe split
        is unlabelled, two-view, or lacks masks while ``dense_probe=True``,
        or if ``corr_dataloader`` is not a two-view split with crop boxes.
        """
        has_mask = []
        for name, cfg in (('train_dataloader', self.train_dataloader_cfg),
                          ('val_dataloader', self.val_dataloader_cfg)):
            cfg = self._resolve_cfg(runner, name, cfg,
                                    'a labelled single-view dataloader')
            loader = self._build_loader(runner, cfg)
            has_mask.append(self._check_first_sample(name, loader.dataset))
            self._loaders[name] = loader
        if self.corr_dataloader_cfg is not None:
            cfg = self._resolve_cfg(
                runner, 'corr_dataloader', self.corr_dataloader_cfg,
                'a two-view dataloader: TwoViewCrop + PackDenseInputs')
            loader = self._build_loader(runner, cfg)
            self._check_corr_sample(loader.dataset)
            self._loaders['corr_dataloader'] = loader
        if self.dense_probe is True and not all(has_mask):
            missing = [
                n for n, m in zip(('train_dataloader', 'val_dataloader'),
                                  has_mask) if not m
            ]
            raise ValueError(
                f'LinearProbeHook: dense_probe=True but {missing} yields no '
                'gt_mask. Use a dataset with segmentation masks packed as '
                "gt_mask (PackDenseInputs), or set dense_probe='auto'/False.")
        self._use_dense = bool(self.dense_probe) and all(has_mask)
        metainfo = getattr(self._loaders['train_dataloader'].dataset,
                           'metainfo', None) or {}
        if self.num_classes is None and metainfo.get('classes'):
            self.num_classes = len(metainfo['classes'])
        if self.num_seg_classes is None and metainfo.get('seg_classes'):
            # e.g. SyntheticShapes: ('background', *classes)
            self.num_seg_classes = len(metainfo['seg_classes'])

    @staticmethod
    def _resolve_cfg(runner, name: str, cfg: DataLoaderCfg,
                     expected: str) -> Union[DataLoader, Dict[str, Any]]:
        """The dataloader (config) itself, looking up a config field name."""
        if not isinstance(cfg, str):
            return cfg
        if runner.cfg.get(cfg) is None:
            raise ValueError(
                f'LinearProbeHook: {name}={cfg!r} names a config field the '
                f'config does not define. Fix: define `{cfg} = dict(...)` '
                f'({expected}), or pass the dataloader dict itself.')
        return runner.cfg.get(cfg)

    @staticmethod
    def _build_loader(runner, cfg: DataLoaderCfg) -> DataLoader:
        if isinstance(cfg, DataLoader):
            return cfg
        cfg = copy.copy(cfg)
        # Probing wants every sample once, in dataset order, as batched
        # tensors; only fill in what the user did not choose.
        cfg.setdefault('sampler', dict(type='DefaultSampler', shuffle=False))
        cfg.setdefault('collate_fn', dict(type='default_collate'))
        return runner.build_dataloader(cfg, seed=runner.seed)

    def _check_first_sample(self, name: str, dataset) -> bool:
        """Validate ``dataset[0]``; return whether it carries ``gt_mask``."""
        if len(dataset) < 2:
            raise ValueError(
                f'LinearProbeHook: {name} has {len(dataset)} samples; a '
                'probe split needs at least 2.')
        sample = dataset[0]
        data_sample = None
        if isinstance(sample, dict):
            data_sample = sample.get('data_samples')
        if data_sample is None:
            raise ValueError(
                f'LinearProbeHook: {name} must yield dict(inputs=..., '
                'data_samples=...); end its pipeline with PackDenseInputs '
                '(or PackInputs).')
        if get_label(data_sample) is None:
            raise ValueError(
                f'LinearProbeHook: the samples of {name} have no gt_label, '
                'so no probe can be fitted or scored on them. Point '
                f'{name} at a labelled split (e.g. SyntheticShapes or an '
                'annotated ImageNet/CustomDataset split) whose single-view '
                'pipeline packs gt_label (PackDenseInputs / PackInputs).')
        if isinstance(sample.get('inputs'), (list, tuple)):
            raise ValueError(
                f'LinearProbeHook: {name} yields '
                f'{len(sample["inputs"])} views per sample; probe splits '
                'need a single-view pipeline (resize/centre-crop, then '
                'PackDenseInputs), not the two-view training pipeline.')
        self._check_label_variety(name, dataset)
        return get_field(data_sample, 'gt_mask') is not None

    @staticmethod
    def _check_label_variety(name: str, dataset) -> None:
        """A split with one class cannot train a classifier: say so now.

        Uses the dataset's label list (``get_gt_labels``, as mmpretrain's
        and DenseViT's datasets provide without loading any image); datasets
        without one are checked when the probe runs.
        """
        get_gt_labels = getattr(dataset, 'get_gt_labels', None)
        if get_gt_labels is None:
            return
        try:
            labels = get_gt_labels()
        except (AttributeError, KeyError, TypeError):
            return
        if len(set(int(label) for label in labels)) < 2:
            raise ValueError(
                f'LinearProbeHook: every sample of {name} has the same class, '
                'a single class; a probe needs at least 2. Fix: point it at '
                'a split with several labelled classes.')

    @staticmethod
    def _check_corr_sample(dataset) -> None:
        """Validate that ``dataset[0]`` is two views with their crop boxes."""
        if len(dataset) < 1:
            raise ValueError('LinearProbeHook: corr_dataloader has no '
                             'samples.')
        sample = dataset[0]
        fix = ('Fix: give corr_dataloader a two-view pipeline, '
               "[dict(type='TwoViewCrop', size=..., min_overlap=0.5), "
               "dict(type='PackDenseInputs')], which records the crop boxes "
               'and flips the true correspondence is computed from.')
        data_sample = sample.get('data_samples') if isinstance(
            sample, dict) else None
        if data_sample is None:
            raise ValueError(
                'LinearProbeHook: corr_dataloader must yield dict(inputs=..., '
                f'data_samples=...). {fix}')
        inputs = sample.get('inputs')
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            views = len(inputs) if isinstance(inputs, (list, tuple)) else 1
            raise ValueError(
                f'LinearProbeHook: corr_dataloader yields {views} view(s) per '
                'sample, but correspondence accuracy matches patches between '
                f'two views of each image. {fix}')
        if (get_field(data_sample, 'view_boxes') is None
                or get_field(data_sample, 'view_flips') is None):
            raise ValueError(
                'LinearProbeHook: corr_dataloader samples carry no '
                'view_boxes/view_flips metainfo, so the true correspondence '
                f'is unknown. {fix}')

    # --------------------------------------------------------------- triggers
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Probe every ``interval`` iterations when ``by_epoch=False``."""
        if not self.by_epoch and self.every_n_train_iters(
                runner, self.interval):
            # runner.iter is incremented after this hook returns.
            step = runner.iter + 1
            self._probe(runner, step, f'iter {step}')

    def after_train_epoch(self, runner) -> None:
        """Probe every ``interval`` epochs when ``by_epoch=True``."""
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            # runner.epoch is incremented after this hook returns.
            self._probe(runner, runner.iter, f'epoch {runner.epoch + 1}')

    def after_train(self, runner) -> None:
        """Probe the final weights unless the last interval just did."""
        if self._loaders and self._last_probe_iter != runner.iter:
            self._probe(runner, runner.iter, 'end of training')

    # ------------------------------------------------------------------ probe
    def _probe(self, runner, step: int, when: str) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        was_training = model.training
        model.eval()
        try:
            feats = {
                name: self._extract(
                    model, loader, name, self._corr_records
                    if name == 'corr_dataloader' else self._feature_records)
                for name, loader in self._loaders.items()
            }
        finally:
            model.train(was_training)

        rank, world_size = get_dist_info()
        outcome = [None]
        if rank == 0:
            try:
                outcome[0] = self._evaluate(feats)
            except ValueError as e:
                # Hand the error to every rank instead of leaving the
                # others blocked in the broadcast below.
                outcome[0] = e
        if world_size > 1:
            broadcast_object_list(outcome, src=0)
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        scalars = outcome[0]

        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(scalars, step=step)
        summary = ', '.join(f'{k.split("/", 1)[1]} {v:.4f}'
                            for k, v in scalars.items())
        runner.logger.info(f'LinearProbeHook ({when}, iter {step}): '
                           f'{summary}')
        self._last_probe_iter = step

    def _extract(self, model, loader: DataLoader, name: str,
                 records: Callable[..., list]) -> Optional[list]:
        """Per-sample records of the first ``max_samples`` samples, gathered.

        ``records(model, data, name, n)`` turns one batch into the records of
        at most its first ``n`` samples. Returns the list on rank 0 and None
        on the other ranks.
        """
        rank, world_size = get_dist_info()
        size = len(loader.dataset)
        if self.max_samples is not None:
            size = min(size, self.max_samples)
        # DefaultSampler deals sample i to rank i % world_size, so each rank
        # taking its first ceil(size / world) samples covers the first
        # `size` samples of the dataset, which collect_results re-orders.
        limit = math.ceil(size / world_size)
        progress = None
        if rank == 0:
            what = 'correspondences' if name == 'corr_dataloader' \
                else 'features'
            print_log(
                f'LinearProbeHook: extracting {name} {what}',
                logger='current')
            progress = ProgressBar(size)
        parts: list = []
        with torch.no_grad():
            for data in loader:
                batch = records(model, data, name, limit - len(parts))
                parts.extend(batch)
                taken = len(batch)
                if progress is not None:
                    # Rank 0 sees 1/world of each step; show the total.
                    shown = min(taken * world_size, size - progress.completed)
                    if shown > 0:
                        progress.update(shown)
                if len(parts) >= limit:
                    break
        if progress is not None:
            sys.stdout.write('\n')
        return collect_results(parts, size, self.collect_device)

    def _feature_records(self, model, data: dict, name: str,
                         count: int) -> List[tuple]:
        """(cls, label, patch feats, patch labels) of the first samples."""
        data = model.data_preprocessor(data, False)
        inputs = self._batch_tensor(data['inputs'], name)
        cls, patches = model.extract_feat(inputs)
        cls = cls.detach().float().cpu()
        patches = patches.detach().float().cpu()
        return [
            self._sample_record(cls[i], patches[i], sample)
            for i, sample in enumerate(data['data_samples'][:count])
        ]

    def _corr_records(self, model, data: dict, name: str,
                      count: int) -> List[dict]:
        """Correspondence counts of a batch's first ``count`` samples.

        The model mines the matches (``mode='predict'`` on both views) and
        the metric scores them; its per-sample counts are taken out of
        ``results`` so they can be gathered with the features.
        """
        data = model.data_preprocessor(data, False)
        inputs = data['inputs']
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                'LinearProbeHook: the data preprocessor did not turn a '
                'corr_dataloader batch into two (B, C, H, W) views. Set '
                "collate_fn=dict(type='default_collate') in corr_dataloader.")
        preds = model(inputs, data['data_samples'], mode='predict')
        metric = self._corr_metric
        metric.results = []
        try:
            metric.process(None, preds[:count])
        except ValueError as e:
            raise ValueError(f'LinearProbeHook: {e}') from e
        counts, metric.results = metric.results, []
        return counts

    @staticmethod
    def _batch_tensor(inputs, name: str) -> Tensor:
        """The (B, C, H, W) batch from the preprocessed ``inputs``."""
        if isinstance(inputs, (list, tuple)):
            # A one-view list [(B, C, H, W)] is fine; a list of per-sample
            # (C, H, W) tensors means the batch was never stacked.
            if len(inputs) == 1 and inputs[0].dim() == 4:
                return inputs[0]
            raise ValueError(
                f'LinearProbeHook: the data preprocessor turned a {name} '
                f'batch into a list of {len(inputs)} tensors instead of one '
                '(B, C, H, W) batch. Set collate_fn=dict(type='
                "'default_collate') in the probe dataloader config.")
        return inputs

    def _sample_record(self, cls: Tensor, patches: Tensor, sample) -> tuple:
        label = get_label(sample)
        if label is None:
            raise ValueError('LinearProbeHook: a probe sample has no '
                             'gt_label; every sample of the probe splits '
                             'must be labelled.')
        if not self._use_dense:
            return cls, label, None, None
        mask = get_field(sample, 'gt_mask')
        if mask is None:
            raise ValueError('LinearProbeHook: the dense probe is on but a '
                             'probe sample has no gt_mask; every sample '
                             'needs one (or set dense_probe=False).')
        mask = torch.as_tensor(mask).cpu()
        if mask.dim() == 3:
            mask = mask[0]
        valid = mask[mask != self.ignore_index]
        # The majority vote is the same for any class count covering the
        # ids present, so a per-sample count works before the total is known.
        if self.num_seg_classes:
            num_classes = self.num_seg_classes
        else:
            num_classes = int(valid.max()) + 1 if valid.numel() else 2
        labels = masks_to_patch_labels(mask[None], patches.shape[-2:],
                                       num_classes, self.ignore_index)[0]
        rows = patches.flatten(1).T.contiguous()  # (H*W, C)
        return cls, label, rows, labels.reshape(-1)

    def _evaluate(self, feats: Dict[str, List[tuple]]) -> Dict[str, float]:
        train, val = feats['train_dataloader'], feats['val_dataloader']
        train_x = torch.stack([r[0] for r in train])
        train_y = torch.tensor([r[1] for r in train])
        val_x = torch.stack([r[0] for r in val])
        val_y = torch.tensor([r[1] for r in val])
        num_classes = self.num_classes or max(
            int(train_y.max()), int(val_y.max()), 1) + 1
        splits = (train_x, train_y, val_x, val_y, num_classes)
        scalars = {}
        try:
            scalars['probe/top1'] = linear_probe_top1(
                *splits, self.weight_decay, self.max_iter)
            scalars['probe/knn_top1'] = knn_top1(*splits, self.knn_k,
                                                 self.knn_temperature)
            if self._use_dense:
                scalars.update(self._dense(train, val))
        except ValueError as e:
            raise ValueError(f'LinearProbeHook: {e}') from e
        if 'corr_dataloader' in feats:
            corr = self._corr_metric.compute_metrics(feats['corr_dataloader'])
            scalars.update({f'probe/{k}': v for k, v in corr.items()})
        return scalars

    def _dense(self, train: Sequence[tuple],
               val: Sequence[tuple]) -> Dict[str, float]:
        train_x = torch.cat([r[2] for r in train])
        train_y = torch.cat([r[3] for r in train])
        val_x = torch.cat([r[2] for r in val])
        val_y = torch.cat([r[3] for r in val])
        keep = train_y != self.ignore_index
        train_x, train_y = train_x[keep], train_y[keep]
        labelled = torch.cat([train_y, val_y[val_y != self.ignore_index]])
        num_classes = self.num_seg_classes or max(
            int(labelled.max()) + 1 if labelled.numel() else 2, 2)
        classifier = fit_linear_probe(train_x, train_y, num_classes,
                                      self.weight_decay, self.max_iter)
        scores = mean_iou(
            classifier.predict(val_x), val_y, num_classes, self.ignore_index)
        return {
            'probe/dense_mIoU': scores['mIoU'],
            'probe/dense_pixel_acc': scores['pixel_acc'],
        }
