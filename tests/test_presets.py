"""Dataset presets (``conf/data/<dataset>.yaml``) on small trees with the published file names.

Each tree below reproduces one layout as downloaded (tiny generated images): the preset must
pair every file, train a few iterations of the tiny model, and, pointed at a wrong root, fail
with one line that names the root and the layout it expected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from rcot_lightning.cli.train import run
from rcot_lightning.contract import DEGRADATION, DegradationId
from rcot_lightning.errors import RCOTError

SIZE = (40, 48)  # (H, W): larger than the tests' 32-pixel crops


def _image(path: Path, size: tuple[int, int] = SIZE, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _tree(root: Path, files: list[str], size: tuple[int, int] = SIZE) -> Path:
    for i, name in enumerate(files):
        _image(root / name, size, seed=i)
    return root


def rain100l(root: Path) -> Path:
    ids = (1, 2, 3)
    return _tree(
        root,
        [f"train/rainy/rain-{i}.png" for i in ids]
        + [f"train/gt/norain-{i}.png" for i in ids]
        + [f"test/rainy/rain-{i}.png" for i in (1, 2)]
        + [f"test/gt/norain-{i}.png" for i in (1, 2)],
    )


def rain100h(root: Path) -> Path:
    # JORDER's archive: rain/X2/norain-Nx2.png with norain/norain-N.png.
    return _tree(
        root,
        [f"rain_data_train_Heavy/rain/X2/norain-{i}x2.png" for i in (1, 2)]
        + [f"rain_data_train_Heavy/norain/norain-{i}.png" for i in (1, 2)]
        + [
            "rain_data_test_Heavy/rain/X2/norain-1x2.png",
            "rain_data_test_Heavy/norain/norain-1.png",
        ],
    )


def sots_outdoor(root: Path) -> Path:
    return _tree(
        root,
        ["hazy/0001_0.8_0.2.jpg", "hazy/0002_1_0.16.jpg", "gt/0001.png", "gt/0002.png"],
    )


def reside_ots(root: Path) -> Path:
    return _tree(
        root,
        # several hazy images per clear one (many-to-one)
        [
            "OTS/synthetic/0025_0.8_0.04.jpg",
            "OTS/synthetic/0025_1_0.2.jpg",
            "OTS/synthetic/0026_0.8_0.04.jpg",
            "OTS/original/0025.jpg",
            "OTS/original/0026.jpg",
            "SOTS/outdoor/hazy/0001_0.8_0.2.jpg",
            "SOTS/outdoor/clear/0001.png",
        ],
    )


def reside_ots_beta(root: Path) -> Path:
    # RESIDE-beta's OTS archive: hazy images in part folders, clear ones in clear_images.
    return _tree(
        root,
        [
            "OTS_BETA/haze/part1/0025_0.8_0.04.jpg",
            "OTS_BETA/haze/part2/0025_1_0.2.jpg",
            "OTS_BETA/haze/part2/0026_0.8_0.04.jpg",
            "OTS_BETA/clear/clear_images/0025.jpg",
            "OTS_BETA/clear/clear_images/0026.jpg",
            "SOTS/outdoor/hazy/0001_0.8_0.2.jpg",
            "SOTS/outdoor/gt/0001.png",
        ],
    )


def reside_its(root: Path) -> Path:
    return _tree(
        root,
        [
            "ITS/hazy/1_1_0.90179.png",
            "ITS/hazy/1_2_0.97842.png",
            "ITS/hazy/2_1_0.85.png",
            "ITS/clear/1.png",
            "ITS/clear/2.png",
            "SOTS/indoor/hazy/1400_1.png",
            "SOTS/indoor/hazy/1400_2.png",
            "SOTS/indoor/gt/1400.png",
        ],
    )


def bsd400_wed(root: Path) -> Path:
    return _tree(
        root,
        [
            "BSD400/2092.jpg",
            "BSD400/8049.jpg",
            "WED/00001.bmp",
            "WED/00002.bmp",
            "CBSD68/original_png/0000.png",
            "CBSD68/original_png/0001.png",
            "Kodak24/kodim01.png",
            "McMaster/1.tif",
        ],
    )


def lol(root: Path) -> Path:
    return _tree(
        root,
        [
            "our485/low/2.png",
            "our485/low/5.png",
            "our485/high/2.png",
            "our485/high/5.png",
            "eval15/low/1.png",
            "eval15/high/1.png",
        ],
    )


def gopro(root: Path) -> Path:
    files = []
    scenes = (("train", "GOPR0372_07_00"), ("train", "GOPR0374_11_00"), ("test", "GOPR0384_11_00"))
    for split, scene in scenes:
        # the same frame number in two scenes: names must not collide; blur_gamma is unused
        files += [f"{split}/{scene}/{kind}/000047.png" for kind in ("blur", "blur_gamma", "sharp")]
    return _tree(root, files)


def div2k_x4(root: Path) -> Path:
    hr = ["DIV2K_train_HR/0001.png", "DIV2K_train_HR/0002.png", "DIV2K_valid_HR/0801.png"]
    lr = [
        "DIV2K_train_LR_bicubic/X4/0001x4.png",
        "DIV2K_train_LR_bicubic/X4/0002x4.png",
        "DIV2K_valid_LR_bicubic/X4/0801x4.png",
    ]
    _tree(root, hr, (64, 64))
    return _tree(root, lr, (16, 16))


# preset -> (tree builder, training pairs, names of the test pairs, degradation id)
PRESETS: dict[str, tuple[Callable[[Path], Path], int, list[str], DegradationId]] = {
    "rain100l": (rain100l, 3, ["rain-1", "rain-2"], DegradationId.RAIN),
    "rain100h": (rain100h, 2, ["norain-1x2"], DegradationId.RAIN),
    "reside_ots": (reside_ots, 3, ["0001_0.8_0.2"], DegradationId.HAZE),
    "reside_its": (reside_its, 3, ["1400_1", "1400_2"], DegradationId.HAZE),
    "bsd400_wed": (
        bsd400_wed,
        4,
        ["cbsd68/0000", "cbsd68/0001", "kodak24/kodim01"],
        DegradationId.NOISE,
    ),
    "lol": (lol, 2, ["1"], DegradationId.LOWLIGHT),
    "gopro": (gopro, 2, ["GOPR0384_11_00/000047"], DegradationId.BLUR),
    "div2k_x4": (div2k_x4, 2, ["0801x4"], DegradationId.SR),
}


def _datamodule(cfg: DictConfig):  # type: ignore[no-untyped-def]
    return instantiate(cfg.data, _convert_="partial")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_pairs_its_layout(compose_train, tmp_path: Path, preset: str) -> None:
    build, n_train, test_names, degradation_id = PRESETS[preset]
    root = build(tmp_path / "data")
    dm = _datamodule(compose_train(f"data={preset}", f"data.folders.root={root}"))
    dm.setup("fit")
    train = dm.datasets["train"]
    assert len(train.source) == n_train
    row = train[0]
    assert int(row[DEGRADATION]) == degradation_id
    assert row["degraded"].shape == row["target"].shape == (3, 32, 32)
    names = [name for s in dm.eval_sets("test") for name in s.source.names]
    if preset == "bsd400_wed":  # three clean test sets, degraded on the fly
        names = [f"{s.name}/{n}" for s in dm.eval_sets("test") for n in s.source.names]
        assert [s.name for s in dm.eval_sets("test")] == ["cbsd68", "kodak24", "mcmaster"]
        test_names = [*test_names, "mcmaster/1"]
    assert names == test_names


def test_gopro_names_frames_by_scene_and_skips_blur_gamma(compose_train, tmp_path: Path) -> None:
    root = gopro(tmp_path / "data")
    dm = _datamodule(compose_train("data=gopro", f"data.folders.root={root}"))
    dm.setup("fit")
    assert dm.datasets["train"].source.names == ["GOPR0372_07_00/000047", "GOPR0374_11_00/000047"]


def test_reside_beta_archive_and_many_to_one_scenes(compose_train, tmp_path: Path) -> None:
    root = reside_ots_beta(tmp_path / "data")
    dm = _datamodule(compose_train("data=reside_ots", f"data.folders.root={root}"))
    dm.setup("fit")
    source = dm.datasets["train"].source
    assert source.names == ["part1/0025_0.8_0.04", "part2/0025_1_0.2", "part2/0026_0.8_0.04"]
    # the two hazy views of scene 0025 share their target
    assert source.groups[0] == source.groups[1] != source.groups[2]


def test_div2k_upsamples_lr_to_hr_size(compose_train, tmp_path: Path) -> None:
    root = div2k_x4(tmp_path / "data")
    dm = _datamodule(
        compose_train("data=div2k_x4", f"data.folders.root={root}", "data.crops.val_crop_size=null")
    )
    dm.setup("validate")
    row = dm.datasets["val"][0]
    assert row["degraded"].shape == row["target"].shape == (3, 64, 64)


def test_reside_authors_part_folders_and_promptir_test_copy(compose_train, tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "data",
        [
            "OTS/synthetic/part1/0025_0.8_0.04.jpg",
            "OTS/synthetic/part2/0026_1_0.2.jpg",
            "OTS/original/0025.jpg",
            "OTS/original/0026.jpg",
            "SOTS/outdoor/input/0001_0.8_0.2.jpg",
            "SOTS/outdoor/target/0001.png",
        ],
    )
    dm = _datamodule(compose_train("data=reside_ots", f"data.folders.root={root}"))
    dm.setup("fit")
    assert dm.datasets["train"].source.names == ["part1/0025_0.8_0.04", "part2/0026_1_0.2"]
    assert dm.datasets["val"].source.names == ["0001_0.8_0.2"]


def test_sots_outdoor_is_evaluation_only(compose_train, tmp_path: Path) -> None:
    root = sots_outdoor(tmp_path / "data")
    dm = _datamodule(compose_train("data=reside_sots_outdoor", f"data.folders.root={root}"))
    dm.setup("test")
    assert dm.datasets["test"].source.names == ["0001_0.8_0.2", "0002_1_0.16"]
    with pytest.raises(RCOTError, match="no training split"):
        dm.setup("fit")


@pytest.mark.parametrize("preset", ["rain100l", "reside_its", "gopro", "div2k_x4", "bsd400_wed"])
@pytest.mark.integration
def test_preset_trains_a_few_iterations(compose_train, tmp_path: Path, preset: str) -> None:
    root = PRESETS[preset][0](tmp_path / "data")
    cfg = compose_train(
        f"data={preset}",
        f"data.folders.root={root}",
        "data.loader.num_workers=0",
        "data.samples_per_epoch=4",
        "trainer.max_steps=4",
        "trainer.limit_val_batches=1",
    )
    result = run(cfg)
    assert result.trainer.state.finished and result.model.iteration == 2


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_wrong_root_names_the_root_and_the_layout(
    compose_train, tmp_path: Path, preset: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    dm = _datamodule(compose_train(f"data={preset}", f"data.folders.root={empty}"))
    with pytest.raises(RCOTError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert str(empty) in message and "expected layout: <root>/" in message
    assert "\n" not in message
    missing = _datamodule(compose_train(f"data={preset}", f"data.folders.root={tmp_path / 'nope'}"))
    with pytest.raises(
        RCOTError, match=r"data.folders.root: .*nope does not exist; point it at the"
    ):
        missing.setup("fit")


def test_unset_root_says_which_key_to_set(compose_train) -> None:
    dm = _datamodule(compose_train("data=lol"))
    with pytest.raises(
        RCOTError, match=r"data.folders.root is not set; .* expected layout: <root>/our485"
    ):
        dm.setup("fit")


@pytest.mark.integration
def test_cli_wrong_root_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    missing = tmp_path / "Rain100L"
    proc = run_cli(
        "rcot_lightning.train",
        "data=rain100l",
        f"data.folders.root={missing}",
        "model=rcot_tiny",
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"rcot-train: error: data.folders.root: {missing} does not exist; point it at the "
        "downloaded dataset; expected layout: <root>/{train,test}/{rainy,rain,input}/rain-N.png "
        "with <root>/{train,test}/{gt,norain,target}/norain-N.png"
    ]


def test_named_test_sets_are_tested_after_training(compose_train, tmp_path: Path) -> None:
    root = bsd400_wed(tmp_path / "data")
    cfg = compose_train(
        "data=bsd400_wed",
        f"data.folders.root={root}",
        "data.loader.num_workers=0",
        "data.samples_per_epoch=4",
        "trainer.max_steps=2",
        "test=true",
    )
    trainer = run(cfg).trainer
    # CBSD68 (2 images), Kodak24 and McMaster (1 each) as one test split
    assert trainer.state.fn == "test" and "test/psnr" in trainer.callback_metrics
    assert len(trainer.test_dataloaders.dataset) == 4
