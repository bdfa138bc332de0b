"""The classical anchor of every restoration task, on the held-out photos, side by side in one run.

For each task (``jpeg``, ``derain``, ``dehaze``, ``deblur``, ``lowlight``, ``sr``) every held-out
photo (:func:`rcot_lightning.data.heldout.load_heldout`: photos no job trains or validates on)
is degraded by the library's own degradation (:mod:`rcot_lightning.data.degradations`) at two to
four fixed severities inside the task's training range, seeded per (seed, task, severity, photo),
and rounded to 8 bits as a user would save it (the severities and seeds live in
:mod:`rcot_lightning.data.heldout_tasks`, shared with ``rcot-eval data=heldout_tasks``, which
scores a checkpoint on the same inputs). Then, on the same inputs:

* ``input``: the degraded image itself (for ``sr``: its bicubic x4 up-sampling, 8-bit: what a
  model is given);
* the task's classical anchors (``METHODS``), their parameters tuned per severity on the
  library's *validation* photos (``chelsea``, ``coffee``, degraded with other seeds; never the
  held-out photos), by a grid search on the mean RGB PSNR (along BM3D's sigma, Wiener's balance
  and Richardson-Lucy's iterations, it stops at the first value scoring below the best so far):

  - ``jpeg``: ``bm3d`` (``bm3d.bm3d_rgb``, the classical deblocker) at the best sigma per quality;
    the library's kornia codec at quality 10, 20 and 40, and real libjpeg files at the same
    qualities (``q<q>_libjpeg``: ``JPEG(codec="libjpeg")``, harsher than kornia's at the same q);
  - ``deblur``: ``wiener`` (``skimage.restoration.wiener``, balance tuned) and
    ``richardson_lucy`` (``skimage.restoration.richardson_lucy``, iterations tuned), both told
    the true kernel (non-blind: an upper anchor for a blind model); the blurred image is
    reflect-padded first, as the degradation's borders are, its border faded into its circular
    blur (:func:`edge_taper`, against the FFT's wrap-around ringing), and cropped back;
  - ``dehaze``: ``dcp``, the dark channel prior (He, Sun and Tang, CVPR 2009) with the paper's
    parameters (patch 15, omega 0.95, t0 0.1, the 0.1 % brightest dark-channel pixels for the
    airlight) and the transmission refined by a grey-guided box-filter guided filter (He, Sun and
    Tang, ECCV 2010) of radius 60, eps 1e-3: nothing tuned;
  - ``lowlight``: ``gamma`` (``y ** g``, g tuned), ``histeq`` (global histogram equalisation of
    HSV's value, ``kornia.enhance.equalize``), ``clahe`` (``kornia.enhance.equalize_clahe`` of the
    value, clip limit tuned); ``best_classical`` names the best of the three per severity;
  - ``derain``: ``median`` (``scipy.ndimage.median_filter`` per channel, size tuned) and
    ``guided`` (self-guided box-filter guided filter per channel, radius and eps tuned);
  - ``sr``: ``lanczos`` (PIL) of the 8-bit low-resolution image, and ``nearest`` (a floor);
* ``model``: for each ``--ckpt TASK=PATH``, the checkpoint's map
  (``load_module(path).map_for_inference``), blind, through
  :func:`rcot_lightning.inference.restore_image` in ``--tile`` tiles as ``rcot-restore`` runs it,
  clamped to [0, 1].

Scores: PSNR (dB) and SSIM (:mod:`rcot_lightning.metrics`) of each photo and their mean per
severity, in RGB, plus the BT.601 luma (``psnr_y``, ``ssim_y``) where the task's config scores it
(``metric.y_channel`` or ``metric.also_y`` in ``conf/task/<task>.yaml``: jpeg, sr, derain), all
with the config's ``crop_border`` (4 for sr). Prints one JSON object (``--out`` also writes it);
a one-line summary per severity goes to stderr. Needs the quality extra (held-out photos,
bm3d, scikit-image): ``pip install "rcot-lightning[quality]"``.

Run::

    python benchmarks/tasks.py --out docs/quality/tasks_anchors.json   # all tasks, 3 photos
    python benchmarks/tasks.py --tasks jpeg deblur --photos china
    python benchmarks/tasks.py --crop 48 --photos china --tune-crop 48 --bm3d-sigmas 10  # smoke
    python benchmarks/tasks.py --tasks dehaze --ckpt dehaze=runs/dehaze/checkpoints/last.ckpt
    python benchmarks/tasks.py --skip-anchors --tasks jpeg derain --ckpt jpeg=X --ckpt derain=X
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import bm3d_restore
from rcot_lightning import hardware
from rcot_lightning.data.heldout import HELDOUT_PHOTOS, load_heldout
from rcot_lightning.data.heldout_tasks import (  # the inputs, shared with rcot-eval
    ANCHORED_TASKS,
    SEVERITIES,
    Case,
    Degrade,
    centre_crop,
    make_case,
    seed_of,
    task_metric,
)
from rcot_lightning.data.samples import VAL_PHOTOS, load_photo
from rcot_lightning.errors import RCOTError
from rcot_lightning.metrics import psnr, ssim

TASKS = ANCHORED_TASKS
#: The classical anchors of each task (besides ``input``, and ``model`` with ``--ckpt``).
METHODS: dict[str, tuple[str, ...]] = {
    "jpeg": ("bm3d",),
    "derain": ("median", "guided"),
    "dehaze": ("dcp",),
    "deblur": ("wiener", "richardson_lucy"),
    "lowlight": ("gamma", "histeq", "clahe"),
    "sr": ("lanczos", "nearest"),
}
#: Run-wide settings main() fills in (the anchors' thread count).
SETTINGS: dict[str, Any] = {"threads": 1}
#: Seeds of the validation copies (tuning) are offset from the held-out ones.
VAL_SEED_OFFSET = 500_009


# --------------------------------------------------------------------------------------------
# Filters shared by the anchors.


def box_mean(x: Tensor, radius: int) -> Tensor:
    r"""Mean over the ``(2r+1)^2`` window around each pixel, the window clipped to the image.

    Summed-area tables in float64, so the cost does not depend on the radius (the guided
    filter's box filter, He et al. 2010).

    Args:
        x: ``(B, C, H, W)``.
        radius: window radius :math:`r \ge 0`.

    Returns:
        The local means, ``(B, C, H, W)`` float64.
    """

    def window_sum(t: Tensor, dim: int) -> Tensor:
        n = t.shape[dim]
        shape = list(t.shape)
        shape[dim] = 1
        table = torch.cat([t.new_zeros(shape), t.cumsum(dim)], dim=dim)
        idx = torch.arange(n, device=t.device)
        hi = (idx + radius).clamp(max=n - 1) + 1
        lo = (idx - radius).clamp(min=0)
        return table.index_select(dim, hi) - table.index_select(dim, lo)

    x = x.double()
    sums = window_sum(window_sum(x, -2), -1)
    ones = x.new_ones((1, 1, *x.shape[-2:]))
    return sums / window_sum(window_sum(ones, -2), -1)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    r"""The guided filter (He, Sun and Tang, ECCV 2010) with box windows.

    .. math:: q = \bar a\,I + \bar b, \quad a = \frac{\mathrm{cov}(I, p)}{\mathrm{var}(I) +
       \epsilon}, \quad b = \bar p - a \bar I

    Args:
        guide: the guidance image :math:`I`, ``(B, 1, H, W)`` or ``(B, C, H, W)`` (one guide per
            channel of ``src``).
        src: the image to filter :math:`p`, ``(B, C, H, W)``.
        radius: box radius.
        eps: regularisation :math:`\epsilon` (larger is smoother).

    Returns:
        The filtered image, ``(B, C, H, W)`` in ``src``'s dtype.
    """
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    cov_ip = box_mean(guide.double() * src.double(), radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return (box_mean(a, radius) * guide.double() + box_mean(b, radius)).to(src.dtype)


def grey(x: Tensor) -> Tensor:
    """BT.601 luminance in [0, 1], ``(B, 1, H, W)`` (the guide of the dark channel prior)."""
    weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


# --------------------------------------------------------------------------------------------
# The anchors: each takes the 8-bit input (``sr``: the low-resolution image) and parameters.


def _per_channel(x: Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> Tensor:
    channels = [fn(c.double().numpy()) for c in x[0]]
    return torch.from_numpy(np.stack(channels))[None].float().clamp(0, 1)


def edge_taper(image: np.ndarray, psf: np.ndarray, width: int) -> np.ndarray:
    """Blend an image's outer ``width`` pixels into its circular blur by ``psf``.

    FFT deconvolution treats the image as periodic; the jump between opposite edges then rings
    through the whole image, worst for kernels with spectral zeros (motion). Fading the border
    into the blurred periodic image (a sin^2 ramp, as MATLAB's ``edgetaper`` does with its own
    weights) makes the border consistent with a circular blur.

    Args:
        image: ``(H, W)``, already padded by at least ``width``.
        psf: the convolution kernel, odd sides.
        width: the ramp's width in pixels.

    Returns:
        ``(H, W)``: ``image`` inside, its circular blur at the edges.
    """
    h, w = image.shape
    kernel = np.zeros_like(image)
    kh, kw = psf.shape[0] // 2, psf.shape[1] // 2
    rows = (np.arange(psf.shape[0]) - kh) % h
    cols = (np.arange(psf.shape[1]) - kw) % w
    kernel[np.ix_(rows, cols)] = psf
    blurred = np.real(np.fft.ifft2(np.fft.fft2(image) * np.fft.fft2(kernel)))

    def ramp(n: int) -> np.ndarray:
        out = np.ones(n)
        edge = np.sin(np.linspace(0.0, np.pi / 2, width)) ** 2
        out[:width], out[n - width :] = edge, edge[::-1]
        return out

    weight = np.outer(ramp(h), ramp(w))
    return weight * image + (1.0 - weight) * blurred


def _deconvolve(
    x: Tensor, kernel: Tensor, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Tensor:
    """Deconvolve each channel of ``x``, reflect-padded by three kernel sizes and edge-tapered.

    The degradation blurs with reflect borders, so the reflect-padded blurred image is close to
    the blur of the padded clean image; :func:`edge_taper` makes its edges periodic. The
    degradation correlates with ``kernel`` (kornia's ``filter2d``); the deconvolutions assume a
    convolution, so they are given the flipped kernel. The result is cropped back.
    """
    psf = kernel.flip(-1, -2).double().numpy()
    pad = 3 * kernel.shape[-1]
    h, w = x.shape[-2:]

    def one(channel: np.ndarray) -> np.ndarray:
        padded = edge_taper(np.pad(channel, pad, mode="reflect"), psf, pad)
        return fn(padded, psf)[pad : pad + h, pad : pad + w]

    return _per_channel(x, one)


def wiener_restore(x: Tensor, kernel: Tensor, balance: float) -> Tensor:
    """Wiener-Hunt deconvolution (``skimage.restoration.wiener``) told the kernel."""
    from skimage.restoration import wiener

    return _deconvolve(x, kernel, lambda c, psf: wiener(c, psf, balance, clip=False))


def richardson_lucy_restore(x: Tensor, kernel: Tensor, iterations: int) -> Tensor:
    """Richardson-Lucy deconvolution (``skimage.restoration.richardson_lucy``) told the kernel."""
    from skimage.restoration import richardson_lucy

    return _deconvolve(x, kernel, lambda c, psf: richardson_lucy(c, psf, num_iter=iterations))


def dark_channel(x: Tensor, patch: int) -> Tensor:
    """Minimum over the colour channels and a ``patch`` x ``patch`` window, ``(B, 1, H, W)``."""
    low = x.amin(dim=1, keepdim=True)
    return -F.max_pool2d(-low, patch, stride=1, padding=patch // 2)


def dark_channel_prior(
    x: Tensor,
    patch: int = 15,
    omega: float = 0.95,
    t0: float = 0.1,
    radius: int = 60,
    eps: float = 1e-3,
    top: float = 0.001,
) -> Tensor:
    r"""Single-image dehazing by the dark channel prior (He, Sun and Tang, CVPR 2009).

    The airlight :math:`A` is the colour of the brightest input pixel (sum of RGB) among the
    ``top`` fraction of pixels with the brightest dark channel; the transmission
    :math:`\tilde t = 1 - \omega\,\mathrm{dark}(I / A)` is refined by a guided filter with the
    grey input as guide (in place of the paper's soft matting, as its authors' 2010 paper
    does), and :math:`J = (I - A) / \max(t, t_0) + A`.

    Args:
        x: hazy images ``(B, 3, H, W)`` in [0, 1].
        patch: the dark channel's window.
        omega: the fraction of haze removed (keeps some for depth perception).
        t0: lower bound of the transmission.
        radius: guided-filter radius.
        eps: guided-filter regularisation.
        top: fraction of pixels the airlight is chosen among.

    Returns:
        The dehazed images, ``(B, 3, H, W)`` in [0, 1].
    """
    b, _, h, w = x.shape
    dark = dark_channel(x, patch).flatten(1)
    count = max(1, math.floor(top * h * w))
    candidates = dark.topk(count, dim=1).indices
    pixels = x.flatten(2)
    brightness = pixels.sum(dim=1).gather(1, candidates)
    best = candidates.gather(1, brightness.argmax(dim=1, keepdim=True))
    airlight = pixels.gather(2, best.unsqueeze(1).expand(b, 3, 1)).view(b, 3, 1, 1)
    airlight = airlight.clamp(min=1e-3)
    raw = 1.0 - omega * dark_channel(x / airlight, patch)
    t = guided_filter(grey(x), raw, radius, eps).clamp(min=t0, max=1.0)
    return ((x - airlight) / t + airlight).clamp(0.0, 1.0)


def _on_value(x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply ``fn`` to the HSV value channel (hue and saturation kept)."""
    from kornia.color import hsv_to_rgb, rgb_to_hsv

    hsv = rgb_to_hsv(x)
    value = fn(hsv[:, 2:3].contiguous()).clamp(0.0, 1.0)
    return hsv_to_rgb(torch.cat([hsv[:, :2], value], dim=1)).clamp(0.0, 1.0)


def gamma_restore(x: Tensor, gamma: float) -> Tensor:
    """Gamma correction ``x ** gamma`` (``gamma < 1`` brightens)."""
    return x.clamp(min=0.0) ** gamma


def histeq_restore(x: Tensor) -> Tensor:
    """Global histogram equalisation of the value channel (``kornia.enhance.equalize``)."""
    from kornia.enhance import equalize

    return _on_value(x, equalize)


def clahe_restore(x: Tensor, clip_limit: float) -> Tensor:
    """CLAHE of the value channel (``kornia.enhance.equalize_clahe``, 8 x 8 tiles)."""
    from kornia.enhance import equalize_clahe

    return _on_value(x, lambda v: equalize_clahe(v, clip_limit=clip_limit, grid_size=(8, 8)))


def median_restore(x: Tensor, size: int) -> Tensor:
    """A ``size`` x ``size`` median filter per channel (``scipy.ndimage``, reflect borders)."""
    from scipy.ndimage import median_filter

    return _per_channel(x, lambda c: median_filter(c, size=size, mode="reflect"))


def guided_restore(x: Tensor, radius: int, eps: float) -> Tensor:
    """The self-guided filter per channel (edge-preserving smoothing)."""
    return guided_filter(x, x, radius, eps).clamp(0.0, 1.0)


def lanczos_restore(small: Tensor, size: tuple[int, int]) -> Tensor:
    """PIL's Lanczos up-sampling of the 8-bit low-resolution image to ``size`` (H, W)."""
    from PIL import Image

    array = (small[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    out = Image.fromarray(array).resize((size[1], size[0]), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1)[None].float() / 255.0


def nearest_restore(small: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour up-sampling (a floor for the SR anchors)."""
    return F.interpolate(small, size=size, mode="nearest")


# --------------------------------------------------------------------------------------------
# Parameters: the grid each anchor is tuned on (one entry: nothing to tune).


@dataclass(frozen=True)
class Anchor:
    """A classical method: ``run(x, severity_degradation, **params)`` and its parameter grid."""

    run: Callable[..., Tensor]
    grid: Sequence[dict[str, Any]] = field(default_factory=lambda: [{}])
    note: str = ""
    #: The grid is one parameter in increasing order along which the validation PSNR rises to
    #: one peak: the search stops at the first value that scores below the best so far.
    unimodal: bool = False


def _grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    combos: list[dict[str, Any]] = [{}]
    for key, values in axes.items():
        combos = [{**c, key: v} for c in combos for v in values]
    return combos


ANCHORS: dict[str, Anchor] = {
    "bm3d": Anchor(
        lambda x, deg, sigma: bm3d_restore(x, sigma, SETTINGS["threads"]),
        _grid(sigma=[5.0, 7.0, 10.0, 14.0, 20.0, 28.0, 40.0]),
        "bm3d.bm3d_rgb(jpeg, sigma_psd=sigma/255), sigma tuned per quality",
        unimodal=True,
    ),
    "wiener": Anchor(
        lambda x, deg, balance: wiener_restore(x, deg.kernel(), balance),
        _grid(balance=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]),
        "skimage.restoration.wiener told the true kernel (reflect-padded, edge-tapered), balance "
        "tuned",
        unimodal=True,
    ),
    "richardson_lucy": Anchor(
        lambda x, deg, iterations: richardson_lucy_restore(x, deg.kernel(), iterations),
        _grid(iterations=[5, 10, 20, 40, 80, 160, 320]),
        "skimage.restoration.richardson_lucy told the true kernel (reflect-padded, "
        "edge-tapered), iterations tuned",
        unimodal=True,
    ),
    "dcp": Anchor(
        lambda x, deg: dark_channel_prior(x),
        [{}],
        "dark channel prior, He et al. 2009: patch 15, omega 0.95, t0 0.1, airlight from the "
        "0.1% brightest dark-channel pixels, transmission refined by a grey-guided box guided "
        "filter (radius 60, eps 1e-3); nothing tuned",
    ),
    "gamma": Anchor(
        lambda x, deg, gamma: gamma_restore(x, gamma),
        _grid(gamma=[round(0.2 + 0.05 * i, 2) for i in range(17)]),
        "x ** gamma, gamma tuned per severity",
    ),
    "histeq": Anchor(
        lambda x, deg: histeq_restore(x),
        [{}],
        "global histogram equalisation of the HSV value (kornia.enhance.equalize)",
    ),
    "clahe": Anchor(
        lambda x, deg, clip_limit: clahe_restore(x, clip_limit),
        _grid(clip_limit=[1.0, 2.0, 4.0, 8.0, 40.0]),
        "kornia.enhance.equalize_clahe of the HSV value, 8x8 tiles, clip limit tuned",
    ),
    "median": Anchor(
        lambda x, deg, size: median_restore(x, size),
        _grid(size=[3, 5, 7, 9, 11, 13]),
        "scipy.ndimage.median_filter per channel, size tuned",
    ),
    "guided": Anchor(
        lambda x, deg, radius, eps: guided_restore(x, radius, eps),
        _grid(radius=[1, 2, 4, 8, 16], eps=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]),
        "self-guided box guided filter per channel, radius and eps tuned",
    ),
    "lanczos": Anchor(
        lambda x, deg, size: lanczos_restore(x, size),
        [{}],
        "PIL Image.resize(LANCZOS) of the 8-bit x4 low-resolution image",
    ),
    "nearest": Anchor(
        lambda x, deg, size: nearest_restore(x, size),
        [{}],
        "nearest-neighbour x4 up-sampling (a floor)",
    ),
}


# --------------------------------------------------------------------------------------------
# Scoring and running.


def run_model(net: Any, image: Tensor, tile: int | None) -> Tensor:
    """A model's restoration of ``image`` as ``rcot-restore`` runs it (``tile``-pixel tiles;
    ``None`` or 0: whole), without gradients, clamped to [0, 1]."""
    from rcot_lightning.inference import restore_image

    with torch.inference_mode():
        return restore_image(net, image, tile=tile or None).float().clamp(0, 1)


def score(restored: Tensor, clean: Tensor, metric: dict[str, Any]) -> dict[str, float]:
    """RGB PSNR/SSIM, plus the luma's where the task's config scores it, with its border crop.

    Args:
        restored: ``(1, 3, H, W)`` in [0, 1].
        clean: the ground truth, same shape.
        metric: :func:`task_metric`'s output.

    Returns:
        ``psnr``, ``ssim`` and, for y-channel tasks, ``psnr_y``, ``ssim_y``.
    """
    crop = metric["crop_border"]
    restored = restored.float().clamp(0, 1)
    out = {
        "psnr": round(float(psnr(restored, clean, crop_border=crop)[0]), 3),
        "ssim": round(float(ssim(restored, clean, crop_border=crop)[0]), 4),
    }
    if metric["y_channel"] or metric["also_y"]:
        out["psnr_y"] = round(float(psnr(restored, clean, crop_border=crop, y_channel=True)[0]), 3)
        out["ssim_y"] = round(float(ssim(restored, clean, crop_border=crop, y_channel=True)[0]), 4)
    return out


def mean_scores(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = next(iter(rows.values())).keys()
    return {
        k: round(sum(r[k] for r in rows.values()) / len(rows), 4 if "ssim" in k else 3)
        for k in keys
    }


def run_anchor(name: str, case: Case, degrade: Degrade, params: dict[str, Any]) -> Tensor:
    if name in ("lanczos", "nearest"):
        params = {**params, "size": tuple(case.clean.shape[-2:])}
    return ANCHORS[name].run(case.degraded, degrade, **params)


def tune(
    name: str, cases: Sequence[Case], degrade: Degrade, metric: dict[str, Any]
) -> dict[str, Any]:
    """Grid search of ``name``'s parameters on the validation cases (mean RGB PSNR); a
    ``unimodal`` grid stops at the first value that scores below the best so far."""
    anchor = ANCHORS[name]
    grid = anchor.grid
    if len(grid) == 1:
        return {"params": dict(grid[0])}
    crop = metric["crop_border"]
    trials: list[tuple[float, dict[str, Any]]] = []
    for params in grid:
        values = [
            float(psnr(run_anchor(name, c, degrade, params).clamp(0, 1), c.clean, crop_border=crop))
            for c in cases
        ]
        trials.append((sum(values) / len(values), params))
        if anchor.unimodal and trials[-1][0] < max(t[0] for t in trials):
            break
    best = max(trials, key=lambda t: t[0])
    return {
        "params": dict(best[1]),
        "val_psnr": round(best[0], 3),
        "grid": [{**p, "val_psnr": round(v, 3)} for v, p in trials],
    }


def parse_ckpts(items: Sequence[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        task, sep, path = item.partition("=")
        if not sep or task not in TASKS or not path:
            raise SystemExit(
                f"--ckpt takes TASK=PATH with TASK one of {', '.join(TASKS)}: {item!r}"
            )
        out[task] = Path(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument(
        "--photos", nargs="+", default=list(HELDOUT_PHOTOS), choices=list(HELDOUT_PHOTOS)
    )
    parser.add_argument("--crop", type=int, default=None, help="centre crop (smoke tests)")
    parser.add_argument(
        "--tune-crop",
        type=int,
        default=256,
        help="centre crop of the validation photos the anchors are tuned on (0: whole)",
    )
    parser.add_argument(
        "--ckpt",
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="a trained checkpoint scored as the task's 'model' (repeatable)",
    )
    parser.add_argument(
        "--tile", type=int, default=512, help="model tiles as rcot-restore (0: whole)"
    )
    parser.add_argument(
        "--bm3d-sigmas",
        type=float,
        nargs="+",
        default=None,
        help="BM3D sigmas tuned over (default 5 7 10 14 20 28 40; one: no tuning)",
    )
    parser.add_argument(
        "--skip-anchors",
        action="store_true",
        help="score the input and the --ckpt models only: the anchors are deterministic on the "
        "same inputs, so an earlier run's JSON holds their figures (BM3D's JPEG tuning alone "
        "takes about 30 minutes)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    SETTINGS["threads"] = args.threads
    if args.bm3d_sigmas:
        ANCHORS["bm3d"] = replace(ANCHORS["bm3d"], grid=_grid(sigma=args.bm3d_sigmas))
    try:  # numpy/scipy's BLAS and FFT threads, as torch's
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    ckpts = parse_ckpts(args.ckpt)
    models = {}
    try:
        if ckpts:
            from rcot_lightning.checkpoints.load import load_module

            models = {task: load_module(path).map_for_inference for task, path in ckpts.items()}
        held = {n: centre_crop(load_heldout(n)[None], args.crop) for n in args.photos}
    except RCOTError as err:  # a missing quality extra, an unreadable checkpoint: one line
        raise SystemExit(f"tasks.py: {err}") from None
    val = {n: centre_crop(load_photo(n)[None], args.tune_crop) for n in VAL_PHOTOS}
    seconds: dict[str, float] = {}
    tasks: dict[str, Any] = {}
    table = []
    for task in args.tasks:
        metric = task_metric(task)
        anchors = () if args.skip_anchors else METHODS[task]
        severities = {}
        for s_index, (severity, degrade) in enumerate(SEVERITIES[task].items()):
            val_cases = [
                make_case(
                    task, degrade, image, seed_of(args.seed, task, s_index, i) + VAL_SEED_OFFSET
                )
                for i, image in enumerate(val.values())
            ]
            tuned = {}
            for name in anchors:
                start = time.perf_counter()
                tuned[name] = tune(name, val_cases, degrade, metric)
                seconds[f"{task}/{name}/tuning"] = seconds.get(f"{task}/{name}/tuning", 0.0) + (
                    time.perf_counter() - start
                )
            rows: dict[str, dict[str, dict[str, float]]] = {
                m: {} for m in ("input", *anchors, *(["model"] if task in models else []))
            }
            for p_index, (photo, image) in enumerate(held.items()):
                case = make_case(task, degrade, image, seed_of(args.seed, task, s_index, p_index))
                rows["input"][photo] = score(case.model_input, case.clean, metric)
                for name in anchors:
                    start = time.perf_counter()
                    out = run_anchor(name, case, degrade, tuned[name]["params"])
                    seconds[f"{task}/{name}"] = seconds.get(f"{task}/{name}", 0.0) + (
                        time.perf_counter() - start
                    )
                    rows[name][photo] = score(out, case.clean, metric)
                if task in models:
                    start = time.perf_counter()
                    out = run_model(models[task], case.model_input, args.tile)
                    seconds[f"{task}/model"] = seconds.get(f"{task}/model", 0.0) + (
                        time.perf_counter() - start
                    )
                    rows["model"][photo] = score(out, case.clean, metric)
            results: dict[str, dict[str, Any]] = {
                m: {"mean": mean_scores(r), "per_photo": r} for m, r in rows.items()
            }
            classical = max(anchors, key=lambda m: results[m]["mean"]["psnr"], default=None)
            severities[severity] = {
                "degradation": str(degrade),
                "tuned": tuned,
                "methods": results,
                "best_classical": classical,
            }
            row: dict[str, Any] = {"task": task, "severity": severity}
            row.update({m: results[m]["mean"]["psnr"] for m in results})
            table.append(row)
            print(
                f"{task} {severity}: "
                + ", ".join(f"{m} {results[m]['mean']['psnr']:.2f}" for m in results),
                file=sys.stderr,
            )
        tasks[task] = {
            "metric": {"rgb": True, **metric},
            "methods": {"input": _input_note(task), **{m: ANCHORS[m].note for m in anchors}},
            "severities": severities,
        }
        if task in models:
            tasks[task]["methods"]["model"] = (
                f"{ckpts[task]}: load_module(...).map_for_inference, blind, "
                f"restore_image(tile={args.tile or None}, overlap=32), clamped"
            )
    report = {
        "benchmark": "tasks",
        "photos": {n: list(image.shape[-2:]) for n, image in held.items()},
        "validation_photos": {n: list(image.shape[-2:]) for n, image in val.items()},
        "crop": args.crop,
        "tune_crop": args.tune_crop,
        "inputs": "the library's degradation at fixed parameters, clipped and rounded to 8 bits; "
        "seed per (seed, task, severity, photo); validation copies use other seeds",
        "tuning": "per task and severity, a grid search of each anchor's parameters on the "
        "validation photos (mean RGB PSNR); never on the held-out photos",
        "metrics": "PSNR (dB) / SSIM per photo and mean per severity: RGB, and BT.601 luma "
        "(psnr_y, ssim_y) where conf/task/<task>.yaml scores it; its crop_border",
        "seed": args.seed,
        "threads": args.threads,
        "cpu": hardware.cpu_summary(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "table_psnr": table,
        "tasks": tasks,
    }
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


def _input_note(task: str) -> str:
    if task == "sr":
        return "bicubic x4 up-sampling (torch, as Downscale(upsample=True)) of the 8-bit x4 " + (
            "bicubic-down-sampled image, 8-bit: the model's input"
        )
    return "the degraded photo itself, 8-bit"


if __name__ == "__main__":
    main()
