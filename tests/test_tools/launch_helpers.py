"""What the tests that start ``tools/train.py`` share: a tiny config, a hook
that records what each rank enqueues, free ports and the launch itself."""
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / 'configs/densevit/' \
    'densevit_vit-tiny-d4-p8_1xb32-demo-coslr-4e_synthetic-64px.py'

# The demo with a 1-layer, 32-d ViT, 40 images of 8 per batch, no workers.
TINY_OVERRIDES = f"""
_base_ = '{DEMO}'
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, num_layers=1, num_heads=2)),
    neck=dict(in_channels=32, hid_channels=64, out_channels=16),
    dense_loss=dict(queue_len=64, feat_dim=16),
    global_loss=dict(queue_len=64, feat_dim=16))
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(num_samples=40))
probe_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(num_samples=32))
test_dataloader = dict(
    batch_size=16, num_workers=0, dataset=dict(num_samples=32))
default_hooks = dict(logger=dict(interval=1))
"""

# A hook for distributed runs (module ``queue_recorder``, loaded with
# ``custom_imports``): it keeps each step's keys as the losses recorded
# them (before QueueUpdateHook, ABOVE_NORMAL, all-gathers, enqueues and
# clears them) and, at the end, both queues and the key encoder, in
# ``<work_dir>/queues_rank<rank>.pth``.
QUEUE_RECORDER = """
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from densevit.registry import HOOKS


@HOOKS.register_module()
class QueueRecorder(Hook):
    priority = 'HIGHEST'

    def before_train(self, runner):
        self.steps = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = get_ori_model(runner.model)
        self.steps.append({name: getattr(model, name).pending_keys.clone()
                           for name in ('global_loss', 'dense_loss')})

    def after_train(self, runner):
        model = get_ori_model(runner.model)
        torch.save(
            dict(steps=self.steps,
                 queues={name: getattr(model, name).queue.keys.clone()
                         for name in ('global_loss', 'dense_loss')},
                 key_encoder={name: value.clone() for name, value in
                              model.key_encoder.state_dict().items()}),
            f'{runner.work_dir}/queues_rank{get_rank()}.pth')
"""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def tool_env(*paths, **variables) -> dict:
    """This environment with the repository (and ``paths``, e.g. the folder
    of a hook module) on PYTHONPATH, and ``variables`` set."""
    return dict(os.environ,
                PYTHONPATH=os.pathsep.join(map(str, (REPO_ROOT, *paths))),
                **{name: str(value) for name, value in variables.items()})


def run_tool(*args, cwd):
    """Run ``python *args`` (a tool of the repository); return its output,
    which the assertion shows when it fails."""
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=tool_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr
