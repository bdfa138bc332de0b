"""Image-quality metrics: per-image fidelity (PSNR/SSIM), distribution (FID/KID) and the
optional metrics that need pretrained weights (Inception FID, LPIPS), each in its own module.

Every public name is importable from here: ``from rcot_lightning.metrics import score_images``.
"""

from __future__ import annotations

from rcot_lightning.metrics.distribution import (
    PooledFeatures,
    RandomFeatureDistances,
    RandomFeatures,
    feature_fid,
    feature_kid,
    image_patches,
)
from rcot_lightning.metrics.fidelity import metric_device, psnr, rgb_to_y, score_images, ssim
from rcot_lightning.metrics.optional_scores import OptionalScores
from rcot_lightning.metrics.pretrained_probes import (
    MetricAvailability,
    inception_fid,
    inception_fid_available,
    lpips,
    lpips_available,
)

__all__ = [
    "MetricAvailability",
    "OptionalScores",
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
