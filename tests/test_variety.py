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
        "crops": {"patch_size": 32, "val_crop_size": 32},
        "samples_per_epoch": 4,
        "batch_size": 2,
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
        ({"paired_fraction": 0.5, "unpaired": True}, "data.paired_fraction"),
        ({"paired_only": True}, "data.paired_only"),
    ],
)
def test_bad_options_name_their_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(RCOTError, match=re.escape(key)):
        _module(**kwargs)


def test_semi_paired_keeps_a_seeded_subset_and_paired_only_trains_on_exactly_it() -> None:
    # 2 photos (each with its half-size copy) + 8 generated images = 10 scenes, 3 kept paired.
    options = {"scales": [1.0, 0.5], "dead_leaves": 8, "paired_fraction": 0.3, "seed": 3}
    semi = _module(**options, samples_per_epoch=40, batch_size=40)
    semi.setup("fit")
    only = _module(**options, paired_only=True)
    only.setup("fit")
    kept = semi.paired_names
    assert kept is not None and kept == only.paired_names
    # A photo is kept with its scaled copy or not at all: 3 scenes are 3 or 4 images.
    scenes = {name.split("@")[0] for name in kept}
    assert len(scenes) == 3 and all(f"{s}@0.5" in kept for s in scenes if "dead" not in s)
    assert only.datasets["train"].source.names == kept  # type: ignore[attr-defined]
    # Another seed keeps other images.
    other = _module(**{**options, "seed": 4})
    other.setup("fit")
    assert other.paired_names != kept
    batch = next(iter(semi.train_dataloader()))
    paired = batch["paired"]
    assert 0 < int(paired.sum()) < len(paired)
    # Paired rows carry their own target; unpaired rows zeros and a clean crop of another image.
    assert torch.equal(batch["clean"][paired], batch["target"][paired])
    assert not bool(batch["target"][~paired].any())
    assert bool(next(iter(only.train_dataloader()))["paired"].all())


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
        semi = compose(
            "train",
            overrides=["data=variety", "data.paired_fraction=0.1", "data.paired_only=true"],
        )
    dm = instantiate(cfg.data, _convert_="partial")
    assert isinstance(dm, VarietyDataModule)
    assert dm.dead_leaves == 2 and dm.unpaired and dm.scales == [1.0]
    assert dm.paired_fraction is None and not dm.paired_only
    dm = instantiate(semi.data, _convert_="partial")
    assert dm.paired_fraction == 0.1 and dm.paired_only
