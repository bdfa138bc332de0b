"""Image-quality metrics with the conventions of the restoration field (BasicSR).

PSNR and SSIM are computed **per image** (the caller averages over the set, never one pooled
MSE), optionally on the BT.601 luma channel (studio range 16-235) and with ``crop_border``
pixels shaved from every side. SSIM uses the standard 11x11 Gaussian window (sigma 1.5) with
'valid' filtering, so it matches ``skimage.metrics.structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)`` and BasicSR's ``calculate_ssim``.

Distribution metrics (FID, KID) wrap torchmetrics with a pluggable ``feature`` network so they
work offline; the Inception-v3 FID and LPIPS are optional: they need packages and pretrained
weights that are not always present, and this module never downloads anything.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rcot_lightning.shapes import as_rgb, check_images, check_same_shape

__all__ = [
    "MetricAvailability",
    "PooledFeatures",
    "RandomFeatureDistances",
    "RandomFeatures",
    "feature_fid",
    "feature_kid",
    "image_patches",
    "inception_fid",
    "inception_fid_available",
    "lpips",
    "lpips_available",
    "metric_device",
    "psnr",
    "rgb_to_y",
    "score_images",
    "ssim",
]

log = logging.getLogger(__name__)

# PSNR of identical images is +inf; one such image would turn the set mean into inf, so the MSE
# is floored at this fraction of data_range**2, which caps PSNR at 100 dB.
_MSE_FLOOR = 1e-10

# Names of the files torch.hub stores the pretrained weights under (torch-fidelity's Inception
# and torchvision's AlexNet, the LPIPS backbone). Present in the hub cache = usable offline.
_INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
_ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"


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
        raise ValueError(f"y_channel=True needs RGB images (C == 3), got C == {pred.shape[1]}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    h, w = pred.shape[-2:]
    if min(h, w) - 2 * crop_border < min_size:
        raise ValueError(
            f"crop_border={crop_border} leaves less than {min_size} pixels of a {h}x{w} image"
        )
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
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


# --------------------------------------------------------------------------------------------
# Distribution metrics
# --------------------------------------------------------------------------------------------


class PooledFeatures(nn.Module):
    """Adapt any image network into a frozen feature extractor for FID/KID.

    torchmetrics expects ``feature(images) -> (N, D)``; this wrapper global-average-pools 4-D
    outputs, runs without gradients and keeps the wrapped network in eval mode (so BatchNorm
    statistics and dropout never change the features), and exposes ``num_features`` so
    torchmetrics does not probe the network with a 299x299 dummy image.

    Args:
        net: maps images :math:`(N, 3, H, W)` in [0, 1] to :math:`(N, D)` or :math:`(N, D, h, w)`.
        num_features: D; found with one forward pass on a ``probe_size`` image when omitted.
        probe_size: side of the probe image used to find ``num_features``.

    Example:
        >>> f = PooledFeatures(nn.Conv2d(3, 5, 3))
        >>> f.num_features, f(torch.rand(2, 3, 16, 16)).shape
        (5, torch.Size([2, 5]))
    """

    def __init__(self, net: nn.Module, num_features: int | None = None, probe_size: int = 64):
        super().__init__()
        self.net = net
        self.net.eval()
        if num_features is None:
            param = next(net.parameters(), None)
            probe = torch.rand(
                1, 3, probe_size, probe_size, device=None if param is None else param.device
            )
            num_features = int(self.forward(probe).shape[-1])
        self.num_features = num_features

    def train(self, mode: bool = True) -> PooledFeatures:
        """Stay in eval mode whatever the parent module asks: features must be deterministic."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Features of ``images`` :math:`(N, 3, H, W)` as :math:`(N, D)`, float32."""
        out = self.net(images)
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out.flatten(1).float()


def _as_feature(feature: nn.Module, num_features: int | None) -> nn.Module:
    if isinstance(feature, PooledFeatures):
        return feature
    return PooledFeatures(feature, num_features=num_features)


def feature_fid(feature: nn.Module, num_features: int | None = None, **kwargs: Any) -> Any:
    r"""Fréchet distance between feature distributions, with any feature network.

    .. math::
        \text{FID} = \|\mu_r - \mu_f\|^2 + \operatorname{tr}\big(\Sigma_r + \Sigma_f
        - 2 (\Sigma_r \Sigma_f)^{1/2}\big)

    A :class:`torchmetrics.image.fid.FrechetInceptionDistance` whose extractor is ``feature``
    (wrapped in :class:`PooledFeatures`), so it works offline. Values are only comparable
    between runs that use the same network and weights; with Inception pool3 features it is the
    usual FID (see :func:`inception_fid`).

    Args:
        feature: images :math:`(N, 3, H, W)` in [0, 1] to :math:`(N, D)` or :math:`(N, D, h, w)`.
        num_features: D, when known (saves a probe forward pass).
        **kwargs: passed to ``FrechetInceptionDistance`` (e.g. ``reset_real_features``).

    Returns:
        The metric: ``update(images, real=bool)`` with float images in [0, 1], at least two
        images per side before ``compute()``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> fid = feature_fid(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
        >>> fid.update(torch.rand(4, 3, 16, 16), real=True)
        >>> fid.update(torch.rand(4, 3, 16, 16) * 0.5, real=False)
        >>> bool(fid.compute() > 0)
        True
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    # normalize=True with a custom extractor passes the float images through unchanged.
    kwargs.setdefault("normalize", True)
    return FrechetInceptionDistance(feature=_as_feature(feature, num_features), **kwargs)


def feature_kid(
    feature: nn.Module,
    num_features: int | None = None,
    subsets: int = 10,
    subset_size: int = 50,
    **kwargs: Any,
) -> Any:
    r"""Kernel (polynomial-MMD) distance between feature distributions, any feature network.

    .. math::
        \text{KID} = \text{MMD}^2_u\big(f(X_r), f(X_f)\big), \quad
        k(a, b) = \big(\tfrac{1}{D} a^\top b + 1\big)^3

    averaged over ``subsets`` random subsets of ``subset_size`` images. Unbiased, so it suits
    the small test sets of restoration better than FID.

    Args:
        feature: images :math:`(N, 3, H, W)` in [0, 1] to :math:`(N, D)` or :math:`(N, D, h, w)`.
        num_features: D, when known (saves a probe forward pass).
        subsets: number of random subsets.
        subset_size: images per subset; at most the number of images on each side.
        **kwargs: passed to :class:`torchmetrics.image.kid.KernelInceptionDistance`.

    Returns:
        The metric; ``compute()`` returns ``(mean, std)`` over subsets.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> kid = feature_kid(nn.Conv2d(3, 4, 3), subsets=2, subset_size=3)
        >>> kid.update(torch.rand(4, 3, 16, 16), real=True)
        >>> kid.update(torch.rand(4, 3, 16, 16), real=False)
        >>> mean, std = kid.compute()
    """
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    kwargs.setdefault("normalize", True)
    with warnings.catch_warnings():
        # torchmetrics warns on every construction that KID keeps all features in memory;
        # that is the documented behaviour and restoration test sets are small.
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        return KernelInceptionDistance(
            feature=_as_feature(feature, num_features),
            subsets=subsets,
            subset_size=subset_size,
            **kwargs,
        )


class RandomFeatures(nn.Module):
    """A fixed, seeded random convolutional network: the offline feature space of FID/KID.

    Four 3x3 convs (3 -> 32 -> 64 -> 64 -> 64 channels, stride 2 after the first), He-normal
    weights drawn from ``torch.Generator().manual_seed(seed)``, ReLU, and global average and
    standard-deviation pooling of the last two layers: 256 features that respond to noise,
    blur and texture. Random conv features need no weights file (nothing to download) and are a
    documented choice for distribution distances of low-level statistics; they are not Inception
    features, so the values are not comparable with any published FID.

    Example:
        >>> RandomFeatures()(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 256])
    """

    num_features = 256

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        widths = [3, 32, 64, 64, 64]
        # Buffers drawn from the seeded generator alone (no nn.Conv2d, whose own initialisation
        # would draw from the global generator), zero biases omitted.
        self.strides = [1 if i == 0 else 2 for i in range(len(widths) - 1)]
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            weight = torch.randn((cout, cin, 3, 3), generator=generator) * math.sqrt(2 / (cin * 9))
            self.register_buffer(f"weight{i}", weight)

    def forward(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` in [0, 1] to ``(N, 256)``."""
        x = images * 2 - 1
        pooled = []
        for i, stride in enumerate(self.strides):
            x = torch.relu(F.conv2d(x, getattr(self, f"weight{i}"), stride=stride, padding=1))
            if i >= 2:
                pooled += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
        return torch.cat(pooled, dim=1)


def image_patches(images: Iterable[Tensor], size: int = 64, stride: int = 32) -> Tensor:
    """All ``size x size`` patches at ``stride`` of ``(C, H, W)`` images, ``(N, C, size, size)``.

    A batch ``(B, C, H, W)`` is an iterable of images. An image smaller than ``size`` on a side
    gives no patch.

    Example:
        >>> image_patches([torch.zeros(3, 96, 64)]).shape
        torch.Size([2, 3, 64, 64])
    """
    out = []
    for image in images:
        channels, height, width = image.shape
        if min(height, width) < size:
            out.append(image.new_empty(0, channels, size, size))
            continue
        tiles = image.unfold(1, size, stride).unfold(2, size, stride)  # (C, nh, nw, s, s)
        out.append(tiles.permute(1, 2, 0, 3, 4).reshape(-1, channels, size, size))
    if not out:
        raise ValueError("image_patches needs at least one image")
    return torch.cat(out)


class RandomFeatureDistances:
    """FID and KID of restored against target images, on patches, in :class:`RandomFeatures` space.

    The offline distribution distances of ``rcot-eval fid=true`` and ``benchmarks/quality.py``:
    every ``size x size`` patch at ``stride`` of each image (one channel is repeated to RGB) is
    embedded once by ``RandomFeatures(seed)``; the restored and the target patches are then
    compared by :func:`feature_fid` and by :func:`feature_kid` (``subsets`` random subsets of
    ``min(max_subset_size, patches)`` patches). Patches make a few whole images a sample large
    enough for a 256-dimensional covariance and need no resizing. Nothing is downloaded; the
    values compare runs of this protocol only, never a published (Inception) FID.

    Features are computed on the images' device (on the CPU for MPS, which has no float64).

    Args:
        size: patch side.
        stride: step between patches.
        subsets: KID subsets.
        max_subset_size: KID subset size when there are more patches.
        seed: seed of the random network and of KID's subsets.

    Example:
        >>> distances = RandomFeatureDistances()
        >>> target = torch.rand(2, 3, 96, 96)
        >>> distances.update(target.flip(-1), target)
        >>> distances.count, sorted(distances.compute())
        (8, ['fid', 'kid'])
    """

    def __init__(
        self,
        size: int = 64,
        stride: int = 32,
        subsets: int = 10,
        max_subset_size: int = 100,
        seed: int = 0,
    ) -> None:
        self.size, self.stride, self.max_subset_size = size, stride, max_subset_size
        self.seed = seed
        self.features = PooledFeatures(RandomFeatures(seed), RandomFeatures.num_features)
        # The metrics get the features, computed once for both: an identity extractor.
        given = PooledFeatures(nn.Identity(), RandomFeatures.num_features)
        self.fid = feature_fid(given)
        self.kid = feature_kid(given, subsets=subsets, subset_size=max_subset_size)
        #: Patches of each side so far.
        self.count = 0

    def _patches(self, images: Tensor, device: torch.device) -> Tensor:
        return image_patches(as_rgb(images).float().to(device), self.size, self.stride)

    def update(self, restored: Tensor, target: Tensor) -> None:
        """Add a batch of restored images and their targets, both :math:`(B, C, H, W)`, C 1 or 3."""
        check_same_shape("restored", restored, "target", target)
        device = metric_device(restored)
        for module in (self.features, self.fid, self.kid):
            module.to(device)
        real = self._patches(target, device)
        if not len(real):
            return
        fake, real = self.features(self._patches(restored, device)), self.features(real)
        for metric in (self.fid, self.kid):
            metric.update(real, real=True)
            metric.update(fake, real=False)
        self.count += len(real)

    def compute(self) -> dict[str, float]:
        """``{"fid": ..., "kid": ...}`` (KID: mean over subsets); needs at least two patches.

        KID's random subsets are drawn with ``seed`` (the global generator is left untouched), so
        the same images give the same KID.
        """
        if self.count < 2:
            raise ValueError(
                f"FID/KID need at least 2 patches of {self.size}x{self.size} per side, got "
                f"{self.count} (an image smaller than {self.size} px on a side gives none)"
            )
        self.kid.subset_size = min(self.max_subset_size, self.count)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, _ = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid_mean)}

    def reset(self) -> None:
        """Forget every image (the next set starts empty)."""
        self.fid.reset()
        self.kid.reset()
        self.count = 0


