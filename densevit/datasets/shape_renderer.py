"""Vectorised numpy rendering of the SyntheticShapes images.

Every shape is an inside-test on normalised coordinates ``(u, v)`` of a small
pixel grid around the shape (its bounding box, not the whole image), so an
image costs a few dozen numpy calls whatever the number of pixels. A shape's
coordinates are rotated and squashed before the test, and every shape fits in
the unit disc, so the bounding box of a shape of radius ``r`` is the square of
side ``2r`` around its centre.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import cv2
import numpy as np

SHAPE_NAMES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star',
                                'cross', 'ring', 'crescent', 'heart')

# Star geometry: outer radius 1, inner radius _STAR_INNER, 5 points. An
# inside-test in the fundamental wedge [0, pi/5] against the edge A -> B.
_STAR_INNER = 0.42
_STAR_WEDGE = 2 * np.pi / 5
_STAR_BX = _STAR_INNER * np.cos(np.pi / 5)
_STAR_BY = _STAR_INNER * np.sin(np.pi / 5)
# Equilateral triangle with circumradius 0.95 (inradius half of it); unit
# normals of its three edges.
_TRI_INRADIUS = 0.475
_TRI_NORMALS = np.array([[np.cos(a), np.sin(a)]
                         for a in np.deg2rad([90., 210., 330.])],
                        dtype=np.float32)


def shape_mask(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return the boolean inside-mask of shape ``kind`` at coordinates (u, v).

    Args:
        kind (int): Index into :data:`SHAPE_NAMES`.
        u (np.ndarray): Horizontal normalised coordinates (shape fits in the
            unit disc).
        v (np.ndarray): Vertical normalised coordinates, same shape as ``u``.

    Returns:
        np.ndarray: Boolean array, same shape as ``u``.
    """
    name = SHAPE_NAMES[kind]
    if name == 'circle':
        return u * u + v * v <= 0.9**2
    if name == 'square':
        return np.maximum(np.abs(u), np.abs(v)) <= 0.68
    if name == 'triangle':
        inside = np.ones(u.shape, dtype=bool)
        for nx, ny in _TRI_NORMALS:
            inside &= u * nx + v * ny <= _TRI_INRADIUS
        return inside
    if name == 'star':
        rho = np.sqrt(u * u + v * v)
        t = np.mod(np.arctan2(v, u), _STAR_WEDGE)
        t = np.minimum(t, _STAR_WEDGE - t)
        px, py = rho * np.cos(t), rho * np.sin(t)
        # Same side of edge A=(1, 0) -> B as the origin (cross product > 0).
        return (_STAR_BX - 1.0) * py - _STAR_BY * (px - 1.0) >= 0
    if name == 'cross':
        au, av = np.abs(u), np.abs(v)
        return (((au <= 0.28) & (av <= 0.92)) | ((av <= 0.28) & (au <= 0.92)))
    if name == 'ring':
        r2 = u * u + v * v
        return (r2 >= 0.5**2) & (r2 <= 0.92**2)
    if name == 'crescent':
        return ((u * u + v * v <= 0.92**2) & ((u - 0.45)**2 + v * v > 0.72**2))
    if name == 'heart':
        # (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, y pointing up, scaled into the
        # unit disc.
        x = 1.25 * u
        y = -1.25 * v + 0.12
        return (x * x + y * y - 1)**3 - x * x * y**3 <= 0
    raise ValueError(f'Unknown shape kind {kind}; valid kinds are '
                     f'0..{len(SHAPE_NAMES) - 1} ({SHAPE_NAMES}).')


@dataclass
class ShapeSpec:
    """One shape of an image: class, centre, radius (px), pose, colour."""
    kind: int
    cx: float
    cy: float
    radius: float
    angle: float
    squash: float
    color: np.ndarray


@dataclass
class ImagePlan:
    """All random parameters of one image; ``shapes[-1]`` is the label."""
    label: int
    shapes: List[ShapeSpec] = field(default_factory=list)
    bg_colors: Optional[np.ndarray] = None
    bg_angle: float = 0.
    bg_texture: int = 0
    texture_params: Optional[np.ndarray] = None
    noise_std: float = 0.


def _contrasting_color(rng: np.random.Generator,
                       ref: np.ndarray) -> np.ndarray:
    """Draw a colour far from ``ref``: the farthest of 4 random candidates."""
    cands = rng.uniform(0, 255, size=(4, 3)).astype(np.float32)
    return cands[np.argmax(((cands - ref)**2).sum(1))]


