"""Dead-leaves images: a procedural, scale-invariant stand-in for natural photos.

The dead-leaves model drops opaque shapes one after another onto a plane; the first shapes hide
the later ones. With radii drawn from a power law ``p(r) ~ r^-3`` the picture has the occlusion
edges, flat regions and ``1/f`` spectrum of natural images at every scale, which makes it a known
synthetic training prior for denoisers (Achddou et al., "Synthetic images as a regularity prior
for image restoration neural networks", 2021). Flat disks alone lack texture, so each leaf here
gets one of: a flat colour, a linear gradient, a sinusoidal grating, or a patch of ``1/f``
noise; colours are drawn with photo-like (low) saturation.

Everything is drawn from a NumPy generator seeded by the caller, so an image is a pure function
of ``(seed, size)``: every process and every run sees the same pictures without storing them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from rcot_lightning.data.sources import ImageList
from rcot_lightning.errors import RCOTError

__all__ = ["DeadLeavesImages", "dead_leaves"]

# Supersampling factor: shapes are drawn at this multiple of the output size and box-filtered
# down, so their edges are anti-aliased like a photo's instead of staircased.
_SUPERSAMPLE = 2


def _colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour in [0, 1] with a photo-like spread: mostly grey-ish, sometimes vivid."""
    grey = rng.uniform(0.0, 1.0)
    chroma = rng.normal(0.0, rng.choice([0.02, 0.06, 0.15]), size=3)
    return np.clip(grey + chroma - chroma.mean(), 0.0, 1.0)


def _pink_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ``1/f`` noise field of ``shape``, zero mean, unit peak-to-peak scale."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(h, w))
    return field / (np.ptp(field) + 1e-12)


def _texture(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """The RGB content of one leaf over its bounding box, shape ``(h, w, 3)``."""
    first = _colour(rng)
    kind = rng.choice(4, p=[0.4, 0.2, 0.2, 0.2])
    if kind == 0:  # flat
        return np.broadcast_to(first, (*yy.shape, 3))
    second = _colour(rng)
    angle = rng.uniform(0.0, np.pi)
    along = yy * np.cos(angle) + xx * np.sin(angle)
    if kind == 1:  # linear gradient across the box
        span = np.ptp(along) + 1e-6
        t = (along - along.min()) / span
    elif kind == 2:  # grating, a period of 3 to 40 output pixels
        period = rng.uniform(3.0, 40.0) * _SUPERSAMPLE
        t = 0.5 + 0.5 * np.sin(2 * np.pi * along / period + rng.uniform(0, 2 * np.pi))
    else:  # 1/f noise
        t = np.clip(0.5 + rng.uniform(0.5, 1.5) * noise, 0.0, 1.0)
    return first + t[..., None] * (second - first)


def dead_leaves(
    size: int | tuple[int, int],
    seed: int,
    *,
    radius_min: float = 3.0,
    radius_max: float = 200.0,
    max_leaves: int = 6000,
) -> Tensor:
    """One textured dead-leaves image, a pure function of its arguments.

    Args:
        size: ``side`` or ``(height, width)`` in pixels.
        seed: seeds every random choice.
        radius_min, radius_max: radius range of the leaves in output pixels (power law
            ``r^-3`` between them).
        max_leaves: leaves drawn at most; pixels still uncovered get the background colour.

    Returns:
        ``(3, H, W)`` float32 in [0, 1].

    Example:
        >>> a = dead_leaves(32, seed=1)
        >>> a.shape, bool(a.min() >= 0) and bool(a.max() <= 1)
        (torch.Size([3, 32, 32]), True)
        >>> bool((a == dead_leaves(32, seed=1)).all()), bool((a == dead_leaves(32, seed=2)).all())
        (True, False)
    """
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1 or not 0 < radius_min <= radius_max or max_leaves < 1:
        raise RCOTError(
            f"dead_leaves: need a positive size, 0 < radius_min <= radius_max and max_leaves "
            f">= 1, got size={size!r}, radius_min={radius_min}, radius_max={radius_max}, "
            f"max_leaves={max_leaves}"
        )
    rng = np.random.default_rng(seed)
    s = _SUPERSAMPLE
    big_h, big_w = h * s, w * s
    canvas = np.zeros((big_h, big_w, 3))
    free = np.ones((big_h, big_w), dtype=bool)
    noise = _pink_noise((big_h, big_w), rng)
    # Inverse-CDF sampling of p(r) ~ r^-3 on [r_min, r_max]: 1/r^2 is uniform.
    lo, hi = 1.0 / radius_max**2, 1.0 / radius_min**2
    for _ in range(max_leaves):
        radius = s / np.sqrt(rng.uniform(lo, hi))
        cy, cx = rng.uniform(-radius, big_h + radius), rng.uniform(-radius, big_w + radius)
        y0, y1 = max(int(cy - radius), 0), min(int(cy + radius) + 1, big_h)
        x0, x1 = max(int(cx - radius), 0), min(int(cx + radius) + 1, big_w)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        if rng.uniform() < 0.7:  # a disk
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        else:  # an axis-free rectangle: occlusion edges at every orientation
            angle = rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
            v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            inside = (np.abs(u) <= radius) & (np.abs(v) <= radius * rng.uniform(0.2, 1.0))
        paint = inside & free[y0:y1, x0:x1]
        if not paint.any():
            continue
        content = _texture(rng, yy, xx, noise[y0:y1, x0:x1])
        canvas[y0:y1, x0:x1][paint] = content[paint]
        free[y0:y1, x0:x1] &= ~inside
        if not free.any():
            break
    canvas[free] = _colour(rng)
    # Box-filter the supersampled canvas down to the output size.
    small = canvas.reshape(h, s, w, s, 3).mean(axis=(1, 3))
    return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))).float().clamp(0, 1)


class DeadLeavesImages(ImageList):
    """``count`` dead-leaves images of ``size x size``, drawn on first use and kept.

    Image ``i`` is :func:`dead_leaves` with a seed derived from ``(seed, i)``, so the list is
    identical in every process; names are ``dead_leaves_<seed>_<i>``.

    Args:
        count: number of images.
        size: side of the square images.
        seed: base seed.

    Example:
        >>> images = DeadLeavesImages(count=2, size=24, seed=0)
        >>> images.names, images.size(1), tuple(images.load(1).shape)
        (['dead_leaves_0_0', 'dead_leaves_0_1'], (24, 24), (3, 24, 24))
    """

    def __init__(self, count: int, size: int, seed: int = 0) -> None:
        if count < 1 or size < 1:
            raise RCOTError(
                f"dead-leaves images need count >= 1 and size >= 1, got count={count}, size={size}"
            )
        self.count, self.side, self.seed = count, size, seed
        self.names = [f"dead_leaves_{seed}_{i}" for i in range(count)]
        self.location = f"generated dead-leaves images (seed {seed})"

    def size(self, index: int) -> tuple[int, int]:
        return self.side, self.side

    def load(self, index: int) -> Tensor:
        return _cached_image(self.side, self.seed, index)

    def describe(self, index: int) -> str:
        return f"{self.names[index]!r} ({self.location})"


@lru_cache(maxsize=512)
def _cached_image(size: int, seed: int, index: int) -> Tensor:
    # Seeds of different images must not collide for nearby (seed, index) pairs.
    return dead_leaves(size, seed=int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
