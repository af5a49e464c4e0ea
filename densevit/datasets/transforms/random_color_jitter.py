"""RandomColorJitter: brightness/contrast/saturation/hue jitter that works
with numpy 2."""
import numbers
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from densevit.registry import TRANSFORMS

# ITU-R 601 luma weights in BGR order (OpenCV / torchvision grayscale).
_LUMA_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)


def _factor_range(value: Union[float, Sequence[float]], name: str,
                  center: float, bound: Tuple[float, float]):
    """torchvision-style range: x -> [center - x, center + x], clipped."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f'`{name}` must be >= 0, but got {value}. Fix: '
                             f'e.g. {name}=0.4 (0 disables it).')
        value = (max(center - value, bound[0]), center + value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not bound[0] <= value[0] <= value[1] <= bound[1]):
        raise ValueError(f'`{name}` must be a number >= 0 or a range '
                         f'(min, max) within {bound}, but got {value!r}.')
    return float(value[0]), float(value[1])


@TRANSFORMS.register_module()
class RandomColorJitter(BaseTransform):
    """Randomly change brightness, contrast, saturation and hue of a BGR
    image, in a random order, like torchvision's ``ColorJitter``.

    mmcv's ``adjust_hue`` (used by mmpretrain's ``ColorJitter``) raises an
    OverflowError for negative hue shifts under numpy 2. This transform does
    the maths in float32 and the hue rotation with OpenCV's float HSV
    (hue in degrees), so any hue in [-0.5, 0.5] works. Randomness comes from
    ``np.random`` (seeded by mmengine).

    **Required keys:** ``img`` (H, W, 3) uint8 BGR (a (H, W) or (H, W, 1)
    grayscale image gets brightness and contrast only).
    **Modified keys:** ``img``.

    Args:
        brightness (float | tuple[float, float]): Factor drawn from
            ``[max(0, 1 - b), 1 + b]`` (or the given range). Defaults to 0.4.
        contrast (float | tuple[float, float]): Like ``brightness``; blends
            with the mean gray level. Defaults to 0.4.
        saturation (float | tuple[float, float]): Like ``brightness``; blends
            with the grayscale image. Defaults to 0.4.
        hue (float | tuple[float, float]): Shift drawn from ``[-h, h]`` (or
            the range) in fractions of a full turn, within [-0.5, 0.5].
            Defaults to 0.1.
        prob (float): Probability of applying the jitter at all. Defaults to
            0.8 (MoCo v2).
    """

    def __init__(self,
                 brightness: Union[float, Sequence[float]] = 0.4,
                 contrast: Union[float, Sequence[float]] = 0.4,
                 saturation: Union[float, Sequence[float]] = 0.4,
                 hue: Union[float, Sequence[float]] = 0.1,
                 prob: float = 0.8) -> None:
        self.brightness = _factor_range(brightness, 'brightness', 1.,
                                        (0., float('inf')))
        self.contrast = _factor_range(contrast, 'contrast', 1.,
                                      (0., float('inf')))
        self.saturation = _factor_range(saturation, 'saturation', 1.,
                                        (0., float('inf')))
        self.hue = _factor_range(hue, 'hue', 0., (-0.5, 0.5))
        if not 0 <= prob <= 1:
            raise ValueError(f'`prob` must be in [0, 1], but got {prob}.')
        self.prob = float(prob)

    @staticmethod
    def _gray(img: np.ndarray) -> np.ndarray:
        return img @ _LUMA_BGR if img.shape[2] == 3 else img[..., 0]

    def transform(self, results: dict) -> dict:
        """Jitter ``results['img']``."""
        if np.random.rand() >= self.prob:
            return results
        src = results['img']
        img = src.astype(np.float32) / 255.
        squeeze = img.ndim == 2
        if squeeze:
            img = img[..., None]
        color = img.shape[2] == 3
        # Draw every factor and the order up front: the number of draws is
        # then the same for every image, which keeps runs reproducible.
        order = np.random.permutation(4)
        b = np.random.uniform(*self.brightness)
        c = np.random.uniform(*self.contrast)
        s = np.random.uniform(*self.saturation)
        h = np.random.uniform(*self.hue)
        for op in order:
            if op == 0 and b != 1:
                img = img * b
            elif op == 1 and c != 1:
                mean = float(self._gray(img).mean())
                img = img * c + mean * (1 - c)
            elif op == 2 and s != 1 and color:
                gray = self._gray(img)[..., None]
                img = img * s + gray * (1 - s)
            elif op == 3 and h != 0 and color:
                hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
                hsv[..., 0] = np.mod(hsv[..., 0] + h * 360., 360.)
                img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
            # Clamp after every op, as torchvision does.
            np.clip(img, 0., 1., out=img)
        out = np.rint(img * 255.).astype(src.dtype)
        results['img'] = out[..., 0] if squeeze else out
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness={self.brightness}, '
                f'contrast={self.contrast}, saturation={self.saturation}, '
                f'hue={self.hue}, prob={self.prob})')
