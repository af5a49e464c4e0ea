"""TwoViewCrop: two random-resized crops of one image, with bookkeeping."""
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from densevit.registry import TRANSFORMS

_INTERP = {
    'nearest': None,  # exact integer indexing, see resize_view
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}


def _to_hw(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """Normalise an int or (h, w) size; raise naming ``name`` if invalid."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2 or
            not all(isinstance(s, numbers.Integral) and s > 0 for s in size)):
        raise ValueError(f'`{name}` must be a positive int or a pair (h, w) '
                         f'of positive ints, but got {size!r}. Fix: e.g. '
                         f'{name}=224.')
    return int(size[0]), int(size[1])


def resize_view(img: np.ndarray,
                hw: Tuple[int, int],
                interpolation: str,
                antialias: bool = False) -> np.ndarray:
    """Resize with the pixel-centre convention of OpenCV, also for nearest.

    With ``antialias``, a smooth interpolation that shrinks both sides uses
    OpenCV's 'area' filter instead, which averages rather than aliases.

    'nearest' is exact integer indexing: output pixel ``j`` takes input pixel
    ``floor((j + 0.5) * in / out)``, the pixel whose centre-aligned footprint
    holds the output centre (the mapping the bilinear image resize uses), so
    masks stay aligned with images. It also works for any dtype (int64 class
    maps). OpenCV's INTER_NEAREST uses ``floor(j * in / out)`` instead, and
    INTER_NEAREST_EXACT rounds ties down inconsistently.
    """
    h, w = img.shape[:2]
    if (h, w) == tuple(hw):
        return img.copy()
    if (antialias and interpolation != 'nearest' and h > hw[0]
            and w > hw[1]):
        interpolation = 'area'
    if interpolation == 'nearest':
        rows = ((2 * np.arange(hw[0]) + 1) * h) // (2 * hw[0])
        cols = ((2 * np.arange(hw[1]) + 1) * w) // (2 * hw[1])
        return img[rows[:, None], cols[None, :]]
    return cv2.resize(
        img, (hw[1], hw[0]), interpolation=_INTERP[interpolation])


def box_overlap(box1: np.ndarray, box2: np.ndarray) -> float:
    """Intersection area over the area of the smaller box ([x1,y1,x2,y2])."""
    iw = min(box1[2], box2[2]) - max(box1[0], box2[0])
    ih = min(box1[3], box2[3]) - max(box1[1], box2[1])
    if iw <= 0 or ih <= 0:
        return 0.
    area = min((box1[2] - box1[0]) * (box1[3] - box1[1]),
               (box2[2] - box2[0]) * (box2[3] - box2[1]))
    return float(iw * ih / area)


@TRANSFORMS.register_module()
class TwoViewCrop(BaseTransform):
    """Two independent random-resized crops (+ horizontal flips) of an image.

    The crops follow torchvision's ``RandomResizedCrop`` sampling (area
    fraction uniform in ``scale``, log aspect ratio uniform in ``ratio``, 10
    tries, then a centre crop). Every view records its crop box in ORIGINAL
    image pixels and whether it was flipped (after cropping), which is all a
    loss or metric needs to map a view location back to the image.

    Randomness comes from ``np.random`` (global), which mmengine seeds in the
    main process and in every dataloader worker, so a run is reproducible
    given its seed.

    **Required keys:** ``img``. **Optional:** ``gt_seg_map``.

    With ``num_local_crops`` N > 0 it also cuts N small crops (multi-crop,
    as in SwAV and DINO), drawn independently of the two views with
    ``local_scale`` and resized to ``local_size``; they follow the two views
    in every list below. ``DenseViT`` uses each as an extra query against
    view 2's keys.

    **Modified keys:** ``img`` -> list of 2 + N arrays (h, w, C);
    ``gt_seg_map`` -> list of 2 arrays (h, w), views 1 and 2 cropped like
    the image, resized with nearest (pixel-centre) interpolation and flipped
    (the local crops are for training and carry no mask); ``img_shape`` ->
    (h, w) of views 1 and 2.

    **Added keys:** ``view_boxes`` float32 (2 + N, 4) ``[x1, y1, x2, y2]``
    in original pixels (x2, y2 exclusive; a crop is always whole pixels);
    ``view_flips`` bool (2 + N,); ``ori_shape`` if absent.

    Args:
        size (int | tuple[int, int]): Output size of each view, int or
            (h, w).
        scale (tuple[float, float]): Range of the crop area as a fraction of
            the image area. Defaults to (0.2, 1.0) (MoCo v2 / DenseCL).
        ratio (tuple[float, float]): Range of crop aspect ratios (w / h).
            Defaults to (3/4, 4/3).
        flip_prob (float): Probability of a horizontal flip, per view.
            Defaults to 0.5.
        min_overlap (float, optional): If set, view 2 is re-sampled (up to
            ``max_attempts`` times) until the intersection of the two boxes
            covers at least this fraction of the smaller box; if no sample
            reaches it, the best sample is moved to share view 1's centre
            (clamped into the image), which covers roughly at least
            ``ratio[0] / ratio[1]`` (9/16 by default) of the smaller box, so
            ``min_overlap <= 0.5`` always holds with the default ratios (a
            test checks it). DenseCL does not need
            overlapping views (its correspondence is learned), so the default
            None keeps the plain DenseCL recipe; overlap helps evaluating
            correspondence against the true geometry. Defaults to None.
        max_attempts (int): Re-samples of view 2 for ``min_overlap``.
            Defaults to 10.
        interpolation (str): Image interpolation: 'bilinear', 'bicubic',
            'area', 'lanczos' or 'nearest'. Defaults to 'bilinear'.
        antialias (bool): Use area interpolation when a crop is shrunk (avoids
            aliasing on large images; the pixel mapping is the same).
            Defaults to True.
        num_local_crops (int): N small crops after the two views. Defaults
            to 0 (two views, DenseCL).
        local_size (int | tuple[int, int], optional): Output size of each
            local crop, a multiple of the ViT's patch size; needed when
            ``num_local_crops`` > 0 (e.g. half of ``size``).
        local_scale (tuple[float, float]): Range of a local crop's area as a
            fraction of the image area. Defaults to (0.05, 0.2) (below the
            views' 0.2, as DINO's local crops lie below its global ones).
    """

    def __init__(self,
                 size: Union[int, Sequence[int]],
                 scale: Sequence[float] = (0.2, 1.0),
                 ratio: Sequence[float] = (3. / 4., 4. / 3.),
                 flip_prob: float = 0.5,
                 min_overlap: Optional[float] = None,
                 max_attempts: int = 10,
                 interpolation: str = 'bilinear',
                 antialias: bool = True,
                 num_local_crops: int = 0,
                 local_size: Union[int, Sequence[int], None] = None,
                 local_scale: Sequence[float] = (0.05, 0.2)) -> None:
        self.size = _to_hw(size, 'size')
        if (len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1):
            raise ValueError('`scale` must be (min, max) with 0 < min <= max '
                             f'<= 1, but got {scale!r}. Fix: e.g. '
                             'scale=(0.2, 1.0).')
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError('`ratio` must be (min, max) with 0 < min <= max, '
                             f'but got {ratio!r}. Fix: e.g. ratio=(3/4, 4/3).')
        if not 0 <= flip_prob <= 1:
            raise ValueError(f'`flip_prob` must be in [0, 1], but got '
                             f'{flip_prob}.')
        if min_overlap is not None and not 0 < min_overlap <= 1:
            raise ValueError('`min_overlap` must be None or in (0, 1], but '
                             f'got {min_overlap}. Fix: e.g. min_overlap=0.3.')
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f'`max_attempts` must be an int >= 1, but got '
                             f'{max_attempts!r}.')
        if interpolation not in _INTERP:
            raise ValueError(f'`interpolation` must be one of '
                             f'{sorted(_INTERP)}, but got {interpolation!r}.')
        if (isinstance(num_local_crops, bool)
                or not isinstance(num_local_crops, int)
                or num_local_crops < 0):
            raise ValueError('`num_local_crops` must be an int >= 0, but got '
                             f'{num_local_crops!r}. Fix: e.g. '
                             'num_local_crops=2, or 0 for two views only.')
        if num_local_crops and local_size is None:
            raise ValueError(
                f'`num_local_crops={num_local_crops}` needs `local_size`, '
                'the size of each local crop. Fix: e.g. local_size=32 for '
                '64-px views (a multiple of the patch size).')
        if (len(local_scale) != 2
                or not 0 < local_scale[0] <= local_scale[1] <= 1):
            raise ValueError('`local_scale` must be (min, max) with 0 < min '
                             f'<= max <= 1, but got {local_scale!r}. Fix: '
                             'e.g. local_scale=(0.05, 0.2).')
        self.num_local_crops = num_local_crops
        self.local_size = (None if local_size is None else
                           _to_hw(local_size, 'local_size'))
        self.local_scale = tuple(float(s) for s in local_scale)
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.flip_prob = float(flip_prob)
        self.min_overlap = min_overlap
        self.max_attempts = max_attempts
        self.interpolation = interpolation
        self.antialias = antialias

    def sample_box(self,
                   h: int,
                   w: int,
                   scale: Optional[Sequence[float]] = None) -> np.ndarray:
        """One random-resized-crop box ``[x1, y1, x2, y2]`` (int pixels),
        its area fraction drawn from ``scale`` (default: ``self.scale``)."""
        area = h * w
        scale = self.scale if scale is None else scale
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * np.random.uniform(*scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                y = np.random.randint(0, h - ch + 1)
                x = np.random.randint(0, w - cw + 1)
                return np.array([x, y, x + cw, y + ch])
        # Fallback: the largest centred crop within the ratio range.
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            cw, ch = int(round(h * self.ratio[1])), h
        else:
            cw, ch = w, h
        x, y = (w - cw) // 2, (h - ch) // 2
        return np.array([x, y, x + cw, y + ch])

    def _sample_second_box(self, box1: np.ndarray, h: int,
                           w: int) -> np.ndarray:
        """View 2's box, honouring ``min_overlap`` when it is set."""
        box2 = self.sample_box(h, w)
        if self.min_overlap is None:
            return box2
        best, best_overlap = box2, box_overlap(box1, box2)
        for _ in range(self.max_attempts - 1):
            if best_overlap >= self.min_overlap:
                return best
            box2 = self.sample_box(h, w)
            overlap = box_overlap(box1, box2)
            if overlap > best_overlap:
                best, best_overlap = box2, overlap
        if best_overlap >= self.min_overlap:
            return best
        # Centre the best box on view 1 (clamped into the image).
        bw, bh = best[2] - best[0], best[3] - best[1]
        cx = (box1[0] + box1[2]) // 2
        cy = (box1[1] + box1[3]) // 2
        x = int(np.clip(cx - bw // 2, 0, w - bw))
        y = int(np.clip(cy - bh // 2, 0, h - bh))
        return np.array([x, y, x + bw, y + bh])

    def _crop(self,
              arr: np.ndarray,
              box: np.ndarray,
              flip: bool,
              interpolation: str,
              size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        x1, y1, x2, y2 = (int(v) for v in box)
        view = resize_view(arr[y1:y2, x1:x2], size or self.size,
                           interpolation, self.antialias)
        if flip:
            view = np.ascontiguousarray(view[:, ::-1])
        return view

    def transform(self, results: dict) -> dict:
        """Crop ``img`` (and ``gt_seg_map``) into two views."""
        img = results['img']
        if not isinstance(img, np.ndarray):
            raise TypeError('TwoViewCrop expects results["img"] to be one '
                            f'numpy image, but got {type(img)}. Fix: put '
                            'TwoViewCrop right after image loading, once per '
                            'pipeline.')
        h, w = img.shape[:2]
        box1 = self.sample_box(h, w)
        box2 = self._sample_second_box(box1, h, w)
        boxes = [box1, box2] + [
            self.sample_box(h, w, self.local_scale)
            for _ in range(self.num_local_crops)
        ]
        flips = [bool(np.random.rand() < self.flip_prob) for _ in boxes]
        sizes = [self.size] * 2 + [self.local_size] * self.num_local_crops

        results['img'] = [
            self._crop(img, b, f, self.interpolation, hw)
            for b, f, hw in zip(boxes, flips, sizes)
        ]
        seg = results.get('gt_seg_map', None)
        if seg is not None:
            if seg.shape[:2] != (h, w):
                raise ValueError(
                    f'gt_seg_map has shape {seg.shape[:2]} but the image is '
                    f'{(h, w)}; they must match to be cropped together.')
            results['gt_seg_map'] = [
                self._crop(seg, b, f, 'nearest')
                for b, f in zip(boxes[:2], flips[:2])
            ]
        results.setdefault('ori_shape', (h, w))
        results['img_shape'] = self.size
        results['view_boxes'] = np.stack(boxes).astype(np.float32)
        results['view_flips'] = np.array(flips, dtype=bool)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'scale={self.scale}, ratio={self.ratio}, '
                f'flip_prob={self.flip_prob}, min_overlap={self.min_overlap}, '
                f'interpolation={self.interpolation!r}, '
                f'antialias={self.antialias}, '
                f'num_local_crops={self.num_local_crops}, '
                f'local_size={self.local_size}, '
                f'local_scale={self.local_scale})')
