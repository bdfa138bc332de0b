"""The option groups of the data modules as small typed values, and the options that moved.

:class:`FolderSpec` says where a dataset's folders are and how their images pair
(``data.folders.root``, ``data.folders.pairing``, ...), :class:`CropSpec` the training and
validation crops (``data.crops.patch_size``, ...), :class:`LoaderSpec` how the loaders run
(``data.loader.num_workers``, ...). Each is a frozen dataclass checked when it is built, given
as an instance, or as a plain mapping (what Hydra builds from a config, or a Python user
writes). The data modules keep plain values only. Options of earlier versions are listed in
:data:`RENAMED_OPTIONS` with their spelling today: a data module given one, and a command line
that overrides one, say so in one line. Imports no Lightning.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rcot_lightning.contract import DegradationId
from rcot_lightning.errors import ArgumentError, RCOTError
from rcot_lightning.values import as_settings, flag, positive_int

__all__ = [
    "RENAMED_OPTIONS",
    "CropSpec",
    "FolderSpec",
    "LoaderSpec",
    "as_spec",
    "refuse_options",
    "renamed_hint",
]

#: The name this module gave :func:`rcot_lightning.values.as_settings` (one helper builds every
#: option group from a mapping: the data's specs and the module's settings).
as_spec = as_settings


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """The crops of training and validation images (``data.crops``).

    Args:
        patch_size: side of the square training crops.
        val_crop_size: centre-crop validation images to this side (``None``: full size; test
            images are never cropped).
        augment: one of the 8 flip/rot90 modes per training crop, drawn with its seed.

    Raises:
        ArgumentError: a field has a bad value (the message names the field).

    Example:
        >>> CropSpec(patch_size=64, val_crop_size=128)
        CropSpec(patch_size=64, val_crop_size=128, augment=True)
        >>> CropSpec(patch_size=-1)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: patch_size must be a positive integer, got -1
    """

    patch_size: int = 128
    val_crop_size: int | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        positive_int(self.patch_size, "patch_size")
        positive_int(self.val_crop_size, "val_crop_size", allow_none=True)
        flag(self.augment, "augment")


@dataclasses.dataclass(frozen=True)
class LoaderSpec:
    """How the data loaders run (``data.loader``); the training batch is ``data.batch_size``.

    Args:
        num_workers: loader worker processes per device (0 loads in the main process);
            ``"auto"``: at most 4, never more than the CPUs per device leave beside the training
            process (:func:`~rcot_lightning.data.datamodules.auto_workers`).
        pin_memory: pin batches in page-locked memory; ``None`` pins exactly when the trainer
            uses a CUDA GPU.
        val_batch_size: validation/test/predict batch size (keep 1 unless sizes are equal).

    Raises:
        ArgumentError: a field has a bad value (the message names the field).

    Example:
        >>> LoaderSpec(num_workers="auto")
        LoaderSpec(num_workers='auto', pin_memory=None, val_batch_size=1)
        >>> LoaderSpec(num_workers=-1)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: num_workers must be an integer >= 0 or auto, got -1
    """

    num_workers: int | str = 0
    pin_memory: bool | None = None
    val_batch_size: int = 1

    def __post_init__(self) -> None:
        workers = self.num_workers
        if workers != "auto" and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
        ):
            raise ArgumentError("num_workers", f"must be an integer >= 0 or auto, got {workers!r}")
        if self.pin_memory is not None:
            flag(self.pin_memory, "pin_memory")
        positive_int(self.val_batch_size, "val_batch_size")


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    """Where a dataset's folders are and how their images are read, paired and tagged
    (``data.folders``; see :mod:`rcot_lightning.data.folders` for the folder specs themselves).

    Args:
        root: the dataset root; relative folders (and folder specs with mirror variants) are
            found under it (``None``: the working directory).
        layout: the layout the folders are expected in, quoted by every folder error.
        pairing: pairing rules for folder pairs whose names differ (one ``{degraded, target}``
            mapping or a list of them, see :mod:`rcot_lightning.data.pairing`); ``None``
            matches identical stems.
        many_to_one: allow several degraded images per target (RESIDE).
        recursive: images in sub-folders count too (named by relative path).
        scale: degraded folder images are this many times smaller than their targets and are
            bicubic-upsampled to the target size (DIV2K x4 LR images).
        degradation_id: the id folder images are tagged with (``"rain"``, ``"haze"``, an int;
            ``None``: the data's degradation's id, else ``"other"``).
        skip_bad_images: skip unreadable image files with a warning instead of raising.

    Raises:
        ArgumentError: a field has a bad value (the message names the field).

    Example:
        >>> FolderSpec(root="~/data", pairing={"degraded": "rain-{id}", "target": "norain-{id}"})
        ... # doctest: +ELLIPSIS
        FolderSpec(root='~/data', layout=None, pairing={'degraded': 'rain-{id}', ...)
        >>> FolderSpec(scale=0)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: scale must be a positive integer or null, got 0
    """

    root: str | None = None
    layout: str | None = None
    pairing: Any = None
    many_to_one: bool = False
    recursive: bool = False
    scale: int | None = None
    degradation_id: str | int | None = None
    skip_bad_images: bool = False

    def __post_init__(self) -> None:
        from rcot_lightning.data.degradations import resolve_degradation_id
        from rcot_lightning.data.pairing import as_rules

        if isinstance(self.root, Path):
            object.__setattr__(self, "root", str(self.root))
        if self.root is not None and (not isinstance(self.root, str) or not self.root):
            raise ArgumentError("root", f"must be a folder or null, got {self.root!r}")
        if self.layout is not None and not isinstance(self.layout, str):
            raise ArgumentError("layout", f"must be a text or null, got {self.layout!r}")
        try:
            as_rules(self.pairing, "pairing")
        except RCOTError as err:
            text = str(err)
            raise ArgumentError("pairing", text[len("pairing") :].lstrip(" ")) from None
        flag(self.many_to_one, "many_to_one")
        flag(self.recursive, "recursive")
        positive_int(self.scale, "scale", allow_none=True)
        resolve_degradation_id(self.degradation_id, DegradationId.OTHER, "degradation_id")
        flag(self.skip_bad_images, "skip_bad_images")

    @property
    def rules(self) -> list[Any]:
        """The pairing rules (:func:`~rcot_lightning.data.pairing.as_rules`)."""
        from rcot_lightning.data.pairing import as_rules

        return as_rules(self.pairing, "data.folders.pairing")


_EVAL = "(a folder of targets, or {degraded: ..., target: ...})"

#: Options of earlier versions and their spelling today; passing one is an error that says so.
RENAMED_OPTIONS: dict[str, str] = {
    "val_target_dir": f"data.val_sets {_EVAL}",
    "val_degraded_dir": f"data.val_sets {_EVAL}",
    "test_target_dir": f"data.test_sets {_EVAL}",
    "test_degraded_dir": f"data.test_sets {_EVAL}",
    **{
        field.name: f"data.{group}.{field.name}"
        for group, spec in (("folders", FolderSpec), ("crops", CropSpec), ("loader", LoaderSpec))
        for field in dataclasses.fields(spec)
    },
}


def refuse_options(options: Mapping[str, Any], where: str = "data") -> None:
    """Raise for options a data module does not take; a renamed one names its new spelling.

    Example:
        >>> refuse_options({"val_target_dir": "clean/"})
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: data.val_target_dir was removed; use data.val_sets \
(a folder of targets, or {degraded: ..., target: ...}) instead
    """
    for key in options:
        if key in RENAMED_OPTIONS:
            raise RCOTError(f"{where}.{key} was removed; use {RENAMED_OPTIONS[key]} instead")
        raise RCOTError(f"{where}.{key} is not an option of this data module")


def renamed_hint(message: str) -> str | None:
    """The new spelling of an old data key a failed command-line override names, if any.

    Example:
        >>> renamed_hint("Could not override 'data.test_target_dir'.")
        'data.test_target_dir was removed; use data.test_sets (a folder of targets, or \
{degraded: ..., target: ...}) instead'
    """
    found = re.search(r"Could not override '(data(?:\.tasks\.\w+)?)\.(\w+)'", message)
    if found is None or found.group(2) not in RENAMED_OPTIONS:
        return None
    where, old = found.groups()
    new = RENAMED_OPTIONS[old].replace("data.", f"{where}.", 1)
    return f"{where}.{old} was removed; use {new} instead"
