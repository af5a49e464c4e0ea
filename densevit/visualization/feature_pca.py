"""Dense features as colours: the first three principal components → RGB."""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .image_utils import (ImageLike, as_rgb_array, hstack, resize_rgb,
                          vstack)

FeatsLike = Union[Tensor, np.ndarray]
SizeLike = Union[int, Sequence[int], None]

_LAYOUTS = ('auto', 'hwc', 'chw')


@dataclass
class FeaturePCA:
    """A fitted projection of D-dim features onto 3 colour channels.

    Fitting once over several images (:func:`fit_pca`) and applying it to
    each (:func:`apply_pca`) gives every image the same colour for the same
    feature, so their maps can be compared.

    Attributes:
        mean (Tensor): (D,) mean of the fitted features.
        components (Tensor): (D, 3) principal directions (columns).
        low (Tensor): (3,) smallest projection per component (maps to 0).
        high (Tensor): (3,) largest projection per component (maps to 255).
        normalize (bool): whether features are L2-normalised before
            projecting.
    """
    mean: Tensor
    components: Tensor
    low: Tensor
    high: Tensor
    normalize: bool = True


def _to_hwc(feats: FeatsLike, layout: str) -> Tensor:
    """Return ``feats`` as a float64 (H, W, D) tensor."""
    if layout not in _LAYOUTS:
        raise ValueError(f'`layout` must be one of {_LAYOUTS}, got '
                         f'{layout!r}.')
    if isinstance(feats, np.ndarray):
        feats = torch.from_numpy(feats)
    if not isinstance(feats, Tensor):
        raise TypeError('`feats` must be a tensor or numpy array, got '
                        f'{type(feats).__name__}.')
    if feats.ndim != 3:
        raise ValueError('`feats` must be 3-D: dense features (H, W, D) or '
                         f'patch features (C, H, W), got shape '
                         f'{tuple(feats.shape)}.')
    feats = feats.detach().cpu().double()
    if layout == 'auto':
        a, b, c = feats.shape
        # Patch grids are usually square and channels outnumber grid sides;
        # where neither tells the layouts apart, ask the caller.
        if a == b != c:
            layout = 'hwc'
        elif b == c != a:
            layout = 'chw'
        elif a != c:
            layout = 'chw' if a > c else 'hwc'
        else:
            raise ValueError(
                f'Cannot tell whether features of shape {tuple(feats.shape)} '
                "are (H, W, D) or (C, H, W). Fix: pass layout='hwc' (e.g. "
                "`dense_feats`) or layout='chw' (e.g. `patch_feats`).")
    return feats.permute(1, 2, 0) if layout == 'chw' else feats


def _rows(feats: Tensor, normalize: bool) -> Tensor:
    rows = feats.reshape(-1, feats.shape[-1])
    return F.normalize(rows, dim=1) if normalize else rows


def fit_pca(feats: Union[FeatsLike, Sequence[FeatsLike]],
            layout: str = 'auto',
            normalize: bool = True) -> FeaturePCA:
    """Fit a 3-component PCA jointly over the patches of one or more maps.

    Args:
        feats (Tensor | ndarray | Sequence): one feature map or several,
            each (H, W, D) or (C, H, W) with the same D.
        layout (str): 'hwc', 'chw' or 'auto' (guess from the shape; raises
            ValueError when it cannot). Defaults to 'auto'.
        normalize (bool): L2-normalise each patch feature first. DenseViT
            matches patches by cosine similarity, so this shows the
            geometry the model uses and keeps a few high-norm tokens from
            taking all the variance. Defaults to True.

    Returns:
        FeaturePCA: the fitted projection.
    """
    if isinstance(feats, (Tensor, np.ndarray)):
        feats = [feats]
    maps = [_to_hwc(f, layout) for f in feats]
    if not maps:
        raise ValueError('`feats` is empty: give at least one feature map.')
    dims = {m.shape[-1] for m in maps}
    if len(dims) != 1:
        raise ValueError('All feature maps must have the same number of '
                         f'channels to share one PCA, got {sorted(dims)}.')
    rows = torch.cat([_rows(m, normalize) for m in maps])
    mean = rows.mean(0)
    centred = rows - mean
    # Exact SVD of the centred rows: deterministic, unlike pca_lowrank,
    # and cheap at these sizes (patches of a few images x D <= 1024).
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:3].T
    if components.shape[1] < 3:  # D < 3: pad with null directions
        pad = components.new_zeros(components.shape[0],
                                   3 - components.shape[1])
        components = torch.cat([components, pad], dim=1)
    proj = centred @ components
    # SVD signs are arbitrary; fix them so the largest projection along
    # each component is positive, which keeps colours stable across runs.
    extreme = proj.gather(0, proj.abs().argmax(0, keepdim=True))[0]
    signs = torch.where(extreme < 0, -1.0, 1.0).to(proj)
    components = components * signs
    proj = proj * signs
    return FeaturePCA(
        mean=mean,
        components=components,
        low=proj.min(0).values,
        high=proj.max(0).values,
        normalize=normalize)


def _out_hw(out_size: SizeLike) -> Optional[Tuple[int, int]]:
    if out_size is None:
        return None
    if isinstance(out_size, int):
        return out_size, out_size
    if len(out_size) != 2:
        raise ValueError('`out_size` must be an int or (h, w), got '
                         f'{out_size!r}.')
    return int(out_size[0]), int(out_size[1])


