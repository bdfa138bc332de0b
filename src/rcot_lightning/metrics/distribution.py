"""Distribution metrics: FID and KID of torchmetrics with a pluggable ``feature`` network.

With random-conv features (:class:`RandomFeatureDistances`) they work offline, no pretrained
weights needed; the Inception-v3 FID is in :mod:`rcot_lightning.metrics.pretrained_probes`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rcot_lightning.errors import ArgumentError, RCOTError
from rcot_lightning.metrics.fidelity import metric_device
from rcot_lightning.shapes import as_rgb, check_same_shape

__all__ = [
    "PooledFeatures",
    "RandomFeatureDistances",
    "RandomFeatures",
    "feature_fid",
    "feature_kid",
    "image_patches",
]


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
        raise ArgumentError("images", "must hold at least one image")
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
            raise RCOTError(
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
