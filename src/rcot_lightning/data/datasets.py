"""Map-style datasets that yield the rows of the batch contract (:mod:`rcot_lightning.contract`).

Training datasets draw a random crop and one of the 8 flip/rot90 modes per item, and the
degradation's randomness, from a generator seeded by ``(seed, epoch, index)``: a run is
reproducible, every epoch differs, and worker processes or ranks never repeat each other's
randomness (ranks and workers see disjoint indices). Index them with a :class:`SampleKey`
(what :class:`~rcot_lightning.data.sampling.ShardedSampler` yields) or a plain int (epoch 0).

Evaluation datasets return full-size images (or a centre crop) and seed any synthetic
degradation by ``(seed, image name)``, so every epoch and every rank sees the same validation set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from rcot_lightning.contract import CLEAN, DEGRADATION, DEGRADED, NAME, PAIRED, SAMPLE_KEY, TARGET
from rcot_lightning.data.sources import Crop, ImageList, PairSource, crop_image, dihedral
from rcot_lightning.errors import RCOTError
from rcot_lightning.seeding import derive_seed
from rcot_lightning.seeding import seeded_generator as _generator
from rcot_lightning.values import positive_int, probability

__all__ = [
    "EvalDataset",
    "PairedDataset",
    "SampleKey",
    "SemiPairedDataset",
    "UnpairedDataset",
    "derive_seed",
    "paired_subset",
    "random_crop",
    "sample_key",
]


class SampleKey(NamedTuple):
    """The index of an item and the epoch it is drawn in."""

    item: int
    epoch: int = 0


def random_crop(
    size: tuple[int, int], patch: int, generator: torch.Generator, where: str = "image"
) -> Crop:
    """A uniformly placed ``patch`` x ``patch`` window of an image of ``size`` (H, W).

    Raises:
        RCOTError: the image is smaller than the patch.

    Example:
        >>> random_crop((10, 20), 8, torch.Generator().manual_seed(0))
        Crop(top=2, left=2, height=8, width=8)
    """
    h, w = size
    if h < patch or w < patch:
        raise RCOTError(
            f"{where} is {h}x{w}, smaller than data.crops.patch_size={patch}; lower "
            "data.crops.patch_size or remove the image"
        )
    top = int(torch.randint(h - patch + 1, (1,), generator=generator))
    left = int(torch.randint(w - patch + 1, (1,), generator=generator))
    return Crop(top, left, patch, patch)


def center_crop(size: tuple[int, int], patch: int | None) -> Crop | None:
    """The central ``patch`` x ``patch`` window, clipped to the image; ``None`` keeps it whole.

    Example:
        >>> center_crop((300, 451), 256)
        Crop(top=22, left=97, height=256, width=256)
    """
    if patch is None:
        return None
    h, w = size
    ch, cw = min(h, patch), min(w, patch)
    return Crop((h - ch) // 2, (w - cw) // 2, ch, cw)


class _Item(NamedTuple):
    """One drawn training item: its degraded crop and what drew it."""

    degraded: Tensor
    #: The matching target crop; None when the source has no targets.
    target: Tensor | None
    degradation: int
    #: The item's generator, for anything else the item draws (an unpaired clean crop).
    generator: torch.Generator
    #: The item's ``sample_key``.
    key: int
    #: The source index of the pair.
    source_index: int


class _TrainDataset(Dataset[dict[str, Tensor]]):
    """Shared by the training datasets: length, keys, per-item generators, crops and modes."""

    #: Training mode named when the source has no targets (None: targets are not needed).
    needs_targets: ClassVar[str | None] = None

    def __init__(
        self,
        source: PairSource,
        patch_size: int,
        length: int | None = None,
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        if self.needs_targets and not source.has_targets:
            raise RCOTError(
                f"{self.needs_targets} training needs targets; this source has degraded images only"
            )
        positive_int(patch_size, "data.crops.patch_size", keyed=True)
        positive_int(length, "data.samples_per_epoch", allow_none=True, keyed=True)
        self.source = source
        self.patch_size = patch_size
        self.length = len(source) if length is None else length
        self.seed = seed
        self.augment = augment
        _check_sizes(source, patch_size)

    def __len__(self) -> int:
        return self.length

    def _start(self, key: int | SampleKey) -> tuple[int, torch.Generator, int]:
        """The source index of an item, its generator seeded by (seed, epoch, index), and its
        ``sample_key``."""
        index, epoch = key if isinstance(key, tuple) else (int(key), 0)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        return (
            index % len(self.source),
            _generator(self.seed, epoch, index),
            sample_key(self.seed, epoch, index),
        )

    def _view(
        self, size: tuple[int, int], generator: torch.Generator, where: str
    ) -> tuple[Crop, int]:
        crop = random_crop(size, self.patch_size, generator, where)
        mode = int(torch.randint(8, (1,), generator=generator)) if self.augment else 0
        return crop, mode

    def _draw(self, key: int | SampleKey) -> _Item:
        """The item ``key``: a random view (crop and flip/rot90 mode) of its pair, degraded."""
        index, generator, row_key = self._start(key)
        crop, mode = self._view(self.source.size(index), generator, self.source.describe(index))
        degraded, target, degradation = self.source.pair(index, crop, mode, generator)
        return _Item(degraded, target, degradation, generator, row_key, index)


def _check_sizes(images: PairSource | ImageList, patch_size: int) -> None:
    """Fail at setup, not mid-epoch in a worker, when an image is smaller than the patch."""
    small = [
        f"{images.describe(i)} ({images.size(i)[0]}x{images.size(i)[1]})"
        for i in range(len(images))
        if min(images.size(i)) < patch_size
    ]
    if small:
        raise RCOTError(
            f"{len(small)} images are smaller than data.crops.patch_size={patch_size}: "
            f"{', '.join(small[:5])}{', ...' if len(small) > 5 else ''}; lower "
            "data.crops.patch_size or remove them"
        )


def sample_key(seed: int, epoch: int, index: int) -> int:
    """The ``sample_key`` of training item ``index`` in ``epoch``: the same in every process.

    It depends on neither the rank nor the world size, so a sample drawn by one of two DDP
    processes has the key it has in a single-process run.

    Example:
        >>> sample_key(0, 1, 5) == sample_key(0, 1, 5) != sample_key(0, 2, 5)
        True
    """
    return derive_seed("sample", seed, epoch, index)


def _row(
    degraded: Tensor, clean: Tensor, target: Tensor, paired: bool, degradation: int, key: int
) -> dict[str, Tensor]:
    return {
        DEGRADED: degraded,
        CLEAN: clean,
        TARGET: target,
        PAIRED: torch.tensor(paired),
        DEGRADATION: torch.tensor(degradation, dtype=torch.long),
        SAMPLE_KEY: torch.tensor(key, dtype=torch.long),
    }


class PairedDataset(_TrainDataset):
    """Paired training crops: ``clean`` is the target itself and every row is ``paired``.

    Args:
        source: pairs with targets (folders or synthesised).
        patch_size: side of the square random crop.
        length: items per epoch (``None``: one per pair); item ``i`` uses pair ``i % len``.
        seed: base seed of the per-item generators.
        augment: apply a random flip/rot90 mode, identically to both images.

    Example:
        >>> from rcot_lightning.data.degradations import GaussianNoise
        >>> from rcot_lightning.data.sources import MemoryImages, Synthesized
        >>> clean = MemoryImages({"a": torch.rand(3, 32, 32)})
        >>> data = PairedDataset(Synthesized(clean, GaussianNoise(25)), patch_size=16, length=4)
        >>> row = data[SampleKey(item=3, epoch=1)]
        >>> row["degraded"].shape, bool(row["paired"]), int(row["degradation"])
        (torch.Size([3, 16, 16]), True, 0)
    """

    needs_targets = "paired"

    def __getitem__(self, key: int | SampleKey) -> dict[str, Tensor]:
        item = self._draw(key)
        assert item.target is not None  # checked in __init__
        return _row(item.degraded, item.target, item.target, True, item.degradation, item.key)


class UnpairedDataset(_TrainDataset):
    """Unpaired training crops: ``clean`` is an independent crop of an independently drawn image.

    ``target`` is zeros (same shape, so batches collate) and ``paired`` is False; targets the
    source may have are ignored.

    Args:
        degraded: where the degraded crops come from (a degraded folder, or clean images
            degraded on the fly).
        clean: the clean images, drawn uniformly at random for each item.
        patch_size, length, seed, augment: as :class:`PairedDataset`.

    Example:
        >>> from rcot_lightning.data.sources import DegradedOnly, MemoryImages
        >>> degraded = DegradedOnly(MemoryImages({"y": torch.zeros(3, 16, 16)}))
        >>> clean = MemoryImages({"x1": torch.ones(3, 16, 16), "x2": torch.ones(3, 20, 20)})
        >>> row = UnpairedDataset(degraded, clean, patch_size=8)[0]
        >>> row["clean"].mean().item(), bool(row["paired"]), row["target"].shape
        (1.0, False, torch.Size([3, 8, 8]))
    """

    def __init__(
        self,
        degraded: PairSource,
        clean: ImageList,
        patch_size: int,
        length: int | None = None,
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        super().__init__(degraded, patch_size, length, seed, augment)
        _check_sizes(clean, patch_size)
        self.clean = clean

    def __getitem__(self, key: int | SampleKey) -> dict[str, Tensor]:
        degraded, _, degradation, generator, row_key, _ = self._draw(key)
        j = int(torch.randint(len(self.clean), (1,), generator=generator))
        clean_crop, clean_mode = self._view(self.clean.size(j), generator, self.clean.describe(j))
        clean = dihedral(crop_image(self.clean.load(j), clean_crop), clean_mode)
        return _row(degraded, clean, torch.zeros_like(clean), False, degradation, row_key)


def paired_subset(groups: Sequence[int], paired_fraction: float, seed: int) -> list[int]:
    """The pairs of a semi-paired training set that keep their targets: a seeded draw.

    Pairs that share a group (RESIDE: several hazy images per clear one; a photo and its
    downscaled copies) show one scene, so ``round(paired_fraction * scenes)`` whole groups are
    drawn, by ``seed`` alone (not the epoch or the rank). Supervised training on "the same
    pairs" uses this subset too, so the two see the same targets.

    Args:
        groups: the group of every pair, e.g. ``range(n)`` when no two pairs share a scene.
        paired_fraction: fraction in [0, 1] of groups whose pairs are chosen.
        seed: the draw's seed.

    Returns:
        The chosen pair indices, sorted.

    Example:
        >>> paired_subset([0, 0, 1, 2, 3], 0.5, seed=0) == paired_subset([0, 0, 1, 2, 3], 0.5, 0)
        True
        >>> len(paired_subset(range(10), 0.3, seed=1)), paired_subset([0, 0, 1], 1.0, seed=0)
        (3, [0, 1, 2])
    """
    probability(paired_fraction, "data.paired_fraction", keyed=True)
    groups = list(groups)
    scenes = sorted(set(groups))
    n_paired = round(float(paired_fraction) * len(scenes))
    order = torch.randperm(len(scenes), generator=_generator(seed, "paired subset"))
    chosen = {scenes[int(i)] for i in order[:n_paired]}
    return sorted(i for i, g in enumerate(groups) if g in chosen)


class SemiPairedDataset(_TrainDataset):
    """A fixed, seeded fraction of the pairs keeps its targets; the rest is used unpaired.

    The paired subset depends only on ``seed`` and the number of pairs (not on the epoch or the
    rank). Unpaired rows get ``target`` zeros, ``paired`` False and, as ``clean``, the target of
    another pair drawn uniformly (never their own, so no pairing information leaks).

    Args:
        source: pairs with targets.
        paired_fraction: fraction in [0, 1] of pairs that keep their target (rounded).
        patch_size, length, seed, augment: as :class:`PairedDataset`.

    Example:
        >>> from rcot_lightning.data.sources import FolderPairs, MemoryImages
        >>> images = MemoryImages({str(i): torch.rand(3, 8, 8) for i in range(10)})
        >>> data = SemiPairedDataset(FolderPairs(images, images), 0.3, patch_size=8)
        >>> len(data.paired_indices), sum(bool(data[i]["paired"]) for i in range(10))
        (3, 3)
    """

    needs_targets = "semi-paired"

    def __init__(
        self,
        source: PairSource,
        paired_fraction: float,
        patch_size: int,
        length: int | None = None,
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        super().__init__(source, patch_size, length, seed, augment)
        groups = list(getattr(source, "groups", range(len(source))))
        scenes = sorted(set(groups))
        members: dict[int, list[int]] = {}
        for i, group in enumerate(groups):
            members.setdefault(group, []).append(i)
        self.paired_indices = paired_subset(groups, paired_fraction, seed)
        if len(self.paired_indices) < len(groups) and len(scenes) < 2:
            raise RCOTError("semi-paired training needs at least 2 training images")
        self._paired = set(self.paired_indices)
        self._groups, self._scenes, self._members = groups, scenes, members
        self._position = {group: k for k, group in enumerate(scenes)}

    def __getitem__(self, key: int | SampleKey) -> dict[str, Tensor]:
        degraded, target, degradation, generator, row_key, index = self._draw(key)
        assert target is not None  # checked in __init__
        if index in self._paired:
            return _row(degraded, target, target, True, degradation, row_key)
        own = self._position[self._groups[index]]
        scene = int(torch.randint(len(self._scenes) - 1, (1,), generator=generator))
        scene += int(scene >= own)  # skip our own scene, so its target never leaks
        candidates = self._members[self._scenes[scene]]
        pick = 0
        if len(candidates) > 1:
            pick = int(torch.randint(len(candidates), (1,), generator=generator))
        other = candidates[pick]
        clean_crop, clean_mode = self._view(
            self.source.size(other), generator, self.source.describe(other)
        )
        clean = self.source.target(other, clean_crop, clean_mode)
        return _row(degraded, clean, torch.zeros_like(target), False, degradation, row_key)


class EvalDataset(Dataset[dict[str, Any]]):
    """Full-size (or centre-cropped) images for validation, test and prediction.

    Rows are ``{"degraded", "target", "name"}``, or ``{"degraded", "name"}`` when the source has
    no targets (prediction). A synthetic degradation is seeded by ``(seed, name)``, so the
    degraded set is the same in every epoch, on every rank and in every worker.

    Args:
        source: the pairs (or degraded images).
        seed: base seed of the per-image generators.
        crop_size: centre-crop side (clipped to the image); ``None`` keeps full size.
        targets: include ``target`` (False for prediction batches).
        prefix: put before every name (e.g. ``"kodak24/"`` when several sets are evaluated).

    Example:
        >>> from rcot_lightning.data.degradations import GaussianNoise
        >>> from rcot_lightning.data.sources import MemoryImages, Synthesized
        >>> clean = MemoryImages({"cat": torch.rand(3, 30, 40)})
        >>> data = EvalDataset(Synthesized(clean, GaussianNoise(25)), crop_size=16)
        >>> row = data[0]
        >>> row["name"], row["degraded"].shape, torch.equal(row["degraded"], data[0]["degraded"])
        ('cat', torch.Size([3, 16, 16]), True)
    """

    def __init__(
        self,
        source: PairSource,
        seed: int = 0,
        crop_size: int | None = None,
        targets: bool = True,
        prefix: str = "",
    ) -> None:
        positive_int(crop_size, "data.crops.val_crop_size", allow_none=True, keyed=True)
        self.prefix = prefix
        self.source = source
        self.targets = targets
        self.seed = seed
        self.crop_size = crop_size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        index = key[0] if isinstance(key, tuple) else int(key)
        name = self.source.names[index]
        crop = center_crop(self.source.size(index), self.crop_size)
        degraded, target, _ = self.source.pair(index, crop, 0, _generator(self.seed, "eval", name))
        row: dict[str, Any] = {DEGRADED: degraded, NAME: self.prefix + name}
        if target is not None and self.targets:
            row[TARGET] = target
        return row
