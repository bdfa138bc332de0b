r"""Synthetic degradations :math:`y = D(x)` on batches of clean images.

Every degradation is a small module-like object, called as ``deg(clean, generator)``, mapping
clean images ``(B, C, H, W)`` in [0, 1] to degraded images of the same shape (only
:class:`Downscale` with ``upsample=False`` changes the size). All randomness is drawn from an
optional :class:`torch.Generator`, so the same generator state gives the same output: datasets
seed one per sample (training) or per image name (validation), which makes runs reproducible
across epochs, ranks and worker processes.

A parameter given as a number is fixed; given as a pair ``[low, high]`` it is drawn uniformly per
image (the "blind" setting). Invalid parameters raise :class:`~rcot_lightning.errors.ArgumentError`
naming the argument (``sigma must be >= 0, got -5``); the command-line entry points name the config
key instead (``data.degradation.sigma must be >= 0, got -5``).

Kornia supplies the operations it has (Gaussian and motion blur kernels, the JPEG codec, gamma,
bicubic resampling of the haze field); rain streaks, the haze scattering model, noise and the
compositions are ours.

Configs build a degradation by its class (``_target_: rcot_lightning.data.degradations.Haze``),
compositions included (:class:`OneOf` and :class:`Chain` take built degradations). Each class
also has a short name (``noise``, ``haze``, ...) for the places a user picks one from a list (the
demo page, ``benchmarks/loader_throughput.py``): :data:`DEGRADATIONS` collects the classes by that
name as they are defined, and :func:`build_degradation` looks a name up.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from kornia.enhance import adjust_gamma, jpeg_codec_differentiable
from kornia.filters import gaussian_blur2d, motion_blur
from kornia.geometry.transform import resize
from torch import Tensor

from rcot_lightning.contract import DegradationId
from rcot_lightning.errors import ArgumentError, RCOTError
from rcot_lightning.shapes import check_images

__all__ = [
    "DEGRADATIONS",
    "JPEG",
    "Chain",
    "Degradation",
    "Downscale",
    "GaussianBlur",
    "GaussianNoise",
    "Haze",
    "LowLight",
    "MotionBlur",
    "OneOf",
    "RainStreaks",
    "build_degradation",
]

ParamRange = tuple[float, float]

#: The degradation classes by short name (``Degradation.short_name``), filled as each class is
#: defined: the choice lists of user-facing tools. Configs name classes by ``_target_``.
DEGRADATIONS: dict[str, type[Degradation]] = {}


def _fmt(value: float) -> str:
    return f"{value:g}"


def _as_range(
    value: float | Sequence[float],
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    strict: bool = False,
) -> ParamRange:
    """Read a fixed value or a ``[low, high]`` pair and check it lies in ``[low, high]``."""
    if isinstance(value, bool):
        raise ArgumentError(name, f"must be a number or a pair [low, high], got {value!r}")
    if isinstance(value, (int, float)):
        lo = hi = float(value)
    else:
        try:
            items = [float(v) for v in value]
        except (TypeError, ValueError):
            raise ArgumentError(
                name, f"must be a number or a pair [low, high], got {value!r}"
            ) from None
        if len(items) != 2:
            raise ArgumentError(name, f"must be a number or a pair [low, high], got {value!r}")
        lo, hi = items
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ArgumentError(name, f"must be finite, got {value!r}")
    if lo > hi:
        raise ArgumentError(name, f"must be [low, high] with low <= high, got {value!r}")
    if low is not None and (lo < low or (strict and lo <= low)):
        op = ">" if strict else ">="
        raise ArgumentError(name, f"must be {op} {_fmt(low)}, got {_fmt(lo)}")
    if high is not None and hi > high:
        raise ArgumentError(name, f"must be <= {_fmt(high)}, got {_fmt(hi)}")
    return lo, hi


def _odd_kernel(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 3 or value % 2 == 0:
        raise ArgumentError(name, f"must be an odd integer >= 3, got {value!r}")
    return value


def _rand(shape: Sequence[int], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Uniform [0, 1) noise on ``like``'s device; drawn where the generator lives, then moved."""
    if generator is None:
        return torch.rand(tuple(shape), device=like.device)
    out = torch.rand(tuple(shape), generator=generator, device=generator.device)
    return out.to(like.device)


