"""How an image is restored: the settings, the run, and the tiled, ensembled algorithm.

One name per job, from the top:

* :class:`InferenceSettings`: device, precision, tile, tile overlap and self-ensemble, checked
  once when built (each field is named as its key in the ``restore``, ``demo`` and ``eval``
  configs, so an error names the key); :meth:`InferenceSettings.restore` runs a map on images
  with them (on the device, under ``torch.inference_mode()`` and the precision's autocast).
  ``rcot-restore`` and ``rcot-demo`` build one from their config and call it for every image.
* :func:`restore_image`: the algorithm, on tensors and any callable, in the caller's device and
  modes. The transport map works on sizes that are multiples of 8 (its U-Net downsamples three
  times; the map declares this as ``size_multiple``) and full-resolution photos can exceed
  memory: it pads with reflection to the network's declared multiple and optionally runs it on
  overlapping tiles whose outputs are blended with a smooth window, so that a network whose
  receptive field fits inside the overlap gives the same result tiled or not. With ``ensemble``
  it averages the network's outputs over flips and 90-degree rotations of each input (geometric
  self-ensemble, :func:`self_ensemble`): a little more quality for that many times the work.
* :meth:`rcot_lightning.RCOTModule.restore` runs :func:`restore_image` with the module's map
  inside Lightning's loops (the Trainer owns device and precision there);
  ``rcot_lightning.cli.restore.restore_files`` is the command: config to settings, files in,
  files out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rcot_lightning import values
from rcot_lightning.errors import ArgumentError
from rcot_lightning.hardware import bf16_fallback_note, native_bf16
from rcot_lightning.shapes import check_images, pad_to_multiple, size_multiple

__all__ = [
    "ENSEMBLE_SIZES",
    "TILE_MULTIPLE",
    "InferenceSettings",
    "auto_precision",
    "bicubic_upscale",
    "ensemble_size",
    "resolve_device",
    "restore_image",
    "run_precision",
    "self_ensemble",
    "tile_starts",
    "upscale_factor",
]

log = logging.getLogger(__name__)

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

#: The size multiple of every map of the library (``nets.restormer.PAD_MULTIPLE``): a settings
#: object's tile must be a multiple of it; :func:`restore_image` checks a map's own multiple.
TILE_MULTIPLE = 8

#: The spellings each precision may be given in (the Trainer's names are taken too).
_PRECISIONS = {"32": ("32", "32-true", "fp32"), "bf16": ("bf16", "bf16-mixed")}


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class InferenceSettings:
    """How to run a map on images, checked once when built.

    Each field is named as its key in the command configs (``restore.yaml``, ``demo.yaml``;
    ``eval.yaml`` has ``tile``), so a bad value names the key the user typed:
    ``tile_overlap must be an integer >= 0, got 'abc'``
    (an :class:`~rcot_lightning.errors.ArgumentError`). Values are normalised when built: a
    device name becomes a :class:`torch.device` (``auto``: CUDA when there is one), a tile given
    as ``64.0`` or ``"64"`` the integer 64, ``bf16-mixed`` ``bf16``; ``bf16`` on a CPU without
    native bf16 becomes ``32`` with a one-line note (:func:`run_precision`).
    :func:`dataclasses.replace` (or :meth:`replace`) checks the new values the same way.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ... or a :class:`torch.device`; a device
            this machine lacks is refused.
        precision: ``32``, ``bf16`` (bfloat16 autocast) or ``auto`` (bf16 where it is native
            and faster: :func:`auto_precision`).
        tile: tile side, a multiple of :data:`TILE_MULTIPLE` larger than ``tile_overlap``; None
            restores each image whole.
        tile_overlap: minimum overlap of neighbouring tiles, in pixels.
        ensemble: geometric self-ensemble size, one of :data:`ENSEMBLE_SIZES` (1: off).

    Raises:
        ArgumentError: a bad value, naming its key.

    Example:
        >>> settings = InferenceSettings(device="cpu", tile=64.0, tile_overlap=16)
        >>> settings.device, settings.tile, settings.precision
        (device(type='cpu'), 64, '32')
        >>> InferenceSettings(device="cpu", tile=32, tile_overlap=32)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: tile must be larger than tile_overlap=32, got 32
    """

    device: torch.device | str = "auto"
    precision: str = "32"
    tile: int | None = None
    tile_overlap: int = 32
    ensemble: int = 1

    def __post_init__(self) -> None:
        device = resolve_device(self.device)
        tile, overlap = _tiling(self.tile, self.tile_overlap, TILE_MULTIPLE, "tile_overlap")
        checked = {
            "device": device,
            "precision": run_precision(self.precision, device),
            "tile": tile,
            "tile_overlap": overlap,
            "ensemble": ensemble_size(self.ensemble),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: normalised once, here

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> InferenceSettings:
        """The settings a command's config gives: its keys ``device``, ``precision``, ``tile``,
        ``tile_overlap`` and ``ensemble`` (a key it lacks keeps the default).

        Raises:
            ArgumentError: a bad value, naming its key.

        Example:
            >>> InferenceSettings.from_config({"device": "cpu", "tile": None, "ensemble": 2})
            InferenceSettings(device=device(type='cpu'), precision='32', tile=None, \
tile_overlap=32, ensemble=2)
        """
        return cls(**{f.name: cfg[f.name] for f in dataclasses.fields(cls) if f.name in cfg})

    def replace(self, **changes: Any) -> InferenceSettings:
        """These settings with ``changes`` (checked as when built), e.g. a request's tile."""
        return dataclasses.replace(self, **changes)

    def restore(
        self,
        net: Callable[[Tensor], Tensor],
        images: Tensor,
        *,
        progress: ProgressWrapper | None = None,
        before_each_call: Callable[[], None] | None = None,
    ) -> Tensor:
        r"""Restore ``images`` with ``net`` as these settings say.

        The images are moved to :attr:`device` and restored by :func:`restore_image` (tiles,
        overlap, self-ensemble of these settings; the size multiple ``net`` declares) under
        ``torch.inference_mode()`` and, for ``bf16``, bfloat16 autocast.

        Args:
            net: the map, already on :attr:`device`, :math:`(N, C, h, w) \to (N, C', h, w)`.
            images: degraded images, shape :math:`(B, C, H, W)`, any H, W, any device.
            progress: wraps the tile batches for display (:func:`restore_image`'s).
            before_each_call: called before each call of ``net`` (each tile, each pass of the
                self-ensemble); it raises to stop the run there. Tiles then go one per call,
                so that the run stops soon after it is asked to.

        Returns:
            The restored images :math:`(B, C', H, W)`, float32 on :attr:`device`, not clamped
            (a caller that writes them checks that they are finite first).

        Example:
            >>> settings = InferenceSettings(device="cpu", tile=32, tile_overlap=16)
            >>> y = torch.rand(1, 3, 40, 50)
            >>> torch.allclose(settings.restore(lambda t: t * 2, y), y * 2)
            True
        """
        device = torch.device(self.device)
        fn = net
        if before_each_call is not None:
            ask = before_each_call

            def fn(batch: Tensor) -> Tensor:
                ask()
                return net(batch)

        with torch.inference_mode(), _autocast(self.precision, device):
            restored = restore_image(
                fn,
                images.to(device),
                tile=self.tile,
                overlap=self.tile_overlap,
                multiple=size_multiple(net),
                tile_batch_size=1 if before_each_call is not None else 4,
                progress=progress,
                ensemble=self.ensemble,
            )
        return restored.float()


