"""Data: degradations, image files, datasets and DataModules (knows nothing of the model).

Names are imported lazily, so ``import rcot_lightning.data.degradations`` does not import
Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rcot_lightning.data.allinone import AllInOneDataModule, MixtureDataset
    from rcot_lightning.data.datamodules import (
        PairedFolderDataModule,
        RestorationDataModule,
        SamplesDataModule,
        SemiPairedDataModule,
        SyntheticDataModule,
        UnpairedDataModule,
    )
    from rcot_lightning.data.datasets import (
        EvalDataset,
        PairedDataset,
        SampleKey,
        SemiPairedDataset,
        UnpairedDataset,
    )
    from rcot_lightning.data.degradations import (
        DEGRADATIONS,
        JPEG,
        Chain,
        Degradation,
        Downscale,
        GaussianBlur,
        GaussianNoise,
        Haze,
        LowLight,
        MotionBlur,
        OneOf,
        RainStreaks,
        build_degradation,
    )
    from rcot_lightning.data.images import read_image
    from rcot_lightning.data.pairing import PairingRule
    from rcot_lightning.data.sampling import ShardedSampler

_LAZY = {
    "rcot_lightning.data.allinone": ("AllInOneDataModule", "MixtureDataset"),
    "rcot_lightning.data.pairing": ("PairingRule",),
    "rcot_lightning.data.datamodules": (
        "PairedFolderDataModule",
        "RestorationDataModule",
        "SamplesDataModule",
        "SemiPairedDataModule",
        "SyntheticDataModule",
        "UnpairedDataModule",
    ),
    "rcot_lightning.data.datasets": (
        "EvalDataset",
        "PairedDataset",
        "SampleKey",
        "SemiPairedDataset",
        "UnpairedDataset",
    ),
    "rcot_lightning.data.degradations": (
        "DEGRADATIONS",
        "JPEG",
        "Chain",
        "Degradation",
        "Downscale",
        "GaussianBlur",
        "GaussianNoise",
        "Haze",
        "LowLight",
        "MotionBlur",
        "OneOf",
        "RainStreaks",
        "build_degradation",
    ),
    "rcot_lightning.data.images": ("read_image",),
    "rcot_lightning.data.sampling": ("ShardedSampler",),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "DEGRADATIONS",
    "JPEG",
    "AllInOneDataModule",
    "Chain",
    "Degradation",
    "Downscale",
    "EvalDataset",
    "GaussianBlur",
    "GaussianNoise",
    "Haze",
    "LowLight",
    "MixtureDataset",
    "MotionBlur",
    "OneOf",
    "PairedDataset",
    "PairedFolderDataModule",
    "PairingRule",
    "RainStreaks",
    "RestorationDataModule",
    "SampleKey",
    "SamplesDataModule",
    "SemiPairedDataModule",
    "SemiPairedDataset",
    "ShardedSampler",
    "SyntheticDataModule",
    "UnpairedDataModule",
    "UnpairedDataset",
    "build_degradation",
    "read_image",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'rcot_lightning.data' has no attribute {name!r}")
