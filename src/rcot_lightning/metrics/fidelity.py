"""Per-image fidelity scores with the conventions of the restoration field (BasicSR).

PSNR and SSIM are computed **per image** (the caller averages over the set, never one pooled
MSE), optionally on the BT.601 luma channel (studio range 16-235) and with ``crop_border``
pixels shaved from every side. SSIM uses the standard 11x11 Gaussian window (sigma 1.5) with
'valid' filtering, so it matches ``skimage.metrics.structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)`` and BasicSR's ``calculate_ssim``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rcot_lightning.errors import ArgumentError
from rcot_lightning.shapes import check_images, check_same_shape

__all__ = ["metric_device", "psnr", "rgb_to_y", "score_images", "ssim"]

# PSNR of identical images is +inf; one such image would turn the set mean into inf, so the MSE
# is floored at this fraction of data_range**2, which caps PSNR at 100 dB.
_MSE_FLOOR = 1e-10


def metric_device(x: Tensor) -> torch.device:
    """Where to compute scores of ``x``: its device, or the CPU for MPS (which has no float64)."""
    return torch.device("cpu") if x.device.type == "mps" else x.device


def _work_dtype(x: Tensor) -> torch.dtype:
    # MPS has no float64; everywhere else the extra precision is free at metric sizes.
    return torch.float32 if x.device.type == "mps" else torch.float64


def _prepare(
    x: Tensor, data_range: float, crop_border: int, y_channel: bool, dtype: torch.dtype
) -> Tensor:
    x = x.to(dtype)
    if y_channel:
        x = rgb_to_y(x / data_range) * data_range
    if crop_border > 0:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
    return x


def _prepared_pair(
    pred: Tensor,
    target: Tensor,
    data_range: float,
    crop_border: int,
    y_channel: bool,
    min_size: int,
) -> tuple[Tensor, Tensor]:
    """Check a (pred, target) pair and bring both to the compared form (dtype, Y, crop)."""
    check_same_shape("pred", pred, "target", target)
    if y_channel and pred.shape[1] != 3:
        raise ArgumentError(
            "y_channel", f"=True needs RGB images (C == 3), got C == {pred.shape[1]}"
        )
    if crop_border < 0:
        raise ArgumentError("crop_border", f"must be >= 0, got {crop_border}")
    h, w = pred.shape[-2:]
    if min(h, w) - 2 * crop_border < min_size:
        raise ArgumentError(
            "crop_border", f"={crop_border} leaves less than {min_size} pixels of a {h}x{w} image"
        )
    if data_range <= 0:
        raise ArgumentError("data_range", f"must be > 0, got {data_range}")
    dtype = _work_dtype(pred)
    return (
        _prepare(pred, data_range, crop_border, y_channel, dtype),
        _prepare(target, data_range, crop_border, y_channel, dtype),
    )


def rgb_to_y(x: Tensor) -> Tensor:
    r"""Luma of BT.601 in studio range, as BasicSR's ``rgb2ycbcr(..., y_only=True)``.

    .. math::
        Y = \frac{16 + 65.481 R + 128.553 G + 24.966 B}{255}

    for R, G, B in [0, 1], so Y lies in [16/255, 235/255].

    Args:
        x: RGB images in [0, 1], shape :math:`(B, 3, H, W)`.

    Returns:
        Y channel, shape :math:`(B, 1, H, W)`, same dtype as ``x``.

    Example:
        >>> white, black = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
        >>> (rgb_to_y(torch.cat([white, black])) * 255).round().flatten(1)
        tensor([[235., 235., 235., 235.],
                [ 16.,  16.,  16.,  16.]])
    """
    check_images(x, "x", channels=3)
    weights = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return (16.0 + (x * weights).sum(dim=1, keepdim=True)) / 255.0


def psnr(
    pred: Tensor,
    target: Tensor,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> Tensor:
    r"""Peak signal-to-noise ratio of each image, in dB.

    .. math::
        \text{PSNR} = 10 \log_{10} \frac{L^2}{\max(\text{MSE}, 10^{-10} L^2)}

    with :math:`L` the data range and the MSE over one image's channels and pixels. Computed in
    float64. Unlike BasicSR (which returns ``inf`` for identical images) the MSE is floored so
    that PSNR is at most 100 dB and the mean over a set stays finite.

    Args:
        pred: restored images, shape :math:`(B, C, H, W)`.
        target: ground truth, shape :math:`(B, C, H, W)`.
        data_range: ``max - min`` of the pixel scale (1.0 for [0, 1], 255 for [0, 255]).
        crop_border: pixels shaved from each side before comparing (super-resolution convention).
        y_channel: compare the BT.601 luma (16-235) instead of RGB; needs ``C == 3``.

    Returns:
        PSNR per image, shape :math:`(B,)`, float64.

    Example:
        >>> x = torch.zeros(2, 3, 8, 8)
        >>> psnr(x + 0.1, x)
        tensor([20.0000, 20.0000], dtype=torch.float64)
    """
    p, t = _prepared_pair(pred, target, data_range, crop_border, y_channel, min_size=1)
    mse = (p - t).pow(2).flatten(1).mean(dim=1)
    peak = float(data_range) ** 2
    return 10.0 * torch.log10(peak / mse.clamp_min(_MSE_FLOOR * peak))


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).expand(channels, 1, size, size).contiguous()


def ssim(
    pred: Tensor,
    target: Tensor,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> Tensor:
    r"""Structural similarity of each image (Wang et al. 2004), standard Gaussian window.

    .. math::
        \text{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
                           {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
        \quad C_1 = (0.01 L)^2,\ C_2 = (0.03 L)^2

    with local statistics from an 11x11 Gaussian window (sigma 1.5) over the 'valid' region only
    (no padding), averaged over pixels and then over channels, as scikit-image and BasicSR do.
    Computed in float64.

    Args:
        pred: restored images, shape :math:`(B, C, H, W)`, H and W at least 11 after cropping.
        target: ground truth, shape :math:`(B, C, H, W)`.
        data_range: ``max - min`` of the pixel scale.
        crop_border: pixels shaved from each side before comparing.
        y_channel: compare the BT.601 luma (16-235) instead of RGB; needs ``C == 3``.

    Returns:
        SSIM per image, shape :math:`(B,)`, float64; 1 for identical images.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ssim(x, x)
        tensor([1., 1.], dtype=torch.float64)
    """
    size, sigma = 11, 1.5
    x, y = _prepared_pair(pred, target, data_range, crop_border, y_channel, min_size=size)
    channels = x.shape[1]
    window = _gaussian_window(size, sigma, channels, x)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=channels)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(2).mean(dim=2).mean(dim=1)


def score_images(
    restored: Tensor,
    target: Tensor,
    *,
    degraded: Tensor | None = None,
    y_channel: bool = False,
    crop_border: int = 0,
    also_y: bool = False,
) -> dict[str, Tensor]:
    """PSNR and SSIM of each image with a task's conventions: the scoring of val, test and eval.

    Args:
        restored: restored images in [0, 1], shape :math:`(B, C, H, W)`.
        target: ground truth, same shape.
        degraded: the network's input, scored against ``target`` too (clamped to [0, 1] first,
            the input as a viewer sees it); omitted: no ``*_input`` scores.
        y_channel: score the BT.601 luma instead of RGB.
        crop_border: pixels shaved from each side before scoring.
        also_y: with RGB scores, also score the luma (``psnr_y``, ``ssim_y``).

    Returns:
        Per-image scores, each of shape :math:`(B,)`, float64, in this order: ``psnr``, ``ssim``,
        then ``psnr_input``, ``ssim_input`` when ``degraded`` is given, then ``psnr_y``,
        ``ssim_y`` when ``also_y`` and not ``y_channel``.

    Example:
        >>> x = torch.zeros(2, 3, 16, 16)
        >>> list(score_images(x + 0.1, x, degraded=x + 0.2, also_y=True))
        ['psnr', 'ssim', 'psnr_input', 'ssim_input', 'psnr_y', 'ssim_y']
    """
    crop = crop_border
    scores = {
        "psnr": psnr(restored, target, crop_border=crop, y_channel=y_channel),
        "ssim": ssim(restored, target, crop_border=crop, y_channel=y_channel),
    }
    if degraded is not None:
        degraded = degraded.clamp(0, 1)
        scores["psnr_input"] = psnr(degraded, target, crop_border=crop, y_channel=y_channel)
        scores["ssim_input"] = ssim(degraded, target, crop_border=crop, y_channel=y_channel)
    if also_y and not y_channel:
        scores["psnr_y"] = psnr(restored, target, crop_border=crop, y_channel=True)
        scores["ssim_y"] = ssim(restored, target, crop_border=crop, y_channel=True)
    return scores
