"""Restore images of any size: whole, or cut into overlapping blended tiles.

The transport map works on sizes that are multiples of 8 (its U-Net downsamples three times; the
map declares this as ``size_multiple``), and full-resolution photos can exceed memory.
:func:`restore_image` pads with reflection to the network's declared multiple, and optionally runs
it on overlapping tiles whose outputs are blended with a smooth window, so that a network whose
receptive field fits inside the overlap gives the same result tiled or not. With ``ensemble``
it averages the network's outputs over flips and 90-degree rotations of each input (geometric
self-ensemble, :func:`self_ensemble`): a little more quality for that many times the work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from rcot_lightning.errors import ArgumentError
from rcot_lightning.shapes import check_images, pad_to_multiple, size_multiple

__all__ = ["ENSEMBLE_SIZES", "restore_image", "self_ensemble", "tile_starts"]

ProgressWrapper = Callable[[Sequence[Any]], Iterable[Any]]

# Weight of a tile's outermost pixels (near a neighbouring tile). Not zero, so every pixel has a
# positive total weight; small enough that a tile's border artefacts do not show.
_EDGE_WEIGHT = 1e-8


#: The dihedral transforms as (quarter turns, mirrored), in the order an ensemble of n uses the
#: first n: the mirror first, then the half turn (both keep the image's orientation), then the
#: quarter turns.
_DIHEDRAL = (
    (0, False),
    (0, True),
    (2, False),
    (2, True),
    (1, False),
    (1, True),
    (3, False),
    (3, True),
)
#: Sizes :func:`self_ensemble` accepts (1: the plain network).
ENSEMBLE_SIZES = (1, 2, 4, 8)


def _transform(x: Tensor, turns: int, mirrored: bool) -> Tensor:
    x = x.flip(-1) if mirrored else x
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def _untransform(x: Tensor, turns: int, mirrored: bool) -> Tensor:
    x = torch.rot90(x, -turns, dims=(-2, -1)) if turns else x
    return x.flip(-1) if mirrored else x


def self_ensemble(fn: Callable[[Tensor], Tensor], size: int = 8) -> Callable[[Tensor], Tensor]:
    r"""``fn`` averaged over ``size`` flips and 90-degree rotations of its input.

    .. math:: \bar f(y) = \frac{1}{n} \sum_{k<n} g_k^{-1}\big(f(g_k(y))\big)

    with :math:`g_k` the first ``n`` of: identity, mirror, half turn, mirrored half turn, the
    quarter turns and their mirrors. Each output is mapped back before averaging, in float32.
    A quarter turn swaps height and width, so ``fn`` must accept both orientations (the
    library's maps do; tiles are square anyway). :func:`restore_image` reads the size multiple
    from ``fn`` before wrapping it; pass ``multiple`` when calling the wrapper yourself.

    Args:
        fn: the network, ``(N, C, h, w) -> (N, C', h, w)``.
        size: how many transforms, one of :data:`ENSEMBLE_SIZES` (1 returns ``fn`` itself).

    Returns:
        The averaged network, same signature as ``fn``; it costs ``size`` calls of ``fn``.

    Example:
        >>> y = torch.rand(1, 3, 8, 8)
        >>> shift_right = lambda t: torch.roll(t, 1, dims=-1)  # not rotation-equivariant
        >>> torch.allclose(self_ensemble(lambda t: t * 2)(y), y * 2)
        True
        >>> torch.allclose(self_ensemble(shift_right, 2)(y), shift_right(y))
        False
    """
    if isinstance(size, bool) or size not in ENSEMBLE_SIZES:
        raise ArgumentError("ensemble", f"must be one of {ENSEMBLE_SIZES}, got {size!r}")
    if size == 1:
        return fn

    def averaged(y: Tensor) -> Tensor:
        outputs = [
            _untransform(fn(_transform(y, turns, mirrored)), turns, mirrored)
            for turns, mirrored in _DIHEDRAL[:size]
        ]
        return torch.stack([o.float() for o in outputs]).mean(0).to(outputs[0].dtype)

    return averaged


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with >= ``overlap``.

    Tiles step by ``tile - overlap``; the last one is aligned to the end, so it may overlap its
    neighbour by more.

    Args:
        size: length to cover.
        tile: tile length, ``overlap < tile``.
        overlap: minimum overlap of neighbouring tiles.

    Returns:
        Sorted start offsets; ``[0]`` when ``size <= tile``.

    Example:
        >>> tile_starts(72, 32, 16)
        [0, 16, 32, 40]
    """
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(length: int, overlap: int, taper_start: bool, taper_end: bool) -> Tensor:
    """1-D window: 1 inside, falling to ``_EDGE_WEIGHT`` across ``overlap`` at tapered ends.

    The outer quarter of the overlap gets only the floor weight (the neighbouring tile sees those
    pixels from the inside, where its receptive field is complete); the middle half is a raised
    cosine, so the two neighbours' weights sum to 1 across an exact overlap.
    """
    w = torch.ones(length, dtype=torch.float64)
    if overlap <= 0:
        return w
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    t = (torch.arange(ramp_len, dtype=torch.float64) + 0.5) / ramp_len
    rise = torch.cat([torch.zeros(margin, dtype=torch.float64), 0.5 - 0.5 * torch.cos(math.pi * t)])
    rise = rise.clamp_min(_EDGE_WEIGHT)
    n = min(rise.numel(), length)
    if taper_start:
        w[:n] = torch.minimum(w[:n], rise[:n])
    if taper_end:
        w[length - n :] = torch.minimum(w[length - n :], rise[:n].flip(0))
    return w


def restore_image(
    fn: Callable[[Tensor], Tensor],
    y: Tensor,
    tile: int | None = None,
    overlap: int = 32,
    multiple: int | None = None,
    tile_batch_size: int = 4,
    progress: ProgressWrapper | None = None,
    ensemble: int = 1,
) -> Tensor:
    r"""Apply a restoration network to images of any size, whole or in overlapping tiles.

    Without ``tile`` (or when the image fits in one tile) the image is padded to a multiple of
    ``multiple`` (:func:`rcot_lightning.shapes.pad_to_multiple`), restored and cropped back.
    With ``tile`` the padded image is cut into ``tile x tile`` crops overlapping by at least
    ``overlap`` pixels; each output pixel is the weighted mean over the tiles that cover it,

    .. math::
        \hat x(p) = \frac{\sum_t w_t(p)\, f(y_t)(p)}{\sum_t w_t(p)},

    with :math:`w_t` a strictly positive window that is 1 in the tile's interior and tapers
    smoothly (raised cosine) to ~0 across the overlap on sides that face another tile. A network
    whose receptive-field radius is below ``overlap / 4`` then gives the untiled result.

    Run it under ``torch.inference_mode()`` (the caller decides; gradients through tiles are
    allowed).

    Args:
        fn: the network, :math:`(N, C, h, w) \to (N, C', h, w)` for h, w multiples of
            ``multiple``.
        y: degraded images, shape :math:`(B, C, H, W)`, any H, W.
        tile: tile side, a multiple of ``multiple`` and larger than ``overlap``; None = whole.
        overlap: minimum overlap between neighbouring tiles, in pixels.
        multiple: the size granularity ``fn`` needs; None (the default) takes the multiple ``fn``
            declares (``size_multiple``, 8 for the library's maps; 1 for a plain callable).
        tile_batch_size: tile positions per call of ``fn`` (each call sees ``B *`` that many).
        progress: wraps the sequence of tile batches for display, e.g. ``rich.progress.track``
            or ``tqdm.tqdm``; called once with a sized sequence and must yield its items.
        ensemble: geometric self-ensemble of each tile (:func:`self_ensemble`): 1 (off), 2, 4
            or 8 flips/rotations averaged, at that many times the cost.

    Returns:
        Restored images, shape :math:`(B, C', H, W)`, in ``fn``'s output dtype.

    Example:
        >>> y = torch.rand(1, 3, 67, 93)
        >>> out = restore_image(lambda t: t * 2, y, tile=32, overlap=16)
        >>> out.shape, torch.allclose(out, y * 2)
        (torch.Size([1, 3, 67, 93]), True)
    """
    check_images(y, "y")
    if multiple is None:
        multiple = size_multiple(fn)
    fn = self_ensemble(fn, ensemble)
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if tile is not None:
        if tile <= 0 or tile % multiple:
            raise ValueError(f"tile must be a positive multiple of multiple={multiple}, got {tile}")
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, tile={tile}), got {overlap}")
        if tile_batch_size < 1:
            raise ValueError(f"tile_batch_size must be >= 1, got {tile_batch_size}")

    padded, (h, w) = pad_to_multiple(y, multiple)
    hp, wp = padded.shape[-2:]
    if tile is None or (hp <= tile and wp <= tile):
        return fn(padded)[..., :h, :w]

    th, tw = min(tile, hp), min(tile, wp)
    rows, cols = tile_starts(hp, th, overlap), tile_starts(wp, tw, overlap)
    positions = [(i, j) for i in rows for j in cols]
    batches = [
        positions[k : k + tile_batch_size] for k in range(0, len(positions), tile_batch_size)
    ]

    b = y.shape[0]
    out: Tensor | None = None
    out_dtype = y.dtype
    weight_sum = torch.zeros(1, 1, hp, wp, dtype=torch.float32, device=y.device)
    for batch in progress(batches) if progress is not None else batches:
        crops = torch.cat([padded[..., i : i + th, j : j + tw] for i, j in batch])
        restored = fn(crops)
        if restored.shape[0] != crops.shape[0] or restored.shape[-2:] != crops.shape[-2:]:
            raise ValueError(
                f"fn must keep batch and spatial size: got {tuple(restored.shape)} "
                f"for tiles of shape {tuple(crops.shape)}"
            )
        out_dtype = restored.dtype
        if out is None:
            out = torch.zeros(b, restored.shape[1], hp, wp, dtype=torch.float32, device=y.device)
        for k, (i, j) in enumerate(batch):
            wh = _ramp(th, overlap, taper_start=i > 0, taper_end=i + th < hp)
            ww = _ramp(tw, overlap, taper_start=j > 0, taper_end=j + tw < wp)
            window = torch.outer(wh, ww).to(device=y.device, dtype=torch.float32)
            out[..., i : i + th, j : j + tw] += restored[k * b : (k + 1) * b].float() * window
            weight_sum[..., i : i + th, j : j + tw] += window
    assert out is not None  # at least one tile always exists
    return (out / weight_sum)[..., :h, :w].to(out_dtype)
