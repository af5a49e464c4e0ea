"""ViewwiseTransforms: apply a photometric pipeline to every view."""
from typing import Callable, Sequence, Union

from mmcv.transforms import Compose
from mmpretrain.datasets.transforms import ApplyToList

from densevit.registry import TRANSFORMS


def _view_sizes(views) -> list:
    return [v.shape[:2] for v in (views if isinstance(views, list) else
                                  [views])]


@TRANSFORMS.register_module()
class ViewwiseTransforms(ApplyToList):
    """mmpretrain's ``ApplyToList`` over the views in ``results['img']``:
    every view runs the transforms with its own random draws.

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

    Each view goes through the transforms in a copy of ``results`` whose
    ``img`` is that view; only ``img`` is collected back into a list, the
    other keys are kept from the first copy. A transform that changes a
    view's size would silently invalidate ``view_boxes``, so it raises
    instead: geometric transforms belong in :class:`TwoViewCrop`.

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
        super().__init__(transforms=[], scatter_key='img', collate_keys=[])
        # ApplyToList builds from mmpretrain's registry, which finds
        # DenseViT's transforms (RandomColorJitter) only under the 'densevit'
        # default scope; DenseViT's registry finds them in any scope.
        self.transforms = Compose([
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in transforms
        ])

    def transform(self, results: dict) -> dict:
        """Augment every view with independent random draws."""
        before = _view_sizes(results['img'])
        results = super().transform(results)
        after = _view_sizes(results['img'])
        if after != before:
            raise ValueError(
                f'A transform in ViewwiseTransforms changed the view sizes '
                f'from {before} to {after}, which would make `view_boxes` '
                'wrong. Fix: do geometric changes (crop, resize, flip) in '
                'TwoViewCrop and keep only photometric transforms here.')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(transforms={self.transforms!r})'
