"""Pairing rules, folder specs and the one-line errors of bad layouts; the ``sample_key``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rcot_lightning.contract import SAMPLE_KEY
from rcot_lightning.data.datamodules import (
    PairedFolderDataModule,
    SemiPairedDataModule,
    UnpairedDataModule,
)
from rcot_lightning.data.folders import find_images, resolve_folders
from rcot_lightning.data.pairing import PairingRule, as_rules, match_names
from rcot_lightning.data.sources import FolderImages, FolderPairs
from rcot_lightning.data.specs import FolderSpec
from rcot_lightning.errors import RCOTError

RAIN = {"degraded": "rain-{id}", "target": "norain-{id}"}
HAZE = {"degraded": "{id}_{airlight}_{beta}", "target": "{id}"}


def _save(path: Path, size: tuple[int, int] = (40, 48), seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _files(root: Path, names: list[str], size: tuple[int, int] = (40, 48)) -> Path:
    for i, name in enumerate(names):
        _save(root / name, size, seed=i)
    return root


# -- rules ---------------------------------------------------------------------------------------


def test_template_rule_maps_rain_to_norain() -> None:
    pairs = match_names(["rain-2", "rain-10"], ["norain-10", "norain-2"], as_rules(RAIN))
    assert pairs == [(0, 1), (1, 0)]


def test_regex_rule_with_named_groups() -> None:
    rule = PairingRule(r"(?P<id>\d{4})_(?P<a>[\d.]+)_(?P<b>[\d.]+)", "{id}")
    assert rule.target_name("0025_0.8_0.04") == "0025"
    assert rule.target_name("0025_hazy") is None


def test_repeated_field_must_repeat_its_text() -> None:
    rule = PairingRule("{scene}/{scene}_{frame}", "{scene}/{frame}")
    assert rule.target_name("a/a_01") == "a/01"
    assert rule.target_name("a/b_01") is None


def test_rules_are_tried_in_order_until_a_target_exists() -> None:
    rules = as_rules([RAIN, {"degraded": "{name}", "target": "{name}"}])
    pairs = match_names(["rain-1", "norain-2"], ["norain-1", "norain-2"], rules)
    assert pairs == [(0, 0), (1, 1)]


def test_many_to_one_needs_to_be_allowed() -> None:
    degraded = ["0025_0.8_0.04", "0025_1_0.2", "0026_0.8_0.04"]
    with pytest.raises(RCOTError) as err:
        match_names(degraded, ["0025", "0026"], as_rules(HAZE), where=("hazy/", "clear/"))
    message = str(err.value)
    assert (
        "0025 <- 0025_0.8_0.04, 0025_1_0.2" in message
        and "data.folders.many_to_one=true" in message
    )
    assert "clear/" in message
    pairs = match_names(degraded, ["0025", "0026"], as_rules(HAZE), many_to_one=True)
    assert pairs == [(0, 0), (1, 0), (2, 1)]


def test_rule_matching_nothing_names_the_rule_and_the_folder() -> None:
    with pytest.raises(RCOTError) as err:
        match_names(["img1", "img2"], ["norain-1"], as_rules(RAIN), where=("/data/rainy", "gt"))
    message = str(err.value)
    assert message.startswith("data.folders.pairing: no rule of ['rain-{id}' -> 'norain-{id}']")
    assert "2 names in /data/rainy (e.g. img1, img2)" in message and "\n" not in message


def test_unmatched_names_are_listed_with_the_target_expected() -> None:
    with pytest.raises(RCOTError) as err:
        match_names(["rain-1", "rain-2", "x"], ["norain-1", "norain-9"], as_rules(RAIN))
    message = str(err.value)
    assert "1 degraded images match no rule of ['rain-{id}' -> 'norain-{id}']: x" in message
    assert "rain-2 (expected norain-2)" in message
    assert "1 target images have no degraded image by any rule: norain-9" in message


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"degraded": "rain"}, "exactly the keys degraded and target"),
        ({"degraded": "rain", "target": "norain"}, "has no {field}"),
        ({"degraded": "rain-{id}", "target": "{name}"}, "uses name, which the degraded"),
        ({"degraded": "(?P<id>[", "target": "{id}"}, "not a valid regular expression"),
        ("rain-{id}", "must be a mapping"),
    ],
)
def test_bad_rules_name_the_key(spec: object, message: str) -> None:
    with pytest.raises(RCOTError, match=r"data.folders.pairing") as err:
        as_rules(spec)
    assert message in str(err.value)


# -- folders -------------------------------------------------------------------------------------


def test_recursive_folders_name_images_by_relative_path(tmp_path: Path) -> None:
    _files(tmp_path, ["a/blur/1.png", "b/blur/1.png", "b/blur/2.png"])
    images = FolderImages(tmp_path, "data.x", recursive=True)
    assert images.names == ["a/blur/1", "b/blur/1", "b/blur/2"]
    with pytest.raises(RCOTError, match=r"data.x: .* has no image files"):
        FolderImages(tmp_path / "a", "data.x")  # only a sub-folder: not recursive


def test_glob_alternatives_and_groups(tmp_path: Path) -> None:
    _files(tmp_path, ["BSD400/1.jpg", "WED/2.bmp", "x/s1/blur/1.png", "x/s2/blur/1.png"])
    spec = [["BSD400", "WaterlooED"], ["BSD400", "WED"]]
    assert [f.path.name for f in resolve_folders(spec, "data.train_dir", tmp_path)] == [
        "BSD400",
        "WED",
    ]
    names = [n for n, _ in find_images(resolve_folders("x/*/blur", "k", tmp_path), "k")]
    assert names == ["s1/1", "s2/1"]
    with pytest.raises(RCOTError) as err:
        resolve_folders(["rainy", "rain"], "data.train_degraded_dir", tmp_path, "<root>/rainy")
    assert str(err.value) == (
        f"data.train_degraded_dir: no folder rainy or rain in {tmp_path}; "
        "expected layout: <root>/rainy"
    )


# -- data modules --------------------------------------------------------------------------------


def test_paired_module_pairs_by_rule_and_rejects_mixed_sizes(tmp_path: Path) -> None:
    _files(tmp_path, ["rainy/rain-1.png", "rainy/rain-2.png", "gt/norain-1.png"])
    _save(tmp_path / "gt" / "norain-2.png", (40, 40))
    dm = PairedFolderDataModule(
        "rainy",
        "gt",
        folders={"root": str(tmp_path), "pairing": RAIN},
        batch_size=1,
        crops={"patch_size": 32},
    )
    with pytest.raises(RCOTError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert (
        f"{tmp_path}/rainy/rain-2.png is 40x48 but {tmp_path}/gt/norain-2.png is 40x40" in message
    )
    assert "must have the same size" in message and "\n" not in message


def test_semi_paired_many_to_one_keeps_scenes_apart(tmp_path: Path) -> None:
    hazy = [f"hazy/{scene:04d}_{k}_0.1.png" for scene in range(4) for k in range(3)]
    _files(tmp_path, hazy + [f"clear/{scene:04d}.png" for scene in range(4)])
    dm = SemiPairedDataModule(
        "clear",
        "hazy",
        paired_fraction=0.5,
        folders=FolderSpec(root=str(tmp_path), pairing=HAZE, many_to_one=True),
        crops={"patch_size": 32, "augment": False},
    )
    dm.setup("fit")
    data = dm.datasets["train"]
    groups = data.source.groups
    paired_scenes = {groups[i] for i in data.paired_indices}
    assert len(paired_scenes) == 2 and len(data.paired_indices) == 6  # whole scenes
    targets = [data.source.target(j, None, 0) for j in range(len(groups))]
    for i in range(len(data)):
        row = data[i]
        if not bool(row["paired"]):
            # the clean crop comes from a target of another scene
            own = targets[i]
            assert not any(
                (own[:, t : t + 32, s : s + 32] == row["clean"]).all()
                for t in range(9)
                for s in range(17)
            )


def test_many_to_one_rule_on_unpaired_data_is_refused(tmp_path: Path) -> None:
    _files(tmp_path, ["hazy/0001_1_0.1.png", "clear/0001.png"])
    folders = {"root": str(tmp_path), "many_to_one": True}
    dm = UnpairedDataModule("clear", "hazy", folders=folders, crops={"patch_size": 32})
    with pytest.raises(RCOTError, match=r"data.folders.many_to_one: unpaired .*data=semipaired"):
        dm.setup("fit")


def test_missing_root_is_one_line_naming_it(tmp_path: Path) -> None:
    folders = {"root": str(tmp_path / "nope"), "layout": "<root>/rainy"}
    dm = PairedFolderDataModule("rainy", "gt", folders=folders)
    with pytest.raises(RCOTError) as err:
        dm.setup("fit")
    assert str(err.value) == (
        f"data.folders.root: {tmp_path / 'nope'} does not exist; point it at the downloaded "
        "dataset; expected layout: <root>/rainy"
    )


def test_folder_pairs_upsample_lr_and_check_the_scale(tmp_path: Path) -> None:
    _files(tmp_path, ["hr/0001.png"], (64, 64))
    _files(tmp_path, ["lr/0001x4.png"], (16, 16))
    _files(tmp_path, ["lr2/0001x4.png"], (15, 16))
    hr = FolderImages(tmp_path / "hr", "hr")
    rules = as_rules({"degraded": "{id}x4", "target": "{id}"})
    pairs = FolderPairs(FolderImages(tmp_path / "lr", "lr"), hr, rules=rules, scale=4)
    assert pairs.pair(0, None, 0, None).degraded.shape == (3, 64, 64)
    with pytest.raises(
        RCOTError, match=r"0001x4.png is 15x16 but .*0001.png is 64x64 \(expected 4x"
    ):
        FolderPairs(FolderImages(tmp_path / "lr2", "lr"), hr, rules=rules, scale=4)


# -- sample_key ----------------------------------------------------------------------------------


def _keys_and_rows(dm: PairedFolderDataModule, rank: int, world: int) -> dict[int, torch.Tensor]:
    dm.rank_and_world_size = lambda: (rank, world)  # type: ignore[method-assign]
    found = {}
    for batch in dm.train_dataloader():
        assert batch[SAMPLE_KEY].dtype == torch.int64 and batch[SAMPLE_KEY].shape == (2,)
        for key, degraded in zip(batch[SAMPLE_KEY].tolist(), batch["degraded"], strict=True):
            found[key] = degraded
    return found


def test_sample_key_is_the_same_for_one_or_two_processes(tmp_path: Path) -> None:
    names = [f"{i}.png" for i in range(8)]
    _files(tmp_path, [f"deg/{n}" for n in names] + [f"gt/{n}" for n in names])
    make = lambda: PairedFolderDataModule(  # noqa: E731
        "deg",
        "gt",
        folders={"root": str(tmp_path)},
        batch_size=2,
        crops={"patch_size": 32},
        samples_per_epoch=8,
    )
    single = _keys_and_rows(make(), 0, 1)
    split = _keys_and_rows(make(), 0, 2) | _keys_and_rows(make(), 1, 2)
    assert len(single) == 8 and set(split) == set(single)
    assert all(torch.equal(single[k], split[k]) for k in single)
    # another epoch draws other keys
    dm = make()
    dm.setup("fit")
    assert dm.datasets["train"][(0, 1)][SAMPLE_KEY] != dm.datasets["train"][(0, 0)][SAMPLE_KEY]
