"""Where images come from: named image lists, and sources of (degraded, target) pairs.

An :class:`ImageList` is a list of named images (a folder of files, or tensors in memory). A
:class:`PairSource` turns one into pairs for the datasets, cropping and flipping the degraded
image and its target identically:

* :class:`FolderPairs`: a degraded folder and a target folder matched by file stem;
* :class:`Synthesized`: clean images degraded on the fly by a
  :class:`~rcot_lightning.data.degradations.Degradation`;
* :class:`DegradedOnly`: degraded images without targets (unpaired training, prediction).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from rcot_lightning.contract import DegradationId
from rcot_lightning.data.degradations import Degradation
from rcot_lightning.data.folders import find_images, resolve_folders
from rcot_lightning.data.images import image_size, read_image
from rcot_lightning.data.pairing import PairingRule, match_names
from rcot_lightning.errors import ArgumentError, MissingExtraError, RCOTError

__all__ = [
    "Crop",
    "DegradedOnly",
    "FolderImages",
    "FolderPairs",
    "ImageList",
    "MemoryImages",
    "Pair",
    "PairSource",
    "Synthesized",
    "crop_image",
    "dihedral",
]


class Crop(NamedTuple):
    """A window ``[top : top + height, left : left + width]`` of an image."""

    top: int
    left: int
    height: int
    width: int


def crop_image(image: Tensor, crop: Crop | None) -> Tensor:
    """The ``crop`` window of ``image`` ``(..., H, W)``; ``None`` returns it whole."""
    if crop is None:
        return image
    return image[..., crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]


def dihedral(image: Tensor, mode: int) -> Tensor:
    """One of the 8 flip/rot90 modes: ``mode % 4`` quarter turns, then a flip if ``mode >= 4``.

    Args:
        image: ``(..., H, W)``.
        mode: 0 (identity) to 7.

    Example:
        >>> x = torch.arange(4.0).view(1, 2, 2)
        >>> dihedral(x, 1).tolist(), dihedral(x, 4).tolist()
        ([[[1.0, 3.0], [0.0, 2.0]]], [[[1.0, 0.0], [3.0, 2.0]]])
    """
    out = torch.rot90(image, mode % 4, dims=(-2, -1)) if mode % 4 else image
    return torch.flip(out, dims=(-1,)) if mode >= 4 else out


class ImageList(ABC):
    """Named images readable as ``(3, H, W)`` float32 tensors in [0, 1]."""

    names: list[str]
    #: Where the images are (a folder, or a description), for error messages.
    location: str
    #: Names of unreadable files that were skipped (only with ``skip_bad_images``).
    skipped: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.names)

    @abstractmethod
    def size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of image ``index``, known without decoding it."""

    @abstractmethod
    def load(self, index: int) -> Tensor:
        """Image ``index`` as ``(3, H, W)`` float32 in [0, 1]."""

    @abstractmethod
    def describe(self, index: int) -> str:
        """The image's file path (or a description) for error messages."""


