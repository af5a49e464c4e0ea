"""The FSDP tests' pieces: the shipped ViT-L FSDP config shrunk to a
2-layer 32-d ViT, and hooks that record what training does to the whole
(gathered) parameters."""
import contextlib
from pathlib import Path

from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model
from torch.distributed.fsdp import FullyShardedDataParallel

from densevit.apis import build_runner

CONFIG = (Path(__file__).resolve().parents[2] / 'configs' / 'densevit' /
          'densevit_vit-large-p16_8xb64-fsdp-amp-coslr-100e_in1k.py')
KEY = 'key_encoder.module.'


def gather(runner) -> dict:
    """Every parameter of the model, whole, by its unwrapped name (the
    shards gathered under FSDP)."""
    model = runner.model
    gathering = (FullyShardedDataParallel.summon_full_params(
        model, writeback=False) if isinstance(
            model, FullyShardedDataParallel) else contextlib.nullcontext())
    with gathering:
        return {
            name.replace('_fsdp_wrapped_module.', ''): param.detach().clone()
            for name, param in model.module.named_parameters()
        }


class GatherBeforeEMA(Hook):
    """After the optimizer step, before ``MomentumUpdateHook``."""

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.params = gather(runner)


class Record(Hook):
    """After ``MomentumUpdateHook``: the loss, the parameters, and the
    largest distance of the key encoder from the EMA formula applied to the
    whole parameters gathered before the update."""

    priority = 'NORMAL'

    def __init__(self) -> None:
        self.before = GatherBeforeEMA()
        self.losses, self.params, self.ema_errors, self.ema_moves = \
            [], [], [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        after, before = gather(runner), self.before.params
        momentum = get_ori_model(runner.model).key_encoder.momentum_at(
            runner.iter + 1)
        keys = [name for name in after if name.startswith(KEY)]
        expected = {
            name: before[name].lerp(before[name[len(KEY):]], momentum)
            for name in keys
        }
        self.ema_errors.append(
            max(float((after[n] - expected[n]).abs().max()) for n in keys))
        self.ema_moves.append(
            max(float((after[n] - before[n]).abs().max()) for n in keys))
        self.losses.append(float(outputs['loss'].detach()))
        self.params.append(after)


def tiny_config(work_dir: Path, **strategy) -> Config:
    """The ViT-L FSDP config with a 2-layer 32-d ViT on 8 synthetic 32-px
    images (2 per rank and step: 2 steps per epoch), 2 epochs."""
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.update(
        arch=dict(embed_dims=32, num_layers=2, num_heads=2), img_size=32)
    cfg.model.neck.hid_channels = 32
    for loss in ('dense_loss', 'global_loss'):
        cfg.model[loss].queue_len = 16
    # Both losses from the first step, and a key encoder that moves
    # measurably (half the way to the online one, on the cosine to 0).
    cfg.model.update(dense_warmup_iters=0, momentum=0.5)
    cfg.train_dataloader = dict(
        dataset=dict(
            type='SyntheticShapes', num_samples=8, img_size=32,
            pipeline=[dict(type='TwoViewCrop', size=32),
                      dict(type='PackDenseInputs')]),
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
        batch_size=2,
        num_workers=0)
    cfg.train_cfg.max_epochs = 2
    # Steps that move the weights (no warm-up from 1e-3 x lr).
    cfg.optim_wrapper.optimizer.lr = 1e-2
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', T_max=4, by_epoch=False, eta_min=1e-3)
    ]
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h.type != 'ProbeHook']
    cfg.default_hooks.logger.interval = 100
    cfg.log_level = 'ERROR'
    cfg.launcher = 'pytorch'
    cfg.work_dir = str(work_dir)
    cfg.strategy.update(strategy)
    return cfg


def train(cfg: Config) -> tuple:
    runner = build_runner(cfg)
    record = Record()
    runner.register_hook(record.before)
    runner.register_hook(record)
    runner.train()
    model = get_ori_model(runner.model)
    queues = {loss: (getattr(model, loss).queue.keys.clone(),
                     int(getattr(model, loss).queue.ptr))
              for loss in ('dense_loss', 'global_loss')}
    return record, queues