def draw_plan(rng: np.random.Generator, img_size: int, num_classes: int,
              max_shapes: int) -> ImagePlan:
    """Draw every random parameter of one image (cheap: no pixels).

    The main shape (the label) is drawn first so the label is the first draw
    of the stream; smaller shapes are 35-60% of its radius, so "largest shape"
    is unambiguous. Shapes are returned in paint order: the main shape last,
    on top, so it is always fully visible.
    """
    label = int(rng.integers(num_classes))
    num_shapes = int(rng.integers(1, max_shapes + 1))
    bg_colors = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    bg_mean = bg_colors.mean(0)
    plan = ImagePlan(
        label=label,
        bg_colors=bg_colors,
        bg_angle=float(rng.uniform(0, 2 * np.pi)),
        bg_texture=int(rng.integers(3)),
        # stripes: cycles, angle, amplitude, phase; blobs: amplitude, grid
        texture_params=rng.uniform(0, 1, size=4),
        noise_std=float(rng.uniform(2., 10.)))

    size = float(img_size)
    main_r = size * rng.uniform(0.22, 0.42)
    margin = 0.8 * main_r
    main = ShapeSpec(
        kind=label,
        cx=float(rng.uniform(margin, size - margin)),
        cy=float(rng.uniform(margin, size - margin)),
        radius=float(main_r),
        angle=float(rng.uniform(0, 2 * np.pi)),
        squash=float(rng.uniform(0.75, 1.0)),
        color=_contrasting_color(rng, bg_mean))
    for _ in range(num_shapes - 1):
        plan.shapes.append(
            ShapeSpec(
                kind=int(rng.integers(num_classes)),
                cx=float(rng.uniform(0, size)),
                cy=float(rng.uniform(0, size)),
                radius=float(main_r * rng.uniform(0.35, 0.6)),
                angle=float(rng.uniform(0, 2 * np.pi)),
                squash=float(rng.uniform(0.75, 1.0)),
                color=_contrasting_color(rng, bg_mean)))
    plan.shapes.append(main)
    return plan


def _render_background(rng: np.random.Generator, plan: ImagePlan,
                       img_size: int) -> List[np.ndarray]:
    """Gradient between two colours plus stripes or low-frequency blobs.

    Works on one contiguous (H, W) plane per channel, because broadcasting
    an (H, W, 1) array against 3 interleaved channels makes numpy walk
    strided memory.
    """
    coords = (np.arange(img_size, dtype=np.float32) + 0.5) / img_size - 0.5
    ca, sa = np.cos(plan.bg_angle), np.sin(plan.bg_angle)
    # Position along the gradient direction, in [0, 1].
    t = ((coords * (ca / np.sqrt(2)))[None, :] +
         (coords * (sa / np.sqrt(2)) + 0.5)[:, None])
    p = plan.texture_params
    texture = None
    if plan.bg_texture == 1:  # sinusoidal stripes, same on all channels
        cycles = 2 + 6 * p[0]
        ang = np.pi * p[1]
        px = coords * np.cos(ang)
        py = coords * np.sin(ang)
        phase = px[None, :] + py[:, None]
        texture = np.sin(phase * (2 * np.pi * cycles) + 2 * np.pi * p[3])
        texture *= 15 + 35 * p[2]
    elif plan.bg_texture == 2:  # smooth colour blobs, one per channel
        grid = 3 + int(5 * p[0])
        coarse = rng.uniform(-1, 1, size=(grid, grid, 3)).astype(np.float32)
        coarse *= 20 + 40 * p[2]
        texture = cv2.split(
            cv2.resize(
                coarse, (img_size, img_size), interpolation=cv2.INTER_LINEAR))
    c0, c1 = plan.bg_colors
    planes = []
    for ch in range(3):
        plane = t * (c1[ch] - c0[ch])
        plane += c0[ch]
        if texture is not None:
            plane += texture[ch] if isinstance(texture, tuple) else texture
        planes.append(plane)
    return planes


def render_plan(rng: np.random.Generator, plan: ImagePlan,
                img_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Render an :class:`ImagePlan` into an image and a class map.

    Args:
        rng (np.random.Generator): The stream :func:`draw_plan` used, for the
            pixel noise.
        plan (ImagePlan): The parameters of the image.
        img_size (int): Side of the square image.

    Returns:
        tuple: ``img`` (img_size, img_size, 3) uint8 and ``seg`` (img_size,
        img_size) uint8 with 0 for background and ``kind + 1`` for shapes.
    """
    planes = _render_background(rng, plan, img_size)
    seg = np.zeros((img_size, img_size), dtype=np.uint8)
    for s in plan.shapes:
        x0 = max(0, int(np.floor(s.cx - s.radius)))
        x1 = min(img_size, int(np.ceil(s.cx + s.radius)) + 1)
        y0 = max(0, int(np.floor(s.cy - s.radius)))
        y1 = min(img_size, int(np.ceil(s.cy + s.radius)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        # Pixel centres relative to the shape centre, in radius units.
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - s.cx) / s.radius
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - s.cy) / s.radius
        ca, sa = np.float32(np.cos(s.angle)), np.float32(np.sin(s.angle))
        u = ca * dx[None, :] + sa * dy[:, None]
        v = (ca * dy[:, None] - sa * dx[None, :]) / np.float32(s.squash)
        inside = shape_mask(s.kind, u, v)
        # A soft shading along u gives shapes some texture of their own.
        shade = 0.85 + 0.15 * u[inside]
        for ch in range(3):
            planes[ch][y0:y1, x0:x1][inside] = shade * s.color[ch]
        seg[y0:y1, x0:x1][inside] = s.kind + 1
    # Luminance noise: one plane shared by the channels (cheaper than
    # colour noise and looks like sensor grain).
    noise = rng.standard_normal((img_size, img_size), dtype=np.float32)
    noise *= plan.noise_std
    for plane in planes:
        plane += noise
    img = cv2.merge(planes)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8), seg