def _randn(shape: Sequence[int], generator: torch.Generator | None, like: Tensor) -> Tensor:
    if generator is None:
        return torch.randn(tuple(shape), device=like.device)
    out = torch.randn(tuple(shape), generator=generator, device=generator.device)
    return out.to(like.device)


def _sample(
    value: ParamRange,
    n: int,
    generator: torch.Generator | None,
    like: Tensor,
    power: float = 1.0,
) -> Tensor:
    """One value per image, ``(n,)`` float32: ``low + (high - low) * u ** power`` with ``u``
    uniform (``power`` 1: uniform; above 1: more draws near ``low``); a fixed value consumes no
    randomness."""
    lo, hi = value
    if lo == hi:
        return torch.full((n,), lo, device=like.device)
    return lo + (hi - lo) * _rand((n,), generator, like) ** power


def _quantize(x: Tensor) -> Tensor:
    """Round to the 256 levels of an 8-bit image, as saving to PNG or JPEG would."""
    return torch.round(x * 255.0) / 255.0


class Degradation:
    r"""Base class: a batched, seedable map from clean to degraded images.

    Called like a module (``deg(clean, generator)`` runs :meth:`forward`). Subclasses set
    :attr:`degradation_id` and implement :meth:`_degrade`; compositions override
    :meth:`_degrade_tagged` to tag rows individually. It is deliberately not an
    :class:`torch.nn.Module`: degradations have no weights, and ``nn.Module.apply(fn)``
    (recursive initialisation) would clash with :meth:`apply`.

    Args:
        clean: clean images :math:`(B, C, H, W)` in [0, 1].
        generator: source of all randomness; ``None`` uses torch's global generator.

    Returns:
        :meth:`forward`: the degraded images :math:`(B, C, H, W)`; :meth:`apply`: the degraded
        images and the degradation id of each row, :math:`(B,)` long.

    Example:
        >>> deg = GaussianNoise(sigma=15)
        >>> y, ids = deg.apply(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(0))
        >>> y.shape, ids.tolist()
        (torch.Size([2, 3, 16, 16]), [0, 0])
    """

    degradation_id: DegradationId = DegradationId.OTHER
    #: True when the output size differs from the input size (super-resolution kept small).
    changes_size: bool = False
    #: The name a user picks the class by (:data:`DEGRADATIONS`); ``None``: not listed.
    short_name: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("short_name")
        if name is not None:
            if name in DEGRADATIONS and DEGRADATIONS[name] is not cls:
                raise TypeError(
                    f"{cls.__name__}: short name {name!r} is taken by {DEGRADATIONS[name].__name__}"
                )
            DEGRADATIONS[name] = cls

    def forward(self, clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Degrade ``clean`` :math:`(B, C, H, W)`; see the class docstring."""
        check_images(clean, "clean", floating=True)
        return self._degrade(clean, generator)

    def __call__(self, clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.forward(clean, generator)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def apply(
        self, clean: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Degrade ``clean`` and return ``(degraded, ids)`` with one id per row."""
        check_images(clean, "clean", floating=True)
        return self._degrade_tagged(clean, generator)

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _degrade_tagged(
        self, clean: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        ids = torch.full(
            (clean.shape[0],), int(self.degradation_id), dtype=torch.long, device=clean.device
        )
        return self._degrade(clean, generator), ids


class GaussianNoise(Degradation):
    r"""Additive white Gaussian noise, optionally clipped and quantised like the reference.

    .. math:: y = Q\big(\mathrm{clip}(x + n)\big), \quad n \sim \mathcal{N}(0, (\sigma/255)^2)

    where :math:`Q` rounds to 8 bits: the RCOT reference synthesises noise on uint8 images.

    Args:
        sigma: standard deviation on the 0-255 scale (25 means 25/255), or ``[low, high]`` to
            draw one per image (blind denoising).
        clip: clip the result to [0, 1].
        quantize: round the result to 256 levels.

    Example:
        >>> noise = GaussianNoise(sigma=25, clip=False, quantize=False)
        >>> clean = torch.full((1, 3, 64, 64), 0.5)
        >>> noisy = noise(clean, torch.Generator().manual_seed(0))
        >>> round(float((noisy - clean).std() * 255))
        25
    """

    short_name = "noise"
    degradation_id = DegradationId.NOISE

    def __init__(
        self, sigma: float | Sequence[float] = 25.0, clip: bool = True, quantize: bool = True
    ) -> None:
        self.sigma = _as_range(sigma, "sigma", low=0.0)
        self.clip = clip
        self.quantize = quantize

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        sigma = _sample(self.sigma, clean.shape[0], generator, clean) / 255.0
        noise = _randn(clean.shape, generator, clean) * sigma.view(-1, 1, 1, 1)
        out = clean + noise.to(clean.dtype)
        if self.clip:
            out = out.clamp(0.0, 1.0)
        return _quantize(out) if self.quantize else out

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, clip={self.clip}, quantize={self.quantize}"


class RainStreaks(Degradation):
    r"""Synthetic rain: sparse drops smeared into slanted streaks, screen-blended over the image.

    Drops are Bernoulli(``density``) pixels of random brightness; a motion-blur kernel of
    ``length`` pixels at ``angle`` degrees from vertical turns them into streaks :math:`s`, and
    :math:`y = 1 - (1 - x)(1 - a\,s)` with opacity :math:`a` (rain adds light, never darkens).

    Args:
        density: fraction of pixels that start a streak, in [0, 1].
        length: streak length in pixels (made odd, >= 3); one length per call.
        angle: slant in degrees from vertical.
        opacity: streak opacity :math:`a` in [0, 1].

    Example:
        >>> rain = RainStreaks(density=0.01, length=9)
        >>> clean = torch.zeros(2, 3, 32, 32)
        >>> rainy = rain(clean, torch.Generator().manual_seed(0))
        >>> rainy.shape, bool(rainy.mean() > clean.mean())
        (torch.Size([2, 3, 32, 32]), True)
    """

    short_name = "rain"
    degradation_id = DegradationId.RAIN

    def __init__(
        self,
        density: float | Sequence[float] = (0.002, 0.01),
        length: float | Sequence[float] = (11, 31),
        angle: float | Sequence[float] = (-20.0, 20.0),
        opacity: float | Sequence[float] = (0.6, 0.9),
    ) -> None:
        self.density = _as_range(density, "density", low=0.0, high=1.0)
        self.length = _as_range(length, "length", low=3.0)
        self.angle = _as_range(angle, "angle")
        self.opacity = _as_range(opacity, "opacity", low=0.0, high=1.0)

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        b, _, h, w = clean.shape
        density = _sample(self.density, b, generator, clean).view(-1, 1, 1, 1)
        drops = _rand((b, 1, h, w), generator, clean)
        brightness = 0.5 + 0.5 * _rand((b, 1, h, w), generator, clean)
        seeds = (drops < density).float() * brightness
        length = round(float(_sample(self.length, 1, generator, clean)[0]))
        # Reflect padding needs the kernel radius below the image size.
        length = max(3, min(length | 1, (2 * min(h, w) - 1) | 1))
        angle = 90.0 + _sample(self.angle, b, generator, clean)
        streaks = motion_blur(seeds, length, angle, torch.zeros_like(angle), border_type="reflect")
        # The kernel averages over its length; undo that so a drop keeps its brightness.
        streaks = (streaks * length).clamp(0.0, 1.0)
        opacity = _sample(self.opacity, b, generator, clean).view(-1, 1, 1, 1)
        return 1.0 - (1.0 - clean) * (1.0 - opacity * streaks).to(clean.dtype)

    def extra_repr(self) -> str:
        return (
            f"density={self.density}, length={self.length}, angle={self.angle}, "
            f"opacity={self.opacity}"
        )


class Haze(Degradation):
    r"""Haze by the atmospheric scattering model with a smooth random transmission map.

    .. math:: I = J\,t + A\,(1 - t), \qquad t = e^{-\beta d}

    The depth :math:`d \in [0, 1]` mixes a vertical ramp (the top of a photo is usually
    farther away) with a smooth random field, a ``grid`` x ``grid`` lattice upsampled bicubically.

    Args:
        beta: scattering coefficient, >= 0 (larger is denser haze).
        airlight: global atmospheric light :math:`A` in [0, 1].
        grid: lattice size of the random depth field (larger is less smooth), >= 2.

    Example:
        >>> haze = Haze(beta=1.0, airlight=0.9)
        >>> clean = torch.rand(1, 3, 32, 32)
        >>> hazy = haze(clean, torch.Generator().manual_seed(0))
        >>> bool(hazy.std() < clean.std())
        True
    """

    short_name = "haze"
    degradation_id = DegradationId.HAZE

    def __init__(
        self,
        beta: float | Sequence[float] = (0.6, 1.6),
        airlight: float | Sequence[float] = (0.7, 1.0),
        grid: int = 4,
    ) -> None:
        self.beta = _as_range(beta, "beta", low=0.0)
        self.airlight = _as_range(airlight, "airlight", low=0.0, high=1.0)
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ArgumentError("grid", f"must be an integer >= 2, got {grid!r}")
        self.grid = grid

    def transmission(
        self, shape: Sequence[int], generator: torch.Generator | None, like: Tensor
    ) -> Tensor:
        """Transmission map :math:`t` of shape ``(B, 1, H, W)`` in (0, 1]."""
        b, _, h, w = shape
        lattice = _rand((b, 1, self.grid, self.grid), generator, like)
        field = resize(lattice, (h, w), interpolation="bicubic", align_corners=False)
        ramp = torch.linspace(1.0, 0.0, h, device=like.device).view(1, 1, h, 1)
        depth = (0.5 * ramp + 0.5 * field).clamp(0.0, 1.0)
        beta = _sample(self.beta, b, generator, like).view(-1, 1, 1, 1)
        return torch.exp(-beta * depth)

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        t = self.transmission(clean.shape, generator, clean).to(clean.dtype)
        airlight = _sample(self.airlight, clean.shape[0], generator, clean).view(-1, 1, 1, 1)
        return clean * t + airlight.to(clean.dtype) * (1.0 - t)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, airlight={self.airlight}, grid={self.grid}"


class GaussianBlur(Degradation):
    r"""Isotropic Gaussian blur (:func:`kornia.filters.gaussian_blur2d`, reflect borders).

    Args:
        sigma: blur standard deviation in pixels, > 0.
        kernel_size: odd kernel size; ``None`` takes :math:`2\lceil 3\sigma_{max}\rceil + 1`.

    Example:
        >>> blur = GaussianBlur(sigma=2.0)
        >>> blur(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    short_name = "gaussian_blur"
    degradation_id = DegradationId.BLUR

    def __init__(self, sigma: float | Sequence[float] = 2.0, kernel_size: int | None = None):
        self.sigma = _as_range(sigma, "sigma", low=0.0, strict=True)
        if kernel_size is None:
            kernel_size = 2 * math.ceil(3.0 * self.sigma[1]) + 1
        self.kernel_size = _odd_kernel(kernel_size, "kernel_size")

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        sigma = _sample(self.sigma, clean.shape[0], generator, clean)
        k = self.kernel_size
        return gaussian_blur2d(clean, (k, k), torch.stack([sigma, sigma], dim=1))

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, kernel_size={self.kernel_size}"


class MotionBlur(Degradation):
    r"""Linear motion blur (:func:`kornia.filters.motion_blur`, reflect borders).

    Args:
        kernel_size: odd length of the motion path in pixels, >= 3.
        angle: direction of motion in degrees, anticlockwise from horizontal.
        direction: in [-1, 1]; 0 spreads the path evenly, +-1 weights one end (a fading trail).

    Example:
        >>> blur = MotionBlur(kernel_size=9, angle=(0.0, 180.0))
        >>> blur(torch.rand(2, 3, 32, 32), torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 32, 32])
    """

    short_name = "motion_blur"
    degradation_id = DegradationId.BLUR

    def __init__(
        self,
        kernel_size: int = 15,
        angle: float | Sequence[float] = (0.0, 180.0),
        direction: float | Sequence[float] = 0.0,
    ) -> None:
        self.kernel_size = _odd_kernel(kernel_size, "kernel_size")
        self.angle = _as_range(angle, "angle")
        self.direction = _as_range(direction, "direction", low=-1.0, high=1.0)

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        b = clean.shape[0]
        angle = _sample(self.angle, b, generator, clean)
        direction = _sample(self.direction, b, generator, clean)
        # Named: kornia < 0.9 pads with zeros by default, which darkens the borders.
        return motion_blur(clean, self.kernel_size, angle, direction, border_type="reflect")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, angle={self.angle}, direction={self.direction}"


class Downscale(Degradation):
    r"""Bicubic downscaling by an integer factor, then (by default) bicubic upscaling back.

    The reference's super-resolution setting feeds the map the low-resolution image
    bicubic-upsampled to the target size (``upsample=True``); ``upsample=False`` keeps the
    small image of size :math:`(\lfloor H/s \rfloor, \lfloor W/s \rfloor)`. Downscaling uses
    torch's antialiased bicubic filter, which approximates MATLAB's ``imresize`` that produced
    the usual benchmarks (kornia's antialiasing is a Gaussian pre-filter instead).

    Args:
        scale: integer factor >= 2 (2, 3 or 4 in the literature).
        upsample: upscale back to the input size.

    Example:
        >>> Downscale(scale=4, upsample=False)(torch.rand(1, 3, 32, 48)).shape
        torch.Size([1, 3, 8, 12])
        >>> Downscale(scale=3)(torch.rand(1, 3, 32, 48)).shape
        torch.Size([1, 3, 32, 48])
    """

    short_name = "downscale"
    degradation_id = DegradationId.SR

    def __init__(self, scale: int = 4, upsample: bool = True) -> None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
            raise ArgumentError("scale", f"must be an integer >= 2 (e.g. 2, 3 or 4), got {scale!r}")
        self.scale = scale
        self.upsample = upsample
        self.changes_size = not upsample

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        h, w = clean.shape[-2:]
        small_size = (h // self.scale, w // self.scale)
        if min(small_size) < 1:
            raise RCOTError(f"image of size {h}x{w} is too small to downscale by {self.scale}")
        small = F.interpolate(
            clean, size=small_size, mode="bicubic", align_corners=False, antialias=True
        ).clamp(0.0, 1.0)
        if not self.upsample:
            return small
        return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, upsample={self.upsample}"


class JPEG(Degradation):
    r"""JPEG compression artefacts, decoded to 8 bits as a real decoder returns them.

    Two codecs:

    * ``kornia`` (the default): :func:`kornia.enhance.jpeg_codec_differentiable`, on any device.
      Its quantiser is a smooth approximation of rounding, so its artefacts are milder than a
      saved file's at the same quality (about 0.6-0.9 dB higher PSNR at quality 10-40 on the
      held-out photos).
    * ``libjpeg``: Pillow's libjpeg (4:2:0 chroma), one row at a time on the CPU: the artefacts
      of a JPEG file a user saves. The quality is rounded to an integer, as libjpeg takes it.

    Args:
        quality: JPEG quality in [1, 100] (lower is worse); a pair draws one per image.
        codec: ``kornia`` or ``libjpeg``.
        quality_power: how a drawn quality spreads over ``[low, high]``:
            ``low + (high - low) * u ** quality_power`` with ``u`` uniform, so 1 is uniform and
            2 draws the worst quarter of the range half of the time (the low qualities are
            where a restorer has the most to remove).

    Example:
        >>> jpeg = JPEG(quality=(10.0, 40.0))
        >>> jpeg(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 16, 16])
        >>> real = JPEG(quality=20, codec="libjpeg")
        >>> real(torch.rand(1, 3, 24, 20)).shape
        torch.Size([1, 3, 24, 20])
    """

    short_name = "jpeg"
    degradation_id = DegradationId.JPEG
    CODECS = ("kornia", "libjpeg")

    def __init__(
        self,
        quality: float | Sequence[float] = 30.0,
        codec: str = "kornia",
        quality_power: float = 1.0,
    ) -> None:
        self.quality = _as_range(quality, "quality", low=1.0, high=100.0)
        if codec not in self.CODECS:
            raise ArgumentError("codec", f"must be one of {', '.join(self.CODECS)}, got {codec!r}")
        self.codec = codec
        if isinstance(quality_power, bool) or not (
            isinstance(quality_power, (int, float)) and 0 < quality_power < math.inf
        ):
            raise ArgumentError(
                "quality_power", f"must be a positive number (1: uniform), got {quality_power!r}"
            )
        self.quality_power = float(quality_power)

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        if clean.shape[1] != 3:
            raise ArgumentError(
                "clean", f"must be RGB images (B, 3, H, W) for JPEG, got {tuple(clean.shape)}"
            )
        quality = _sample(self.quality, clean.shape[0], generator, clean, self.quality_power)
        if self.codec == "libjpeg":
            return _libjpeg(clean, quality)
        # kornia < 0.8 rejects sides that are not multiples of 16 (its 16x16 chroma blocks);
        # later releases pad the bottom and right edges by replication, as done here for all.
        h, w = clean.shape[-2:]
        padded = F.pad(clean, (0, -w % 16, 0, -h % 16), mode="replicate")
        out = jpeg_codec_differentiable(padded, quality.to(clean.dtype))[..., :h, :w]
        return _quantize(out.clamp(0.0, 1.0))

    def extra_repr(self) -> str:
        text = f"quality={self.quality}"
        if self.codec != "kornia":
            text += f", codec={self.codec!r}"
        if self.quality_power != 1.0:
            text += f", quality_power={_fmt(self.quality_power)}"
        return text


def _libjpeg(clean: Tensor, quality: Tensor) -> Tensor:
    """Save each row as a JPEG file in memory with Pillow (4:2:0) and decode it, 8-bit."""
    import io

    import numpy as np
    from PIL import Image

    rows = []
    pixels = (clean.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu()
    for row, q in zip(pixels, quality.tolist(), strict=True):
        buffer = io.BytesIO()
        image = Image.fromarray(row.permute(1, 2, 0).numpy())
        image.save(buffer, format="JPEG", quality=round(q), subsampling=2)
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer).convert("RGB")).copy()
        rows.append(torch.from_numpy(decoded).permute(2, 0, 1))
    return torch.stack(rows).to(device=clean.device, dtype=clean.dtype) / 255.0


class LowLight(Degradation):
    r"""Low light: gamma darkening, gain and sensor noise, quantised to 8 bits.

    .. math:: y = Q\big(\mathrm{clip}(g\,x^{\gamma} + n)\big), \quad n \sim \mathcal{N}(0,
       (\sigma/255)^2)

    Args:
        gamma: exponent :math:`\gamma > 0` (> 1 darkens the mid-tones more than the highlights).
        gain: exposure gain :math:`g` in (0, 1].
        sigma: noise standard deviation on the 0-255 scale, >= 0.
        quantize: round the result to 256 levels (dark 8-bit images lose many levels).

    Example:
        >>> dark = LowLight(gamma=2.0, gain=0.3, sigma=0.0)
        >>> dark(torch.full((1, 3, 8, 8), 0.8)).mean().item() < 0.25
        True
    """

    short_name = "lowlight"
    degradation_id = DegradationId.LOWLIGHT

    def __init__(
        self,
        gamma: float | Sequence[float] = (1.5, 2.5),
        gain: float | Sequence[float] = (0.2, 0.5),
        sigma: float | Sequence[float] = (2.0, 8.0),
        quantize: bool = True,
    ) -> None:
        self.gamma = _as_range(gamma, "gamma", low=0.0, strict=True)
        self.gain = _as_range(gain, "gain", low=0.0, high=1.0, strict=True)
        self.sigma = _as_range(sigma, "sigma", low=0.0)
        self.quantize = quantize

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        b = clean.shape[0]
        gamma = _sample(self.gamma, b, generator, clean)
        gain = _sample(self.gain, b, generator, clean)
        dark = adjust_gamma(clean, gamma.to(clean.dtype), gain.to(clean.dtype))
        sigma = _sample(self.sigma, b, generator, clean).view(-1, 1, 1, 1) / 255.0
        out = (dark + (_randn(clean.shape, generator, clean) * sigma).to(clean.dtype)).clamp(0, 1)
        return _quantize(out) if self.quantize else out

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, gain={self.gain}, sigma={self.sigma}"


def _as_degradations(items: Sequence[Any], key: str) -> list[Degradation]:
    """Check a list of built degradations (a config builds each from its ``_target_``)."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) == 0:
        raise ArgumentError(key, f"must be a non-empty list of degradations, got {items!r}")
    for item in items:
        if not isinstance(item, Degradation):
            raise ArgumentError(
                key,
                "entries must be degradations: in a config, nodes with a `_target_` such as "
                f"rcot_lightning.data.degradations.GaussianNoise; got {item!r}",
            )
    return list(items)


