"""Small image helpers shared by the drawing functions (numpy + PIL only)."""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

ImageLike = Union[np.ndarray, Image.Image, Tensor]

WHITE = (255, 255, 255)


def as_rgb_array(image: ImageLike, name: str = 'image') -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from an array, a PIL image or a tensor.

    Tensors are taken as (3, H, W) (``uint8`` or float in [0, 255]); use
    :func:`to_rgb_image` first for normalised network inputs.

    Args:
        image (ndarray | PIL.Image | Tensor): the image.
        name (str): what to call it in error messages.

    Returns:
        ndarray: a contiguous (H, W, 3) uint8 array.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert('RGB')).copy()
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f'`{name}` tensors must be (3, H, W), got shape '
                             f'{tuple(image.shape)}.')
        image = image.detach().cpu().permute(1, 2, 0).float().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f'`{name}` must be a numpy array, PIL image or '
                        f'tensor, got {type(image).__name__}.')
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'`{name}` must be an (H, W, 3) RGB image, got '
                         f'shape {image.shape}.')
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def to_rgb_image(img: Tensor,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 bgr: bool = False) -> np.ndarray:
    """Undo a data preprocessor's normalisation for display.

    Args:
        img (Tensor): (3, H, W) image, normalised (float) or raw (uint8).
        mean (Sequence[float], optional): per-channel mean that was
            subtracted (in the channel order of ``img``). Defaults to None
            (no un-normalisation).
        std (Sequence[float], optional): per-channel std that ``img`` was
            divided by. Defaults to None.
        bgr (bool): whether ``img`` is in BGR order (e.g. the raw uint8
            views ``PackDenseInputs`` packs); they are flipped to RGB.
            Defaults to False (the data preprocessor's output is RGB when
            ``to_rgb=True``).

    Returns:
        ndarray: (H, W, 3) uint8 RGB.
    """
    if not isinstance(img, Tensor) or img.ndim != 3 or img.shape[0] != 3:
        shape = tuple(img.shape) if hasattr(img, 'shape') else type(img)
        raise ValueError(f'`img` must be a (3, H, W) tensor, got {shape}.')
    out = img.detach().cpu().double()
    if std is not None:
        out = out * torch.as_tensor(std, dtype=out.dtype).reshape(-1, 1, 1)
    if mean is not None:
        out = out + torch.as_tensor(mean, dtype=out.dtype).reshape(-1, 1, 1)
    if bgr:
        out = out.flip(0)
    return as_rgb_array(out.clamp(0, 255))


def resize_rgb(image: np.ndarray,
               size: Tuple[int, int],
               interpolation: str = 'bilinear') -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to ``size`` = (h, w)."""
    methods = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR,
               'bicubic': Image.BICUBIC}
    if interpolation not in methods:
        raise ValueError(f'`interpolation` must be one of {sorted(methods)}, '
                         f'got {interpolation!r}.')
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    resized = Image.fromarray(image).resize((w, h), methods[interpolation])
    return np.asarray(resized).copy()


def hstack(images: Sequence[np.ndarray], gap: int = 4,
           fill: Tuple[int, int, int] = WHITE) -> np.ndarray:
    """Put images side by side, top-aligned, ``gap`` pixels apart."""
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = fill
    x = 0
    for im in images:
        canvas[:im.shape[0], x:x + im.shape[1]] = im
        x += im.shape[1] + gap
    return canvas


def vstack(images: Sequence[np.ndarray], gap: int = 4,
           fill: Tuple[int, int, int] = WHITE) -> np.ndarray:
    """Stack images top to bottom, left-aligned, ``gap`` pixels apart."""
    width = max(im.shape[1] for im in images)
    height = sum(im.shape[0] for im in images) + gap * (len(images) - 1)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = fill
    y = 0
    for im in images:
        canvas[y:y + im.shape[0], :im.shape[1]] = im
        y += im.shape[0] + gap
    return canvas


def add_title(image: np.ndarray, title: str,
              height: int = 16) -> np.ndarray:
    """Write ``title`` in black on a white strip above ``image``."""
    strip = Image.new('RGB', (image.shape[1], height), WHITE)
    draw = ImageDraw.Draw(strip)
    try:
        font = ImageFont.load_default(size=height - 4)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    draw.text((2, 1), title, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(strip), image], axis=0)