def resolve_device(device: torch.device | str, name: str = "device") -> torch.device:
    """``device`` as a :class:`torch.device` this machine has; ``auto``: CUDA when there is one.

    Refused before a checkpoint is mapped onto a device that is not there (that read as
    "checkpoint unreadable").

    Args:
        device: ``auto``, a device name (``cpu``, ``cuda:1``, ``mps``) or a device.
        name: the argument (config key) the message names.

    Raises:
        ArgumentError: not a device, or one this machine lacks.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("toaster")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: device: 'toaster' is not a device (auto, cpu, \
cuda, cuda:1)
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device if isinstance(device, torch.device) else str(device))
    except RuntimeError:
        problem = f": {str(device)!r} is not a device (auto, cpu, cuda, cuda:1)"
        raise ArgumentError(name, problem) from None
    kind = resolved.type
    if kind == "cpu":
        return resolved
    if kind == "cuda":
        available = torch.cuda.is_available()
    elif kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        available = mps is not None and mps.is_available()
    else:
        backend = getattr(torch, kind, None)
        is_available = getattr(backend, "is_available", None)
        available = bool(is_available()) if callable(is_available) else False
    if not available:
        raise ArgumentError(name, f"={resolved}: this machine has no {kind} device; use {name}=cpu")
    return resolved


def run_precision(precision: Any, device: torch.device | str, key: str = "precision") -> str:
    """The precision to run, ``32`` or ``bf16``: ``bf16`` on a CPU without native bf16 becomes
    ``32`` with a one-line note (emulated bf16 measured 12.6x slower there;
    :mod:`rcot_lightning.hardware`, ``RCOT_NATIVE_BF16=1`` forces it); ``auto`` is
    :func:`auto_precision`'s choice for the device.

    Args:
        precision: ``auto``, ``32`` (or ``32-true``, ``fp32``) or ``bf16`` (or ``bf16-mixed``).
        device: where it runs.
        key: the config key the message and the note name.

    Raises:
        ArgumentError: neither 32 nor bf16.

    Example:
        >>> run_precision("32-true", "cpu")
        '32'
    """
    text = str(precision)
    if text == "auto":
        return auto_precision(device)
    chosen = next((name for name, spellings in _PRECISIONS.items() if text in spellings), None)
    if chosen is None or isinstance(precision, bool):
        raise ArgumentError(key, f"must be auto, 32 or bf16, got {text!r}")
    if chosen == "bf16" and torch.device(device).type == "cpu":
        note = bf16_fallback_note(key)
        if note is not None:
            log.warning(note)
            return "32"
    return chosen


def auto_precision(device: torch.device | str) -> str:
    """What ``precision=auto`` runs: ``bf16`` where bf16 autocast is native and measured faster,
    else ``32``.

    On a CPU with native bf16 (AVX-512 BF16 or AMX) bf16 autocast restored a 12 MP photo in 41 s
    against 61 s in fp32 (``denoise-blind-fast``, 2 cores) and changed its held-out PSNR by at
    most 0.01 dB (docs/deploy.md); without native bf16 it is emulated and 12.6x slower, so fp32.
    On CUDA: bf16 where the card supports it. Elsewhere (MPS, ...): fp32.

    Example:
        >>> from rcot_lightning.hardware import native_bf16
        >>> auto_precision("cpu") == ("bf16" if native_bf16() else "32")
        True
    """
    kind = torch.device(device).type
    if kind == "cpu":
        return "bf16" if native_bf16() else "32"
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "32"
    return "32"


def ensemble_size(value: Any, name: str = "ensemble") -> int:
    """``value`` as a self-ensemble size, one of :data:`ENSEMBLE_SIZES`.

    Raises:
        ArgumentError: naming ``name`` and the accepted sizes.

    Example:
        >>> ensemble_size(8)
        8
        >>> ensemble_size(3)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: ensemble must be one of 1, 2, 4, 8 (1: off; 8 \
averages all flips and 90-degree rotations at 8x the time), got 3
    """
    if isinstance(value, bool) or value not in ENSEMBLE_SIZES:
        raise ArgumentError(
            name,
            f"must be one of {', '.join(map(str, ENSEMBLE_SIZES))} (1: off; 8 averages all flips "
            f"and 90-degree rotations at 8x the time), got {value!r}",
        )
    return int(value)


def upscale_factor(value: Any, name: str = "upscale") -> int:
    """``value`` as an integer up-scaling factor >= 1 (1: the image keeps its size).

    Raises:
        ArgumentError: naming ``name``.

    Example:
        >>> upscale_factor(4)
        4
        >>> upscale_factor(2.5)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: upscale must be an integer >= 1 (4 for a x4 \
super-resolution map; 1: none), got 2.5
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(
            name,
            f"must be an integer >= 1 (4 for a x4 super-resolution map; 1: none), got {value!r}",
        )
    return value


