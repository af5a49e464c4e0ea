"""ViewwiseTransforms: apply a photometric pipeline to every view."""
from typing import Callable, List, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform

from densevit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ViewwiseTransforms(BaseTransform):
    """Run a list of transforms on each view of ``results['img']``
    independently (fresh random draws per view).

    Meant for photometric augmentations after :class:`TwoViewCrop`, e.g. the
    MoCo v2 recipe::

        dict(type='ViewwiseTransforms', transforms=[
            dict(type='RandomColorJitter', brightness=0.4, contrast=0.4,
                 saturation=0.4, hue=0.1, prob=0.8),
            dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
                 channel_weights=(0.114, 0.587, 0.299)),
            dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
                 magnitude_std='inf', prob=0.5),
        ])

    (``RandomGrayscale`` is mmcv's, ``GaussianBlur`` and ``Solarize`` are
    mmpretrain's; they are numpy-2 safe. Add e.g.
    ``dict(type='Solarize', thr=128, prob=0.2)`` for the BYOL-style
    solarisation.)

    Each view gets its own results dict holding ``img``, ``img_shape`` and
    its ``gt_seg_map`` when present; only ``img`` is written back. A
    transform that changes a view's size would silently invalidate
    ``view_boxes``, so it raises instead: geometric transforms belong in
    :class:`TwoViewCrop`.

    **Required keys:** ``img`` (list of arrays, or one array = one view).
    **Modified keys:** ``img``.

    Args:
        transforms (Sequence[dict | Callable]): Transform configs (built with
            DenseViT's TRANSFORMS registry, which falls back to mmpretrain's
            and mmcv's) or transform objects.
    """

    def __init__(self, transforms: Sequence[Union[dict, Callable]]) -> None:
        if isinstance(transforms,
                      dict) or not isinstance(transforms, Sequence):
            raise TypeError('`transforms` must be a list of transform '
                            f'configs, but got {type(transforms)}. Fix: '
                            'transforms=[dict(type=...), ...].')
        self.transforms: List[Callable] = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in transforms
        ]

    def _apply(self, view: np.ndarray, seg) -> np.ndarray:
        sub = dict(img=view, img_shape=view.shape[:2])
        if seg is not None:
            sub['gt_seg_map'] = seg
        for t in self.transforms:
            sub = t(sub)
            if sub is None:
                raise RuntimeError(
                    f'{t!r} returned None inside ViewwiseTransforms; '
                    'per-view transforms must not drop samples.')
        out = sub['img']
        if out.shape[:2] != view.shape[:2]:
            raise ValueError(
                f'A transform in ViewwiseTransforms changed a view from '
                f'{view.shape[:2]} to {out.shape[:2]}, which would make '
                '`view_boxes` wrong. Fix: do geometric changes (crop, resize, '
                'flip) in TwoViewCrop and keep only photometric transforms '
                'here.')
        return out

    def transform(self, results: dict) -> dict:
        """Augment every view with independent random draws."""
        imgs = results['img']
        single = isinstance(imgs, np.ndarray)
        views = [imgs] if single else list(imgs)
        segs = results.get('gt_seg_map', None)
        if segs is None or isinstance(segs, np.ndarray):
            segs = [segs] * len(views)
        out = [self._apply(v, s) for v, s in zip(views, segs)]
        results['img'] = out[0] if single else out
        return results

    def __repr__(self) -> str:
        inner = ', '.join(repr(t) for t in self.transforms)
        return f'{self.__class__.__name__}(transforms=[{inner}])'