@dataclass(frozen=True)
class MetricAvailability:
    """Whether an optional metric can run here, and why not. Truthy when available."""

    available: bool
    reason: str

    def __bool__(self) -> bool:
        return self.available


def _hub_checkpoint(filename: str) -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def inception_fid_available(weights_path: str | None = None) -> MetricAvailability:
    """Check, without network access, whether the Inception-v3 FID can be built.

    torchmetrics' default FID needs the ``torch-fidelity`` package and its Inception weights,
    which torch-fidelity would download into the torch hub cache on first use. Both must already
    be present (or ``weights_path`` must name the weights file).

    Args:
        weights_path: a local copy of torch-fidelity's Inception weights, if not in the hub cache.

    Returns:
        A :class:`MetricAvailability`, truthy when the metric can be built offline.

    Example:
        >>> status = inception_fid_available()
        >>> isinstance(status.reason, str)
        True
    """
    if importlib.util.find_spec("torch_fidelity") is None:
        return MetricAvailability(
            False, "Inception FID needs the torch-fidelity package (pip install torch-fidelity)"
        )
    path = weights_path or _hub_checkpoint(_INCEPTION_WEIGHTS)
    if not os.path.isfile(path):
        return MetricAvailability(
            False,
            f"Inception FID weights not found at {path}; downloads are disabled, so copy "
            f"{_INCEPTION_WEIGHTS} there (or pass its path) to enable it",
        )
    return MetricAvailability(True, f"torch-fidelity Inception weights at {path}")


def lpips_available() -> MetricAvailability:
    """Check, without network access, whether LPIPS (AlexNet) can be built.

    torchmetrics ships the LPIPS linear heads but takes the AlexNet backbone of torchvision,
    which downloads ImageNet weights on first use. torchvision must import and the weights must
    be in the torch hub cache.

    Returns:
        A :class:`MetricAvailability`, truthy when the metric can be built offline.

    Example:
        >>> isinstance(lpips_available().available, bool)
        True
    """
    try:
        # Probed by name: the package never depends on torchvision, LPIPS merely can use it.
        importlib.import_module("torchvision")
    except Exception as err:  # an ImportError, or a RuntimeError from a mismatched torch build
        return MetricAvailability(
            False, f"LPIPS needs torchvision, which cannot be imported here ({err})"
        )
    path = _hub_checkpoint(_ALEXNET_WEIGHTS)
    if not os.path.isfile(path):
        return MetricAvailability(
            False,
            f"LPIPS AlexNet weights not found at {path}; downloads are disabled, so copy "
            f"{_ALEXNET_WEIGHTS} there to enable it",
        )
    return MetricAvailability(True, f"torchvision AlexNet weights at {path}")


def inception_fid(weights_path: str | None = None, **kwargs: Any) -> Any | None:
    """The standard FID (Inception-v3 pool3, 2048 features) if it can run offline, else None.

    When unavailable it logs why (see :func:`inception_fid_available`) and returns ``None`` so
    evaluation goes on without it; it never downloads.

    Args:
        weights_path: a local copy of torch-fidelity's Inception weights.
        **kwargs: passed to ``FrechetInceptionDistance``.

    Returns:
        The metric (``update(images, real=bool)`` with float images in [0, 1]), or ``None``.

    Example:
        >>> fid = inception_fid()  # None here unless torch-fidelity and its weights are present
    """
    status = inception_fid_available(weights_path)
    if not status:
        log.warning("Skipping Inception FID: %s", status.reason)
        return None
    from torchmetrics.image.fid import FrechetInceptionDistance

    kwargs.setdefault("normalize", True)
    return FrechetInceptionDistance(
        feature=2048, feature_extractor_weights_path=weights_path, **kwargs
    )


def lpips(**kwargs: Any) -> Any | None:
    """LPIPS (AlexNet) if it can run offline, else None (after logging why).

    Args:
        **kwargs: passed to ``LearnedPerceptualImagePatchSimilarity``.

    Returns:
        The metric (``update(pred, target)`` with float images in [0, 1]), or ``None``.

    Example:
        >>> metric = lpips()  # None here unless torchvision and its AlexNet weights are present
    """
    status = lpips_available()
    if not status:
        log.warning("Skipping LPIPS: %s", status.reason)
        return None
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    kwargs.setdefault("net_type", "alex")
    kwargs.setdefault("normalize", True)
    return LearnedPerceptualImagePatchSimilarity(**kwargs)