class OneOf(Degradation):
    r"""All-in-one mixture: each image gets one degradation drawn from a list, tagged by its id.

    Args:
        degradations: the candidates (built degradations; a config gives ``_target_`` nodes);
            none may change the image size.
        weights: relative probabilities, one per candidate; ``None`` is uniform.

    Returns:
        :meth:`apply` gives each row the id of the degradation it received.

    Example:
        >>> mix = OneOf([GaussianNoise(sigma=25), GaussianBlur(sigma=1.0)])
        >>> y, ids = mix.apply(torch.rand(6, 3, 16, 16), torch.Generator().manual_seed(0))
        >>> y.shape, sorted(set(ids.tolist())) <= [0, 3]
        (torch.Size([6, 3, 16, 16]), True)
    """

    short_name = "one_of"

    def __init__(self, degradations: Sequence[Any], weights: Sequence[float] | None = None) -> None:
        items = _as_degradations(degradations, "degradations")
        for item in items:
            if item.changes_size:
                raise ArgumentError(
                    "degradations",
                    f": {item!r} changes the image size, so its rows cannot "
                    "be batched with the others; set upsample=true",
                )
        self.degradations = items
        if weights is None:
            weights = [1.0] * len(items)
        probs = [float(w) for w in weights]
        if len(probs) != len(items) or min(probs) < 0 or sum(probs) <= 0:
            raise ArgumentError(
                "weights",
                f"must be {len(items)} non-negative numbers with a positive sum, "
                f"got {list(weights)!r}",
            )
        self.weights = [p / sum(probs) for p in probs]

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        return self._degrade_tagged(clean, generator)[0]

    def _degrade_tagged(
        self, clean: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        b = clean.shape[0]
        edges = torch.tensor(self.weights, device=clean.device).cumsum(0)
        choice = torch.searchsorted(edges, _rand((b,), generator, clean), right=True)
        choice = choice.clamp(max=len(self.degradations) - 1)
        degraded = torch.empty_like(clean)
        ids = torch.empty(b, dtype=torch.long, device=clean.device)
        for k, degradation in enumerate(self.degradations):
            rows = (choice == k).nonzero().flatten()
            if rows.numel() == 0:
                continue
            out, row_ids = degradation._degrade_tagged(clean[rows], generator)
            degraded[rows] = out.to(clean.dtype)
            ids[rows] = row_ids
        return degraded, ids

    def extra_repr(self) -> str:
        return f"weights={[round(w, 4) for w in self.weights]}"


class Chain(Degradation):
    r"""Several degradations applied in order, e.g. blur then downscale then noise.

    Args:
        degradations: the stages, in order (built degradations; a config gives ``_target_``
            nodes).
        degradation_id: the id to tag rows with (a name such as ``"sr"`` or an int); ``None``
            takes the stages' common id, or ``"other"`` when they differ.

    Example:
        >>> chain = Chain([GaussianBlur(sigma=1.0), GaussianNoise(sigma=10)])
        >>> y, ids = chain.apply(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(0))
        >>> y.shape, ids.tolist()
        (torch.Size([2, 3, 16, 16]), [7, 7])
    """

    short_name = "chain"

    def __init__(
        self, degradations: Sequence[Any], degradation_id: str | int | None = None
    ) -> None:
        items = _as_degradations(degradations, "degradations")
        self.degradations = items
        self.changes_size = any(item.changes_size for item in items)
        self.degradation_id = resolve_degradation_id(
            degradation_id, default=_common_id(items), key="degradation_id"
        )

    def _degrade(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        out = clean
        for degradation in self.degradations:
            out = degradation._degrade(out, generator)
        return out


def _common_id(items: Sequence[Degradation]) -> DegradationId:
    ids = {item.degradation_id for item in items}
    return ids.pop() if len(ids) == 1 else DegradationId.OTHER


def resolve_degradation_id(
    value: str | int | DegradationId | None, default: DegradationId, key: str
) -> DegradationId:
    """Read a degradation id given as a name (``"rain"``), an int or ``None`` (the default).

    Example:
        >>> resolve_degradation_id("haze", DegradationId.OTHER, "data.folders.degradation_id").name
        'HAZE'
    """
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return DegradationId.from_name(value)
        except RCOTError as err:
            raise ArgumentError(key, f": {err}") from None
    try:
        return DegradationId(int(value))
    except ValueError:
        known = ", ".join(f"{m.name.lower()}={int(m)}" for m in DegradationId)
        raise ArgumentError(key, f"must be one of {known}, got {value!r}") from None


def build_degradation(name: str, **kwargs: Any) -> Degradation:
    """Build the degradation a user picked by short name (:data:`DEGRADATIONS`); unknown names
    and parameters raise :class:`~rcot_lightning.errors.ArgumentError`.

    Args:
        name: a class's ``short_name``, a key of :data:`DEGRADATIONS`.
        kwargs: the class's constructor parameters.

    Example:
        >>> build_degradation("noise", sigma=[15, 50])
        GaussianNoise(sigma=(15.0, 50.0), clip=True, quantize=True)
    """
    if name not in DEGRADATIONS:
        raise ArgumentError(
            "name", f": unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}"
        )
    cls = DEGRADATIONS[name]
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        params = ", ".join(signature.parameters)
        raise ArgumentError(
            None, f"{name} ({cls.__name__}): {err}; its parameters are {params}"
        ) from None
    return cls(**kwargs)