class FolderImages(ImageList):
    """The images of one or more folders, read lazily; names are file stems.

    Sizes are read from file headers at construction, so a file that is not an image fails
    early. Truncated files are found when decoded, unless ``skip_bad_images`` decodes every
    file up front, drops the bad ones and warns with their count and names.

    Args:
        directory: the folder, or a folder spec of :mod:`rcot_lightning.data.folders`
            (alternatives, globs, relative to ``root``).
        key: the config key of the folder, for error messages.
        skip_bad_images: skip unreadable files (with a warning) instead of raising.
        recursive: include sub-folders (names are relative paths without extension).
        root: the dataset root relative specs start from.
        layout: the expected layout, named in error messages.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 6)).save(folder / "a.png")
        >>> images = FolderImages(folder, "data.train_dir")
        >>> images.names, images.size(0), images.load(0).shape
        (['a'], (6, 8), torch.Size([3, 6, 8]))
    """

    def __init__(
        self,
        directory: Any,
        key: str,
        skip_bad_images: bool = False,
        recursive: bool = False,
        root: str | Path | None = None,
        layout: str | None = None,
    ) -> None:
        folders = resolve_folders(directory, key, root, layout)
        found = find_images(folders, key, recursive)
        self.location = ", ".join(str(f.path) for f in folders)
        self.files: list[Path] = []
        self.names = []
        self.sizes: list[tuple[int, int]] = []
        bad: list[Path] = []
        for name, path in found:
            if skip_bad_images:
                try:
                    self.sizes.append(tuple(read_image(path).shape[-2:]))  # type: ignore[arg-type]
                except MissingExtraError:
                    raise
                except RCOTError:
                    bad.append(path)
                    continue
            else:
                self.sizes.append(image_size(path))
            self.files.append(path)
            self.names.append(name)
        if bad:
            listed = ", ".join(p.name for p in bad[:10]) + (", ..." if len(bad) > 10 else "")
            warnings.warn(
                f"{key}: skipped {len(bad)} of {len(found)} unreadable images in "
                f"{self.location}: {listed}",
                stacklevel=2,
            )
        if not self.files:
            raise RCOTError(f"{key}: no readable images in {self.location}")
        bad_set = set(bad)
        self.skipped = frozenset(name for name, path in found if path in bad_set)

    def size(self, index: int) -> tuple[int, int]:
        return self.sizes[index]

    def load(self, index: int) -> Tensor:
        return read_image(self.files[index])

    def describe(self, index: int) -> str:
        return str(self.files[index])


class MemoryImages(ImageList):
    """Images held in memory, e.g. the embedded sample photos.

    Args:
        images: name -> ``(3, H, W)`` float tensor in [0, 1].
        location: a description for error messages.

    Example:
        >>> images = MemoryImages({"grey": torch.full((3, 4, 5), 0.5)})
        >>> images.names, images.size(0)
        (['grey'], (4, 5))
    """

    def __init__(self, images: Mapping[str, Tensor], location: str = "memory") -> None:
        if not images:
            raise RCOTError(f"no images given ({location})")
        self.names = list(images)
        self.images = [images[name] for name in self.names]
        self.location = location

    def size(self, index: int) -> tuple[int, int]:
        h, w = self.images[index].shape[-2:]
        return int(h), int(w)

    def load(self, index: int) -> Tensor:
        return self.images[index]

    def describe(self, index: int) -> str:
        return f"{self.names[index]!r} ({self.location})"


