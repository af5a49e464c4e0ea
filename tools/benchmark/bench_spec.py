"""The sizes and settings every benchmark case shares."""
import contextlib
import dataclasses
from typing import Dict, Optional

import torch

from densevit.models.backbones.densevit_backbone import resolve_arch
from densevit.models.losses.fused_info_nce import INFO_NCE_IMPLS

PATCH_SIZE = 16
# Relative error allowed between the fused and the materialised loss.
TOLERANCES = dict(fp32=1e-4, bf16=2e-2)


@dataclasses.dataclass
class BenchmarkSpec:
    """Sizes and settings shared by every case.

    Args:
        arch (str): a DenseViTBackbone arch name, e.g. 'deit-tiny', 'deit-small', 'deit-base'.
        depth (int, optional): override the number of ViT layers.
        batch (int): images per step (each image gives two views).
        img_size (int): view size in pixels, a multiple of 16.
        queue_len (int): K, negatives per queue.
        feat_dim (int): D, projection dimension.
        hid_channels (int): projection MLP hidden width.
        temperature (float): InfoNCE τ.
        precision (str): 'fp32' or 'bf16' (autocast).
        device (str): 'cpu' or 'cuda'.
        iters (int): timed iterations (the mean is reported).
        warmup (int): untimed iterations before the Timer's own warm-up.
        threads (int, optional): torch CPU threads (default: torch's).
        seed (int): seed of inputs and weights.
        peak_tflops (float, optional): device peak for MFU.
        loss_impl (str): ``impl`` of DenseViT's ``info_nce`` in the loss
            cases: 'auto', 'fused' or 'chunked' (the fall-back path).
    """
    arch: str = 'deit-small'
    depth: Optional[int] = None
    batch: int = 16
    img_size: int = 224
    queue_len: int = 65536
    feat_dim: int = 128
    hid_channels: int = 2048
    temperature: float = 0.2
    precision: str = 'fp32'
    device: str = 'cpu'
    iters: int = 10
    warmup: int = 3
    threads: Optional[int] = None
    seed: int = 0
    peak_tflops: Optional[float] = None
    loss_impl: str = 'auto'

    @property
    def num_patches(self) -> int:
        return (self.img_size // PATCH_SIZE)**2

    @property
    def num_queries(self) -> int:
        return self.batch * self.num_patches

    def arch_settings(self) -> Dict[str, int]:
        """The full ViT arch dict both DenseViT and DenseCL are built with."""
        settings = resolve_arch(self.arch)
        if self.depth is not None:
            settings['num_layers'] = self.depth
        return settings

    def validate(self, step_cases: bool) -> None:
        """Raise ValueError naming the option and the fix."""
        positive = dict(
            batch=self.batch,
            img_size=self.img_size,
            queue_len=self.queue_len,
            feat_dim=self.feat_dim,
            hid_channels=self.hid_channels,
            iters=self.iters)
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'--{name.replace("_", "-")} must be a '
                                 f'positive int, got {value!r}.')
        if self.depth is not None and self.depth < 1:
            raise ValueError(f'--depth must be >= 1, got {self.depth}.')
        if self.warmup < 0:
            raise ValueError(f'--warmup must be >= 0, got {self.warmup}.')
        if self.img_size % PATCH_SIZE:
            raise ValueError(
                f'--img-size must be a multiple of the patch size '
                f'{PATCH_SIZE}, got {self.img_size}. Fix: e.g. 224 or 64.')
        if self.precision not in TOLERANCES:
            raise ValueError(f"--precision must be 'fp32' or 'bf16', got "
                             f'{self.precision!r}.')
        # info_nce takes τ and impl as given: the CLI is where they enter.
        if not self.temperature > 0:
            raise ValueError(f'--temperature must be > 0, got '
                             f'{self.temperature!r}. Fix: e.g. 0.2 (DenseCL).')
        if self.loss_impl not in INFO_NCE_IMPLS:
            raise ValueError(f"--loss-impl must be 'auto', 'fused' or "
                             f"'chunked', got {self.loss_impl!r}.")
        if self.device not in ('cpu', 'cuda'):
            raise ValueError(f"--device must be 'cpu' or 'cuda', got "
                             f'{self.device!r}.')
        if self.device == 'cuda' and not torch.cuda.is_available():
            raise ValueError('--device cuda but torch sees no CUDA device. '
                             'Fix: run on a GPU machine or use --device cpu.')
        if step_cases and self.queue_len % self.batch:
            raise ValueError(
                f'--queue-len {self.queue_len} is not a multiple of --batch '
                f'{self.batch}: mmpretrain DenseCL asserts queue_len % '
                'batch_size == 0 when it enqueues (DenseViT does not need '
                'it). Fix: e.g. --queue-len 65536 with a power-of-two batch.')
        self.arch_settings()  # raises for an unknown arch


def autocast(spec: BenchmarkSpec):
    """bf16 autocast on the spec's device, or nothing for fp32."""
    if spec.precision == 'bf16':
        return torch.autocast(spec.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def input_dtype(spec: BenchmarkSpec) -> torch.dtype:
    """The dtype of the loss cases' queries and positives."""
    return torch.bfloat16 if spec.precision == 'bf16' else torch.float32
