"""More training variety from the embedded photos: generated images, several scales, unpaired.

The default data are four scikit-image photos, too little variety for a denoiser to generalise
(docs/quality.md measures it). :class:`VarietyDataModule` keeps the sample photos'
validation and test split and widens the training set with:

* ``dead_leaves``: that many textured dead-leaves images (:mod:`rcot_lightning.data.dead_leaves`),
  generated from ``seed``, no file and no download;
* ``scales``: downscaled copies of the training photos (antialiased), so a crop sees the same
  content at several sizes, as multi-scale random crops would;
* ``unpaired``: unpaired training with degraded and clean crops from *disjoint* images: every
  image (photo, scaled copy and generated image alike, a photo's scaled copies going with it)
  is assigned by a seeded draw to the degraded or the clean side, never both, so no clean crop
  shows the content of a degraded one;
* ``paired_fraction``: semi-paired training, a seeded fraction of the images keeps its targets
  and the rest is used unpaired with clean crops of other images
  (:class:`~rcot_lightning.data.datasets.SemiPairedDataset`, as ``data=semipaired`` does for
  folders); with ``paired_only`` the unpaired rest is dropped, which trains supervised on exactly
  the pairs that semi-paired training of the same seed has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rcot_lightning.data.datamodules import SamplesDataModule
from rcot_lightning.data.datasets import (
    PairedDataset,
    SemiPairedDataset,
    UnpairedDataset,
    derive_seed,
    paired_subset,
)
from rcot_lightning.data.dead_leaves import DeadLeavesImages
from rcot_lightning.data.degradations import Degradation
from rcot_lightning.data.samples import TRAIN_PHOTOS, load_photo
from rcot_lightning.data.sources import ImageList, MemoryImages, Subset, Synthesized
from rcot_lightning.errors import RCOTError

__all__ = ["ConcatImages", "VarietyDataModule"]


class ConcatImages(ImageList):
    """Several image lists read as one (names must not repeat).

    Example:
        >>> a = MemoryImages({"a": torch.zeros(3, 2, 2)})
        >>> b = MemoryImages({"b": torch.ones(3, 4, 4)})
        >>> both = ConcatImages([a, b])
        >>> both.names, both.size(1)
        (['a', 'b'], (4, 4))
    """

    def __init__(self, parts: Sequence[ImageList]) -> None:
        self.parts = list(parts)
        self.index = [(p, i) for p in self.parts for i in range(len(p))]
        self.names = [p.names[i] for p, i in self.index]
        if len(set(self.names)) != len(self.names):
            raise RCOTError(f"duplicate image names in {self.names}")
        self.location = " + ".join(p.location for p in self.parts)

    def size(self, index: int) -> tuple[int, int]:
        part, i = self.index[index]
        return part.size(i)

    def load(self, index: int) -> torch.Tensor:
        part, i = self.index[index]
        return part.load(i)

    def describe(self, index: int) -> str:
        part, i = self.index[index]
        return part.describe(i)


def _scaled_photos(names: Sequence[str], scales: Sequence[float]) -> MemoryImages:
    """The named photos at each scale (1 keeps the photo), antialiased bilinear resize."""
    images: dict[str, torch.Tensor] = {}
    for name in names:
        photo = load_photo(name)
        for scale in scales:
            if scale == 1:
                images[name] = photo
                continue
            h, w = (round(d * scale) for d in photo.shape[-2:])
            small = F.interpolate(
                photo[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False
            )
            images[f"{name}@{scale:g}"] = small[0].clamp(0, 1)
    return MemoryImages(images, location="scikit-image photos (data.train_images, data.scales)")


class VarietyDataModule(SamplesDataModule):
    """The sample photos plus generated images and scaled copies, paired or unpaired.

    Validation and test are :class:`SamplesDataModule`'s (``val_images``, default chelsea and
    coffee); only training changes.

    Args:
        dead_leaves: number of generated dead-leaves training images (0: none), drawn at
            set-up.
        dead_leaves_size: their side in pixels.
        scales: the training photos are used at each of these scales (``[1.0]``: as they are).
        unpaired: draw degraded and clean crops independently, from disjoint images.
        paired_fraction: semi-paired training: this fraction in [0, 1] of the training images
            (a photo with its scaled copies counts once), drawn by ``seed``, keeps its targets;
            ``None``: every image is paired (or none, with ``unpaired``).
        paired_only: train on the paired fraction's images alone (supervised, all rows paired).
        train_images: the photos to train on; ``[]`` trains on generated images only.
        kwargs: the options of :class:`SamplesDataModule`.

    Example:
        >>> dm = VarietyDataModule(dead_leaves=2, dead_leaves_size=40, scales=[1.0, 0.5],
        ...                        train_images=["astronaut"], unpaired=True,
        ...                        crops={"patch_size": 32},
        ...                        samples_per_epoch=4, batch_size=2)
        >>> dm.setup("fit")
        >>> sides = dm.split
        >>> sorted(sides[0] + sides[1])
        ['astronaut', 'astronaut@0.5', 'dead_leaves_0_0', 'dead_leaves_0_1']
        >>> bool(next(iter(dm.train_dataloader()))["paired"].any())
        False
        >>> semi = VarietyDataModule(dead_leaves=9, dead_leaves_size=40, train_images=["astronaut"],
        ...                          paired_fraction=0.2, crops={"patch_size": 32},
        ...                          samples_per_epoch=4)
        >>> semi.setup("fit")
        >>> len(semi.paired_names)
        2
    """

    def __init__(
        self,
        *,
        dead_leaves: int = 0,
        dead_leaves_size: int = 256,
        scales: Sequence[float] = (1.0,),
        unpaired: bool = False,
        paired_fraction: float | None = None,
        paired_only: bool = False,
        train_images: Sequence[str] = TRAIN_PHOTOS,
        **kwargs: Any,
    ) -> None:
        if isinstance(dead_leaves, bool) or not isinstance(dead_leaves, int) or dead_leaves < 0:
            raise RCOTError(f"data.dead_leaves must be an integer >= 0, got {dead_leaves!r}")
        scales = [float(s) for s in scales]
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise RCOTError(f"data.scales must be a non-empty list in (0, 1], got {scales!r}")
        if paired_fraction is not None and unpaired:
            raise RCOTError(
                "data.paired_fraction and data.unpaired=true exclude each other: semi-paired "
                "training already uses the images outside the fraction unpaired; drop one"
            )
        if paired_only and paired_fraction is None:
            raise RCOTError(
                "data.paired_only=true needs data.paired_fraction (the fraction of images kept)"
            )
        train_images = list(train_images)
        if not train_images and dead_leaves == 0:
            raise RCOTError(
                "data.train_images is empty and data.dead_leaves is 0: no training data"
            )
        # SamplesDataModule refuses an empty list; generated-only training passes it none.
        super().__init__(train_images=train_images or TRAIN_PHOTOS[:1], **kwargs)
        self.train_images = train_images
        self.dead_leaves = dead_leaves
        self.dead_leaves_size = dead_leaves_size
        self.scales = scales
        self.unpaired = unpaired
        self.paired_fraction = paired_fraction
        self.paired_only = paired_only
        #: (degraded names, clean names) of an unpaired split, once built.
        self.split: tuple[list[str], list[str]] | None = None
        #: The images that keep their targets in semi-paired training, once built.
        self.paired_names: list[str] | None = None

    def _groups(self) -> tuple[ImageList, list[list[int]]]:
        """All training images and their groups (a photo with its scaled copies is one group)."""
        parts: list[ImageList] = []
        if self.train_images:
            parts.append(_scaled_photos(self.train_images, self.scales))
        if self.dead_leaves:
            generated = DeadLeavesImages(self.dead_leaves, self.dead_leaves_size, self.seed)
            # Draw them all now, at set-up (about 0.5 CPU s per 256 x 256 image), not lazily in
            # the first epochs: a CPU budget or a speed measurement then covers training alone,
            # every training mode pays the same, and worker processes inherit the images.
            for i in range(len(generated)):
                generated.load(i)
            parts.append(generated)
        images = ConcatImages(parts)
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(images.names):
            groups.setdefault(name.split("@")[0], []).append(i)
        return images, list(groups.values())

    def build_train(self) -> Dataset[Any]:
        images, groups = self._groups()
        degradation = self.require_degradation("data")
        if self.paired_fraction is not None:
            return self._semi_paired(images, groups, degradation)
        if not self.unpaired:
            return PairedDataset(
                Synthesized(images, degradation),
                self.patch_size,
                self.samples_per_epoch,
                self.seed,
                self.augment,
            )
        if len(groups) < 2:
            raise RCOTError(
                "data.unpaired needs at least 2 distinct training images to split into degraded "
                "and clean sides; add data.train_images or data.dead_leaves"
            )
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "variety split"))
        order = torch.randperm(len(groups), generator=generator).tolist()
        half = len(order) // 2
        degraded_side = Subset(images, [i for g in order[:half] for i in groups[g]])
        clean_side = Subset(images, [i for g in order[half:] for i in groups[g]])
        self.split = (degraded_side.names, clean_side.names)
        return UnpairedDataset(
            Synthesized(degraded_side, degradation),
            clean_side,
            self.patch_size,
            self.samples_per_epoch,
            self.seed,
            self.augment,
        )

    def _semi_paired(
        self, images: ImageList, groups: list[list[int]], degradation: Degradation
    ) -> Dataset[Any]:
        """Semi-paired training, or with ``paired_only`` supervised training on its pairs."""
        assert self.paired_fraction is not None
        scene = [0] * len(images)
        for g, members in enumerate(groups):
            for i in members:
                scene[i] = g
        chosen = paired_subset(scene, self.paired_fraction, self.seed)
        self.paired_names = [images.names[i] for i in chosen]
        if not self.paired_only:
            return SemiPairedDataset(
                Synthesized(images, degradation, scene),
                self.paired_fraction,
                self.patch_size,
                self.samples_per_epoch,
                self.seed,
                self.augment,
            )
        if not chosen:
            raise RCOTError(
                f"data.paired_fraction={self.paired_fraction} of {len(groups)} training images "
                "keeps none; raise it or add data.dead_leaves"
            )
        return PairedDataset(
            Synthesized(Subset(images, chosen), degradation),
            self.patch_size,
            self.samples_per_epoch,
            self.seed,
            self.augment,
        )
