"""Optional metrics that need pretrained weights: the Inception-v3 FID and LPIPS.

They need packages and weights that are not always present, and this module never downloads
anything: each has a probe (``*_available``) that says, offline, whether it can run and why not.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "MetricAvailability",
    "inception_fid",
    "inception_fid_available",
    "lpips",
    "lpips_available",
]

log = logging.getLogger(__name__)

# Names of the files torch.hub stores the pretrained weights under (torch-fidelity's Inception
# and torchvision's AlexNet, the LPIPS backbone). Present in the hub cache = usable offline.
_INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
_ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"


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
    return _weights_at(
        path,
        "Inception FID",
        f"{_INCEPTION_WEIGHTS} there (or pass its path)",
        "torch-fidelity Inception",
    )


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
    return _weights_at(
        _hub_checkpoint(_ALEXNET_WEIGHTS),
        "LPIPS AlexNet",
        f"{_ALEXNET_WEIGHTS} there",
        "torchvision AlexNet",
    )


def _weights_at(path: str, metric: str, copy: str, found: str) -> MetricAvailability:
    """Whether ``metric``'s weights file is at ``path`` (``found``: whose weights they are); if
    not, the message says what to ``copy`` where."""
    if not os.path.isfile(path):
        return MetricAvailability(
            False,
            f"{metric} weights not found at {path}; downloads are disabled, so copy {copy} to "
            "enable it",
        )
    return MetricAvailability(True, f"{found} weights at {path}")


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
