"""Pictures of restoration results as tensors: grids, residual maps, residual spectra.

Everything returns float images in [0, 1], shape ``(3, H, W)`` or ``(B, 3, H, W)``, the format
TensorBoard's ``add_image`` and wandb take; :func:`to_uint8_hwc` and :func:`save_png` turn one
into a file. Torch only (PIL is imported when saving), no torchvision.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from rcot_lightning.errors import ArgumentError
from rcot_lightning.shapes import as_rgb, check_images

__all__ = [
    "comparison_grid",
    "log_spectrum",
    "make_grid",
    "residual_image",
    "save_png",
    "to_uint8_hwc",
]


def make_grid(
    images: Tensor | Sequence[Tensor],
    nrow: int = 8,
    padding: int = 2,
    pad_value: float = 1.0,
) -> Tensor:
    """Tile images row-major into one picture, ``nrow`` images per row.

    Args:
        images: a tensor :math:`(N, C, H, W)` or a list of :math:`(B_i, C, H, W)` tensors
            (concatenated along the batch), C in {1, 3} (grey is repeated to RGB), all of the
            same H, W.
        nrow: images per row of the grid.
        padding: pixels of ``pad_value`` between images and around the grid.
        pad_value: the separator colour.

    Returns:
        The grid, shape :math:`(3, H_g, W_g)`, float32.

    Example:
        >>> make_grid([torch.zeros(2, 3, 4, 4), torch.ones(1, 1, 4, 4)], nrow=2).shape
        torch.Size([3, 14, 14])
    """
    parts = [images] if isinstance(images, Tensor) else list(images)
    if not parts:
        raise ArgumentError("images", "must hold at least one image")
    rgb = [as_rgb(p.detach()).float().cpu() for p in parts]
    sizes = {tuple(p.shape[-2:]) for p in rgb}
    if len(sizes) != 1:
        raise ArgumentError("images", f"must share one (H, W), got {sorted(sizes)}")
    if nrow < 1:
        raise ArgumentError("nrow", f"must be >= 1, got {nrow}")
    batch = torch.cat(rgb)
    n, _, h, w = batch.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = torch.full(
        (3, rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad_value)
    )
    for k in range(n):
        top = padding + (k // cols) * (h + padding)
        left = padding + (k % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = batch[k]
    return grid


def comparison_grid(columns: Sequence[Tensor], padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """One row per image, one column per kind (e.g. degraded | restored | target).

    Args:
        columns: :math:`(B, C, H, W)` tensors of equal B, H, W, one per column.
        padding: pixels between cells.
        pad_value: the separator colour.

    Returns:
        The grid, shape :math:`(3, B (H + p) + p, K (W + p) + p)` for K columns.

    Example:
        >>> comparison_grid([torch.zeros(2, 3, 4, 4)] * 3, padding=1).shape
        torch.Size([3, 11, 16])
    """
    if not columns:
        raise ArgumentError("columns", "must hold at least one tensor")
    batches = {c.shape[0] for c in columns}
    if len(batches) != 1:
        raise ArgumentError("columns", f"must have the same batch size, got {sorted(batches)}")
    rgb = [as_rgb(c.detach()).float().cpu() for c in columns]
    interleaved = torch.stack(rgb, dim=1).flatten(0, 1)
    return make_grid(interleaved, nrow=len(columns), padding=padding, pad_value=pad_value)


def residual_image(r: Tensor, gain: float | None = None) -> Tensor:
    r"""Map a signed residual to [0, 1] for display: mid-grey is zero.

    .. math::
        v = \operatorname{clamp}(0.5 + g\, r,\ 0,\ 1),\quad
        g = \frac{0.5}{\max |r|} \text{ per image when no gain is given}

    Args:
        r: residuals :math:`(B, C, H, W)`, e.g. ``y - T(y)``.
        gain: fixed contrast; None stretches each image's largest magnitude to the full range.

    Returns:
        Display images, shape :math:`(B, C, H, W)`, float32 in [0, 1].

    Example:
        >>> residual_image(torch.tensor([-0.2, 0.0, 0.1]).view(1, 1, 1, 3)).flatten()
        tensor([0.0000, 0.5000, 0.7500])
    """
    check_images(r, "r")
    r = r.detach().float()
    if gain is None:
        peak = r.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        scale: Tensor | float = 0.5 / peak
    else:
        scale = gain
    return (0.5 + r * scale).clamp(0.0, 1.0)


def log_spectrum(r: Tensor) -> Tensor:
    r"""Log-magnitude of the centred 2-D Fourier transform, as a grey RGB image.

    .. math::
        S = \operatorname{norm}_{[0,1]}\Big(\tfrac{1}{C}\sum_c
            \log\big(1 + |\operatorname{fftshift}(\mathcal{F} r_c)|\big)\Big)

    The zero frequency sits in the centre. Min-max normalised per image. This is where the
    residual's degradation signature shows: flat for white noise, concentrated for rain streaks
    or blur.

    Args:
        r: residuals or images :math:`(B, C, H, W)`.

    Returns:
        Spectra, shape :math:`(B, 3, H, W)`, float32 in [0, 1].

    Example:
        >>> s = log_spectrum(torch.ones(1, 3, 8, 8))
        >>> s.shape, s[0, 0, 4, 4].item(), s[0, 0, 0, 0].item()
        (torch.Size([1, 3, 8, 8]), 1.0, 0.0)
    """
    check_images(r, "r")
    # FFT in float32: half-precision FFTs are unsupported on CPU and limited on GPU.
    spectrum = torch.fft.fftshift(torch.fft.fft2(r.detach().float(), norm="ortho"), dim=(-2, -1))
    mag = torch.log1p(spectrum.abs()).mean(dim=1, keepdim=True)
    lo = mag.amin(dim=(2, 3), keepdim=True)
    hi = mag.amax(dim=(2, 3), keepdim=True)
    return ((mag - lo) / (hi - lo).clamp_min(1e-12)).expand(-1, 3, -1, -1).contiguous()


def to_uint8_hwc(t: Tensor) -> Tensor:
    """Convert a [0, 1] image to ``uint8`` height-width-channel layout for saving.

    Args:
        t: one image :math:`(C, H, W)` or :math:`(1, C, H, W)`, float in [0, 1] (clamped).

    Returns:
        Shape :math:`(H, W, C)`, dtype uint8, on the CPU.

    Example:
        >>> to_uint8_hwc(torch.full((3, 2, 5), 0.5)).shape
        torch.Size([2, 5, 3])
    """
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise ArgumentError("t", f"must be (C, H, W) or (1, C, H, W), got shape {tuple(t.shape)}")
    return (t.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu()


def save_png(t: Tensor, path: str | os.PathLike[str]) -> str:
    """Write a [0, 1] image to a PNG file, creating parent folders.

    Args:
        t: one image :math:`(C, H, W)` or :math:`(1, C, H, W)`, C in {1, 3}.
        path: destination file.

    Returns:
        The path written, as a string.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = save_png(torch.rand(3, 4, 4), pathlib.Path(d) / "a" / "x.png")
        ...     os.path.isfile(p)
        True
    """
    from PIL import Image

    arr = to_uint8_hwc(t).numpy()
    image = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    image.save(path)
    return path
