"""VarietyDataModule: generated images and scaled photos join the training set; unpaired sides
are disjoint; the config composes; bad options fail with the key's name."""

from __future__ import annotations

import re

import pytest
import torch

from rcot_lightning.data.variety import VarietyDataModule
from rcot_lightning.errors import RCOTError


def _module(**kwargs: object) -> VarietyDataModule:
    options: dict[str, object] = {
        "dead_leaves": 4,
        "dead_leaves_size": 48,
        "train_images": ["astronaut", "rocket"],
        "patch_size": 32,
        "samples_per_epoch": 4,
        "batch_size": 2,
        "val_crop_size": 32,
    }
    options.update(kwargs)
    return VarietyDataModule(**options)  # type: ignore[arg-type]


def test_paired_training_draws_from_photos_scaled_copies_and_generated_images() -> None:
    dm = _module(scales=[1.0, 0.5])
    dm.setup("fit")
    names = dm.datasets["train"].source.names  # type: ignore[attr-defined]
    assert names[:4] == ["astronaut", "astronaut@0.5", "rocket", "rocket@0.5"]
    assert [n for n in names if n.startswith("dead_leaves")] == [
        f"dead_leaves_0_{i}" for i in range(4)
    ]
    batch = next(iter(dm.train_dataloader()))
    assert bool(batch["paired"].all())
    assert torch.equal(batch["clean"], batch["target"])
    assert batch["degraded"].shape == (2, 3, 32, 32)


def test_unpaired_sides_are_disjoint_and_keep_scaled_copies_with_their_photo() -> None:
    dm = _module(scales=[1.0, 0.5], unpaired=True)
    dm.setup("fit")
    assert dm.split is not None
    degraded, clean = dm.split
    assert not set(degraded) & set(clean)
    assert sorted(degraded + clean) == sorted(
        ["astronaut", "astronaut@0.5", "rocket", "rocket@0.5"]
        + [f"dead_leaves_0_{i}" for i in range(4)]
    )
    for photo in ("astronaut", "rocket"):
        side = degraded if photo in degraded else clean
        assert f"{photo}@0.5" in side
    batch = next(iter(dm.train_dataloader()))
    assert not bool(batch["paired"].any())


def test_generated_only_training_and_validation_stay_the_sample_photos() -> None:
    dm = _module(train_images=[])
    dm.setup("fit")
    assert all(n.startswith("dead_leaves") for n in dm.datasets["train"].source.names)  # type: ignore[attr-defined]
    assert [dm.datasets["val"][i]["name"] for i in range(2)] == ["chelsea", "coffee"]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"dead_leaves": -1}, "data.dead_leaves"),
        ({"scales": [1.5]}, "data.scales"),
        ({"train_images": [], "dead_leaves": 0}, "data.train_images"),
    ],
)
def test_bad_options_name_their_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(RCOTError, match=re.escape(key)):
        _module(**kwargs)


def test_unpaired_needs_two_images() -> None:
    dm = _module(train_images=["astronaut"], dead_leaves=0, unpaired=True)
    with pytest.raises(RCOTError, match=r"data\.unpaired"):
        dm.setup("fit")


def test_the_data_config_composes_and_instantiates() -> None:
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("rcot_lightning.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["data=variety", "data.dead_leaves=2", "data.unpaired=true"],
        )
    dm = instantiate(cfg.data, _convert_="partial")
    assert isinstance(dm, VarietyDataModule)
    assert dm.dead_leaves == 2 and dm.unpaired and dm.scales == [1.0]
