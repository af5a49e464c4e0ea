"""ResizeWithMask: resize an image and its segmentation map together."""
from typing import Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform

from densevit.registry import TRANSFORMS
from .two_view_crop import _INTERP, _to_hw, resize_view


@TRANSFORMS.register_module()
class ResizeWithMask(BaseTransform):
    """Resize ``img`` (bilinear by default) and ``gt_seg_map`` (nearest) to a
    fixed size, for single-view probe / evaluation pipelines.

    mmcv's ``Resize`` resizes ``gt_seg_map`` too, but with OpenCV's
    INTER_NEAREST, which takes input pixel ``floor(j * in / out)`` and so
    shifts the mask by up to half an output pixel against the image. This
    transform resizes both with the pixel-centre mapping of
    :func:`resize_view` (the one :class:`TwoViewCrop` uses), so mask and
    image stay aligned, and shrinks the image with area averaging rather
    than aliasing bilinear sampling. The aspect ratio is not kept: every
    image becomes ``size``, so every sample has the same ViT patch grid.

    **Required keys:** ``img`` (one array). **Optional:** ``gt_seg_map``.
    **Modified keys:** ``img``, ``gt_seg_map``, ``img_shape``.
    **Added keys:** ``scale_factor`` (w_scale, h_scale); ``ori_shape`` if
    absent.

    Args:
        size (int | tuple[int, int]): Output size, int or (h, w).
        interpolation (str): Image interpolation: 'bilinear', 'bicubic',
            'area', 'lanczos' or 'nearest'. Defaults to 'bilinear'.
        antialias (bool): Use area interpolation for the image when it
            shrinks in both sides (same pixel mapping, no aliasing).
            Defaults to True.
    """

    def __init__(self,
                 size: Union[int, Sequence[int]],
                 interpolation: str = 'bilinear',
                 antialias: bool = True) -> None:
        self.size = _to_hw(size, 'size')
        if interpolation not in _INTERP:
            raise ValueError(f'`interpolation` must be one of '
                             f'{sorted(_INTERP)}, but got {interpolation!r}.')
        self.interpolation = interpolation
        self.antialias = antialias

    def transform(self, results: dict) -> dict:
        """Resize the image and, when present, its mask."""
        img = results['img']
        if not isinstance(img, np.ndarray):
            raise TypeError('ResizeWithMask works on one image (numpy array), '
                            f'but results["img"] is {type(img)}. Fix: use it '
                            'in single-view pipelines; two-view pipelines '
                            'resize in TwoViewCrop.')
        h, w = img.shape[:2]
        results['img'] = resize_view(img, self.size, self.interpolation,
                                     self.antialias)
        seg = results.get('gt_seg_map', None)
        if seg is not None:
            if seg.shape[:2] != (h, w):
                raise ValueError(
                    f'gt_seg_map has shape {seg.shape[:2]} but the image is '
                    f'{(h, w)}; they must match to be resized together.')
            results['gt_seg_map'] = resize_view(seg, self.size, 'nearest')
        results.setdefault('ori_shape', (h, w))
        results['img_shape'] = self.size
        results['scale_factor'] = (self.size[1] / w, self.size[0] / h)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r}, '
                f'antialias={self.antialias})')
