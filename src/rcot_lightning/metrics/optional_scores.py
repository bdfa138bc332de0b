"""The optional scores of ``rcot-eval``: LPIPS per image, FID/KID per set."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

# Looked up on the module at each use, so that one place (a test's stand-in, a user's own
# weights loader) can replace a probe for every caller.
from rcot_lightning.metrics import pretrained_probes as probes
from rcot_lightning.metrics.distribution import RandomFeatureDistances
from rcot_lightning.metrics.fidelity import metric_device
from rcot_lightning.shapes import as_rgb

__all__ = ["OptionalScores"]


def _rgb(images: Tensor, device: torch.device) -> Tensor:
    """Float RGB images on ``device`` for the pretrained metrics (one channel is repeated)."""
    return as_rgb(images).float().to(device)


class OptionalScores:
    """The optional scores of ``rcot-eval``: LPIPS per image, FID/KID per set.

    Each is a column of the table and of ``metrics.csv`` when asked for; a score that cannot run
    here (pretrained weights absent: nothing is ever downloaded) or not on this set (too few
    images or patches) leaves its cells empty and adds a line to :attr:`notes`.

    Args:
        fid: FID and KID of 64x64 patches in random-conv features
            (:class:`~rcot_lightning.metrics.RandomFeatureDistances`), and the Inception-v3 FID
            of the whole images when its weights are present.
        lpips: LPIPS (AlexNet) of each image when torchvision and its weights are present.
        inception_weights: a local copy of torch-fidelity's Inception weights, if not in the
            torch hub cache.
    """

    def __init__(self, fid: bool, lpips: bool, inception_weights: str | None = None) -> None:
        #: One line per score skipped, and why.
        self.notes: list[str] = []
        #: Per-image columns (their set mean in the mean row).
        self.image_columns: list[str] = []
        #: Per-set columns (in the mean row only).
        self.set_columns: list[str] = []
        self.lpips: Any = None
        self.distances: RandomFeatureDistances | None = None
        self.inception: Any = None
        self._inception_images = 0
        if lpips:
            self.image_columns.append("lpips")
            status = probes.lpips_available()
            if status:
                self.lpips = probes.lpips()
            else:
                self.notes.append(f"LPIPS skipped: {status.reason}")
        if fid:
            self.set_columns += ["fid", "kid", "fid_inception"]
            self.distances = RandomFeatureDistances()
            status = probes.inception_fid_available(inception_weights)
            if status:
                self.inception = probes.inception_fid(inception_weights)
            else:
                self.notes.append(f"Inception FID skipped: {status.reason}")
            self.notes.append(
                "FID rf, KID rf: random-conv features of 64x64 patches (offline; comparable "
                "between runs of rcot-eval and benchmarks/quality.py only, not with Inception FID)"
            )

    @property
    def columns(self) -> list[str]:
        return self.image_columns + self.set_columns

    def update(self, restored: Tensor, target: Tensor) -> dict[str, list[float | None]]:
        """Add a batch to the set's distances; the per-image scores of the batch."""
        if self.distances is not None:
            self.distances.update(restored, target)
        device = metric_device(restored)
        if self.inception is not None:
            self.inception.to(device)
            self.inception.update(_rgb(target, device), real=True)
            self.inception.update(_rgb(restored, device), real=False)
            self._inception_images += len(restored)
        per_image: dict[str, list[float | None]] = {}
        if "lpips" in self.image_columns:
            if self.lpips is None:
                per_image["lpips"] = [None] * len(restored)
            else:
                self.lpips.to(device)
                restored, target = _rgb(restored, device), _rgb(target, device)
                per_image["lpips"] = [
                    float(self.lpips(restored[i : i + 1], target[i : i + 1]))
                    for i in range(len(restored))
                ]
        return per_image

    def compute(self, label: str) -> dict[str, float | None]:
        """The set's distances (``label`` names it in notes); then start the next set empty."""
        scores: dict[str, float | None] = dict.fromkeys(self.set_columns)
        if self.distances is not None:
            try:
                scores |= self.distances.compute()
            except ValueError as err:
                self.notes.append(f"FID/KID skipped for {label}: {err}")
            self.distances.reset()
        if self.inception is not None:
            if self._inception_images < 2:
                self.notes.append(
                    f"Inception FID skipped for {label}: needs at least 2 images, got "
                    f"{self._inception_images}"
                )
            else:
                scores["fid_inception"] = float(self.inception.compute())
            self.inception.reset()
            self._inception_images = 0
        return scores