def bicubic_upscale(images: Tensor, scale: int) -> Tensor:
    """Bicubic up-sampling by ``scale``, clipped and rounded to 8 bits: what a super-resolution
    map of the library is given (``Downscale(upsample=True)``'s second half, saved as 8 bits).

    Example:
        >>> bicubic_upscale(torch.rand(1, 3, 5, 7), 4).shape
        torch.Size([1, 3, 20, 28])
    """
    if scale == 1:
        return images
    h, w = images.shape[-2:]
    up = torch.nn.functional.interpolate(
        images, size=(h * scale, w * scale), mode="bicubic", align_corners=False
    )
    return torch.round(up.clamp(0.0, 1.0) * 255.0) / 255.0


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on ``device`` for ``bf16``, nothing for ``32`` (a checked precision)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _tiling(tile: Any, overlap: Any, multiple: int, overlap_name: str) -> tuple[int | None, int]:
    """The one check of a tile and its overlap: a tile is a positive multiple of ``multiple``
    (or None) larger than the overlap, the overlap a whole number >= 0.

    Args:
        overlap_name: what the overlap is called where it came from (``overlap``, the argument
            of :func:`restore_image`; ``tile_overlap``, the config key).
    """
    overlap = values.at_least(overlap, overlap_name, 0)
    side = values.tile_size(tile, "tile", multiple)
    if side is not None and side <= overlap:
        raise ArgumentError("tile", f"must be larger than {overlap_name}={overlap}, got {side}")
    return side, overlap


# ----------------------------------------------------------------------------- algorithm
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
    size = ensemble_size(size)
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

    Raises:
        ArgumentError: a bad argument, named (``tile``, ``overlap``, ``ensemble``, ...).
        ArgumentError: ``fn`` changed the batch or spatial size of a tile.

    Example:
        >>> y = torch.rand(1, 3, 67, 93)
        >>> out = restore_image(lambda t: t * 2, y, tile=32, overlap=16)
        >>> out.shape, torch.allclose(out, y * 2)
        (torch.Size([1, 3, 67, 93]), True)
    """
    check_images(y, "y")
    multiple = values.positive_int(size_multiple(fn) if multiple is None else multiple, "multiple")
    tile, overlap = _tiling(tile, overlap, multiple, "overlap")
    tile_batch_size = values.positive_int(tile_batch_size, "tile_batch_size")
    fn = self_ensemble(fn, ensemble)

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
            raise ArgumentError(
                "fn",
                f"must keep batch and spatial size: got {tuple(restored.shape)} "
                f"for tiles of shape {tuple(crops.shape)}",
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