class Subset(ImageList):
    """A view of some images of another list, e.g. one half of a clean folder.

    Example:
        >>> images = MemoryImages({n: torch.zeros(3, 2, 2) for n in "abc"})
        >>> Subset(images, [2, 0]).names
        ['c', 'a']
    """

    def __init__(self, base: ImageList, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(indices)
        self.names = [base.names[i] for i in self.indices]
        self.location = base.location

    def size(self, index: int) -> tuple[int, int]:
        return self.base.size(self.indices[index])

    def load(self, index: int) -> Tensor:
        return self.base.load(self.indices[index])

    def describe(self, index: int) -> str:
        return self.base.describe(self.indices[index])


class Pair(NamedTuple):
    """A degraded image, its target (``None`` when unknown) and its degradation id."""

    degraded: Tensor
    target: Tensor | None
    degradation: int


class PairSource(ABC):
    """Indexable (degraded, target) pairs with identical crops and flips on both images."""

    names: list[str]
    #: Whether :meth:`target` is available.
    has_targets: bool = True

    def __len__(self) -> int:
        return len(self.names)

    @abstractmethod
    def size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of pair ``index`` (both images have it)."""

    @abstractmethod
    def describe(self, index: int) -> str:
        """The pair's file (or a description) for error messages."""

    @abstractmethod
    def pair(
        self, index: int, crop: Crop | None, mode: int, generator: torch.Generator | None
    ) -> Pair:
        """Pair ``index``, cropped then transformed by :func:`dihedral` ``mode``.

        ``generator`` drives any random degradation, so a seeded generator reproduces a pair.
        """

    @abstractmethod
    def target(self, index: int, crop: Crop | None, mode: int) -> Tensor:
        """The target of pair ``index`` alone, cropped and transformed like :meth:`pair`."""


class FolderPairs(PairSource):
    """Degraded and target images matched by file stem (``rain/12.png`` with ``clean/12.jpg``),
    or by :mod:`pairing rules <rcot_lightning.data.pairing>` when the names differ.

    Args:
        degraded: the degraded images.
        target: their ground truth.
        degradation_id: the id every pair is tagged with.
        rules: pairing rules (none: identical stems).
        many_to_one: allow several degraded images per target (RESIDE's hazy images).
        scale: the degraded images are ``scale`` times smaller than their targets and are
            bicubic-upsampled to the target size when loaded (DIV2K's LR images); ``None``:
            both have the same size.

    Raises:
        RCOTError: some names have no partner (all are listed), or a pair's sizes differ.

    Example:
        >>> deg = MemoryImages({"a": torch.zeros(3, 4, 4)}, "deg")
        >>> tgt = MemoryImages({"a": torch.ones(3, 4, 4)}, "tgt")
        >>> pair = FolderPairs(deg, tgt).pair(0, None, 0, None)
        >>> pair.degraded.mean().item(), pair.target.mean().item(), pair.degradation
        (0.0, 1.0, 7)
        >>> lr = MemoryImages({"0001x4": torch.zeros(3, 2, 3)}, "lr")
        >>> hr = MemoryImages({"0001": torch.ones(3, 8, 12)}, "hr")
        >>> rule = PairingRule("{id}x4", "{id}")
        >>> FolderPairs(lr, hr, rules=[rule], scale=4).pair(0, None, 0, None).degraded.shape
        torch.Size([3, 8, 12])
    """

    def __init__(
        self,
        degraded: ImageList,
        target: ImageList,
        degradation_id: DegradationId | int = DegradationId.OTHER,
        rules: Sequence[PairingRule] = (),
        many_to_one: bool = False,
        scale: int | None = None,
    ) -> None:
        self.indices = match_names(
            degraded.names,
            target.names,
            rules,
            many_to_one,
            where=(degraded.location, target.location),
            ignore=(degraded.skipped, target.skipped),
        )
        self.degraded = degraded
        self.target_images = target
        self.names = [degraded.names[i] for i, _ in self.indices]
        #: The target index of every pair (pairs sharing a target show the same scene).
        self.groups = [j for _, j in self.indices]
        self.degradation_id = int(degradation_id)
        self.scale = scale
        factor = scale or 1
        mismatched = [
            f"{degraded.describe(i)} is {_hw(degraded.size(i))} but {target.describe(j)} is "
            f"{_hw(target.size(j))}" + (f" (expected {factor}x smaller)" if scale else "")
            for i, j in self.indices
            if tuple(n * factor for n in degraded.size(i)) != target.size(j)
        ]
        if mismatched:
            raise RCOTError(
                f"paired folders: {len(mismatched)} pairs differ in size: "
                f"{'; '.join(mismatched[:3])}{'; ...' if len(mismatched) > 3 else ''}; a "
                "degraded image and its target must have the same size (for super-resolution, "
                "upsample the low-resolution input to the target size, or set data.folders.scale)"
            )

    def size(self, index: int) -> tuple[int, int]:
        return self.target_images.size(self.indices[index][1])

    def describe(self, index: int) -> str:
        return self.degraded.describe(self.indices[index][0])

    def pair(
        self, index: int, crop: Crop | None, mode: int, generator: torch.Generator | None
    ) -> Pair:
        i, _ = self.indices[index]
        image = self.degraded.load(i)
        if self.scale:
            image = upsample(image, self.scale)
        degraded = dihedral(crop_image(image, crop), mode)
        return Pair(degraded, self.target(index, crop, mode), self.degradation_id)

    def target(self, index: int, crop: Crop | None, mode: int) -> Tensor:
        _, j = self.indices[index]
        return dihedral(crop_image(self.target_images.load(j), crop), mode)


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def upsample(image: Tensor, scale: int) -> Tensor:
    """Bicubic ``scale``-times upsampling of ``(3, H, W)`` to ``(3, scale H, scale W)``, clipped.

    Example:
        >>> upsample(torch.rand(3, 2, 3), 4).shape
        torch.Size([3, 8, 12])
    """
    out = torch.nn.functional.interpolate(
        image.unsqueeze(0), scale_factor=scale, mode="bicubic", align_corners=False
    )
    return out[0].clamp(0.0, 1.0)


class Synthesized(PairSource):
    """Clean images degraded on the fly; the clean crop is the target.

    The degradation runs after cropping and flipping, so rain keeps falling downwards.

    Args:
        clean: the clean images.
        degradation: applied to each cropped clean image with the caller's generator.
        groups: the scene of every image (images of one scene, e.g. a photo and its scaled
            copies, share a number), read by semi-paired training; ``None``: one scene each.

    Example:
        >>> from rcot_lightning.data.degradations import GaussianNoise
        >>> clean = MemoryImages({"grey": torch.full((3, 8, 8), 0.5)})
        >>> source = Synthesized(clean, GaussianNoise(sigma=25))
        >>> pair = source.pair(0, Crop(0, 0, 4, 4), 0, torch.Generator().manual_seed(0))
        >>> pair.degraded.shape, pair.degradation
        (torch.Size([3, 4, 4]), 0)
    """

    def __init__(
        self, clean: ImageList, degradation: Degradation, groups: Sequence[int] | None = None
    ) -> None:
        if not isinstance(degradation, Degradation):
            raise RCOTError(
                "data.degradation must be a degradation (a `_target_` node such as "
                f"rcot_lightning.data.degradations.GaussianNoise), got {degradation!r}"
            )
        self.clean = clean
        self.degradation = degradation
        self.names = clean.names
        self.groups = list(range(len(clean))) if groups is None else list(groups)
        if len(self.groups) != len(clean):
            raise ArgumentError("groups", f"has {len(self.groups)} entries for {len(clean)} images")

    def size(self, index: int) -> tuple[int, int]:
        return self.clean.size(index)

    def describe(self, index: int) -> str:
        return self.clean.describe(index)

    def pair(
        self, index: int, crop: Crop | None, mode: int, generator: torch.Generator | None
    ) -> Pair:
        clean = self.target(index, crop, mode)
        degraded, ids = self.degradation.apply(clean.unsqueeze(0), generator)
        return Pair(degraded[0], clean, int(ids[0]))

    def target(self, index: int, crop: Crop | None, mode: int) -> Tensor:
        return dihedral(crop_image(self.clean.load(index), crop), mode)


class DegradedOnly(PairSource):
    """Degraded images with no targets (unpaired training data, images to restore).

    Example:
        >>> source = DegradedOnly(MemoryImages({"a": torch.zeros(3, 4, 4)}))
        >>> source.pair(0, None, 0, None).target is None
        True
    """

    has_targets = False

    def __init__(
        self, images: ImageList, degradation_id: DegradationId = DegradationId.OTHER
    ) -> None:
        self.images = images
        self.names = images.names
        self.degradation_id = int(degradation_id)

    def size(self, index: int) -> tuple[int, int]:
        return self.images.size(index)

    def describe(self, index: int) -> str:
        return self.images.describe(index)

    def pair(
        self, index: int, crop: Crop | None, mode: int, generator: torch.Generator | None
    ) -> Pair:
        return Pair(
            dihedral(crop_image(self.images.load(index), crop), mode), None, self.degradation_id
        )

    def target(self, index: int, crop: Crop | None, mode: int) -> Tensor:
        raise RCOTError(f"{self.images.location} holds degraded images only; it has no targets")