def apply_pca(feats: FeatsLike,
              pca: FeaturePCA,
              out_size: SizeLike = None,
              layout: str = 'auto',
              interpolation: str = 'nearest') -> np.ndarray:
    """Colour a feature map with a fitted :class:`FeaturePCA`.

    Each component is scaled from its fitted [low, high] range to [0, 255]
    (values outside the range, possible for maps not in the fit, are
    clipped); a component with no spread is drawn as 0.

    Args:
        feats (Tensor | ndarray): (H, W, D) or (C, H, W) features.
        pca (FeaturePCA): from :func:`fit_pca`.
        out_size (int | tuple[int, int], optional): (h, w) of the returned
            image, e.g. the input image's size. Defaults to None (one pixel
            per patch).
        layout (str): 'hwc', 'chw' or 'auto'. Defaults to 'auto'.
        interpolation (str): 'nearest' (one flat block per patch, shows the
            real resolution) or 'bilinear'. Defaults to 'nearest'.

    Returns:
        ndarray: (h, w, 3) uint8 RGB.
    """
    hwc = _to_hwc(feats, layout)
    if hwc.shape[-1] != pca.mean.shape[0]:
        raise ValueError(f'The features have {hwc.shape[-1]} channels but '
                         f'the PCA was fitted on {pca.mean.shape[0]}.')
    proj = (_rows(hwc, pca.normalize) - pca.mean) @ pca.components
    spread = pca.high - pca.low
    scaled = torch.where(spread > 1e-12,
                         (proj - pca.low) / spread.clamp_min(1e-12),
                         torch.zeros_like(proj)).clamp(0, 1)
    rgb = (scaled * 255).round().to(torch.uint8).reshape(*hwc.shape[:2], 3)
    image = rgb.numpy()
    hw = _out_hw(out_size)
    return image if hw is None else resize_rgb(image, hw, interpolation)


def pca_feature_map(feats: FeatsLike,
                    out_size: SizeLike = None,
                    layout: str = 'auto',
                    normalize: bool = True,
                    interpolation: str = 'nearest') -> np.ndarray:
    """The first 3 principal components of a feature map as an RGB image.

    Args:
        feats (Tensor | ndarray): (H, W, D) dense features (DenseViT's
            ``dense_feats``) or (C, H, W) patch features (``patch_feats``).
        out_size (int | tuple[int, int], optional): (h, w) to upsample to.
            Defaults to None (H x W, one pixel per patch).
        layout (str): 'hwc', 'chw' or 'auto' (guess from the shape).
            Defaults to 'auto'.
        normalize (bool): L2-normalise features before the PCA. Defaults
            to True.
        interpolation (str): 'nearest' or 'bilinear'. Defaults to 'nearest'.

    Returns:
        ndarray: (h, w, 3) uint8 RGB; each channel min-max scaled to
        [0, 255] over this map.
    """
    pca = fit_pca(feats, layout=layout, normalize=normalize)
    return apply_pca(feats, pca, out_size, layout, interpolation)


def feature_pca_overlay(image: ImageLike,
                        feats: FeatsLike,
                        alpha: float = 0.5,
                        pca: Optional[FeaturePCA] = None,
                        layout: str = 'auto',
                        interpolation: str = 'nearest',
                        gap: int = 4) -> np.ndarray:
    """A panel ``[image | PCA map | image blended with the map]``.

    Args:
        image (ndarray | PIL.Image): (H, W, 3) RGB image the features are
            of; the map is upsampled to its size.
        feats (Tensor | ndarray): (H', W', D) or (C, H', W') features.
        alpha (float): weight of the map in the overlay, in [0, 1].
            Defaults to 0.5.
        pca (FeaturePCA, optional): a projection shared with other images
            (from :func:`fit_pca`). Defaults to None (fit on ``feats``).
        layout (str): 'hwc', 'chw' or 'auto'. Defaults to 'auto'.
        interpolation (str): upsampling of the map. Defaults to 'nearest'.
        gap (int): white pixels between the panels. Defaults to 4.

    Returns:
        ndarray: (H, 3W + 2·gap, 3) uint8 RGB.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'`alpha` must be in [0, 1], got {alpha}.')
    rgb = as_rgb_array(image)
    if pca is None:
        pca = fit_pca(feats, layout=layout)
    pca_map = apply_pca(feats, pca, rgb.shape[:2], layout, interpolation)
    blend = (1.0 - alpha) * rgb.astype(np.float32) + alpha * pca_map
    overlay = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return hstack([rgb, pca_map, overlay], gap=gap)


def feature_pca_grid(images: Sequence[ImageLike],
                     feats: Sequence[FeatsLike],
                     alpha: float = 0.5,
                     joint: bool = True,
                     pca: Optional[FeaturePCA] = None,
                     layout: str = 'auto',
                     interpolation: str = 'nearest',
                     gap: int = 4) -> np.ndarray:
    """One :func:`feature_pca_overlay` row per image, stacked.

    Args:
        images (Sequence): RGB images.
        feats (Sequence): their feature maps, one per image.
        alpha (float): overlay weight. Defaults to 0.5.
        joint (bool): fit one PCA over all maps so equal colours mean
            similar features across rows. Defaults to True.
        pca (FeaturePCA, optional): use this projection for every row
            instead of fitting one. Defaults to None.
        layout (str): 'hwc', 'chw' or 'auto'. Defaults to 'auto'.
        interpolation (str): upsampling of the maps. Defaults to 'nearest'.
        gap (int): white pixels between panels and rows. Defaults to 4.

    Returns:
        ndarray: uint8 RGB.
    """
    if len(images) != len(feats) or not images:
        raise ValueError('Give one feature map per image (and at least '
                         f'one): got {len(images)} images and {len(feats)} '
                         'feature maps.')
    if pca is None and joint:
        pca = fit_pca(list(feats), layout=layout)
    rows = [
        feature_pca_overlay(im, f, alpha, pca, layout, interpolation, gap)
        for im, f in zip(images, feats)
    ]
    return vstack(rows, gap=gap)
