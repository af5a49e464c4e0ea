"""Toys for the engine tests: a model with DenseViT's training API, a
dataset, a metric, a crash hook, and a factory for real Runners.

The toy draws from every global RNG (dropout and ``torch.randn`` in the
forward pass, Python ``random`` and NumPy in the dataset transform and the
loss), so a resume that does not restore them gives different losses.
"""
import random
import uuid

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner, set_random_seed
from torch import nn
from torch.utils.data import Dataset

import densevit.engine  # noqa: F401  (registers the hooks)
from densevit.models.utils import KeyEncoderEMA, MemoryQueue


class ToyDataset(Dataset):
    """``num_samples`` 4-d vectors with a random (Python + NumPy) jitter."""

    # NumPy in the metainfo: it ends up in checkpoint['meta'].
    metainfo = dict(
        classes=('a', 'b'), palette=np.array([[0, 0, 0], [255, 0, 0]],
                                             dtype=np.uint8))

    def __init__(self, num_samples: int = 8) -> None:
        self.num_samples = num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        jitter = random.random() + float(np.random.rand())
        return dict(inputs=torch.arange(4.0) + index + 0.1 * jitter)


class ToyContrastiveModel(BaseModel):
    """Implements the DenseViT API the hooks use: ``update_queues()``,
    ``momentum_update(step)`` (a real :class:`KeyEncoderEMA`, by default on
    the base configs' cosine to 0),
    ``driving_hooks``, ``loss_lambda`` and ``dense_weight_scale``,
    ``geometric_warmup_iters`` and ``dense_loss.geometric_only``,
    ``global_loss.queue`` / ``dense_loss.queue``.

    Records, per training step, ``(iteration, λ)``, ``(iteration,
    geometric_only)`` and the loss, and the
    momentum of every EMA update. ``nan_from``: the dense loss is NaN from
    that 0-based iteration on.
    """

    def __init__(self,
                 dim: int = 4,
                 queue_len: int = 64,
                 momentum: float = 0.1,
                 end_momentum: float = 0.0,
                 loss_lambda: float = 0.5,
                 dense_warmup_iters: int = 3,
                 geometric_warmup_iters: int = 0,
                 nan_from: int = None) -> None:
        super().__init__()
        self.online = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.5))
        self.key = KeyEncoderEMA(self.online, momentum, end_momentum)
        self.global_loss = nn.Module()
        self.global_loss.queue = MemoryQueue(queue_len, dim)
        self.dense_loss = nn.Module()
        self.dense_loss.queue = MemoryQueue(queue_len, dim)
        self.dense_loss.geometric_only = False
        self.loss_lambda = loss_lambda
        self.dense_weight_scale = 1.0
        self.dense_warmup_iters = dense_warmup_iters
        self.geometric_warmup_iters = geometric_warmup_iters
        self.driving_hooks = set()
        self.nan_from = nan_from
        self.lambdas, self.losses, self.momenta = [], [], []
        self.geometric = []
        self._pending = None

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)
        q = F.normalize(self.online(x + 0.1 * torch.randn_like(x)), dim=1)
        if mode != 'loss':
            return [dict(score=float(q.sum()))]
        with torch.no_grad():
            k = F.normalize(self.key(x), dim=1)
        negatives = self.global_loss.queue.keys
        loss_global = (-(q * k).sum(1).mean() + (q @ negatives.T).mean() *
                       (1 + 0.1 * random.random()))
        loss_dense = ((q - k)**2).mean() * (1 + 0.1 * np.random.rand())
        # RuntimeInfoHook publishes the 0-based iteration before each step.
        iteration = MessageHub.get_current_instance().get_info('iter')
        if self.nan_from is not None and iteration >= self.nan_from:
            loss_dense = loss_dense * float('nan')
        self._pending = k
        loss_lambda = self.loss_lambda * self.dense_weight_scale
        self.lambdas.append((iteration, loss_lambda))
        self.geometric.append((iteration, self.dense_loss.geometric_only))
        losses = dict(
            loss_global=(1 - loss_lambda) * loss_global,
            loss_dense=loss_lambda * loss_dense)
        self.losses.append(float(sum(losses.values()).detach()))
        return losses

    def update_queues(self) -> None:
        if self._pending is not None:
            self.global_loss.queue.enqueue(self._pending)
            self.dense_loss.queue.enqueue(self._pending)
            self._pending = None

    def momentum_update(self, step: int = None) -> None:
        self.momenta.append(self.key.momentum_at(step))
        self.key.update_parameters(self.online, step)


class ToyMetric(BaseMetric):
    """Mean of the toy model's ``score`` outputs."""

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(sample['score'] for sample in data_samples)

    def compute_metrics(self, results) -> dict:
        return dict(score=float(np.mean(results)))


class Crash(Exception):
    """Stands for a killed job."""


class CrashAt(Hook):
    """Raise :class:`Crash` before iteration ``iteration`` (0-based)."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter == self.iteration:
            raise Crash(f'crash before iteration {self.iteration}')


def build_runner(work_dir,
                 model=None,
                 max_iters: int = 8,
                 ckpt_interval: int = 4,
                 checkpoint: dict = None,
                 custom_hooks=None,
                 val_interval: int = None,
                 num_samples: int = 8,
                 by_epoch: bool = False,
                 optim_wrapper: dict = None,
                 randomness: dict = None,
                 loop_type: str = None,
                 loader_options: dict = None,
                 **kwargs) -> Runner:
    """A real Runner over :class:`ToyDataset` (batch 2, shuffled).

    ``loop_type`` builds the training loop from the registry by that name
    (epoch-based: ``max_iters`` counts epochs); ``loader_options`` update
    the training dataloader (e.g. ``num_workers``).
    """
    if loop_type is not None:
        train_cfg = dict(type=loop_type, max_epochs=max_iters)
    elif by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=max_iters)
    else:
        train_cfg = dict(by_epoch=False, max_iters=max_iters)
    checkpoint = checkpoint or dict(
        type='AtomicCheckpointHook', interval=ckpt_interval,
        by_epoch=by_epoch)
    val = {}
    if val_interval is not None:
        train_cfg['val_interval'] = val_interval
        val = dict(
            val_dataloader=dict(
                dataset=ToyDataset(num_samples),
                sampler=dict(type='DefaultSampler', shuffle=False),
                batch_size=2,
                num_workers=0),
            val_cfg=dict(),
            val_evaluator=Evaluator(ToyMetric(prefix="toy")))
    if model is None:
        # Same initial weights in every run, whatever ran before.
        set_random_seed(0)
        model = ToyContrastiveModel()
    return Runner(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'test_engine_{uuid.uuid4().hex}',
        train_dataloader={
            **dict(
                dataset=ToyDataset(num_samples),
                sampler=dict(type='DefaultSampler', shuffle=True),
                batch_size=2,
                num_workers=0),
            **(loader_options or {})
        },
        optim_wrapper=optim_wrapper or dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=train_cfg,
        default_hooks=dict(
            checkpoint=checkpoint, logger=dict(type='LoggerHook',
                                               interval=100)),
        custom_hooks=custom_hooks or [],
        randomness=randomness or dict(seed=0),
        default_scope='densevit',
        log_level='WARNING',
        **val,
        **kwargs)

