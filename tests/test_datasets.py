"""Image reading, pair sources and the datasets, on tiny images made in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from rcot_lightning.data.datasets import (
    EvalDataset,
    PairedDataset,
    SampleKey,
    SemiPairedDataset,
    UnpairedDataset,
)
from rcot_lightning.data.degradations import GaussianNoise
from rcot_lightning.data.images import image_size, list_images, read_image
from rcot_lightning.data.sources import (
    DegradedOnly,
    FolderImages,
    FolderPairs,
    MemoryImages,
    Synthesized,
)
from rcot_lightning.errors import RCOTError


def _rgb(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


# -- reading files -------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "webp"])
def test_lossless_8_bit_rgb_round_trips(tmp_path: Path, ext: str) -> None:
    array = _rgb()
    path = tmp_path / f"a.{ext}"
    if ext == "tif":
        tifffile.imwrite(path, array)
    else:
        _save(path, array, **({"lossless": True} if ext == "webp" else {}))
    image = read_image(path)
    assert image.shape == (3, 24, 32) and image.dtype == torch.float32
    assert np.array_equal((image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), array)
    assert image_size(path) == (24, 32)


def test_jpeg_reads_close_to_original(tmp_path: Path) -> None:
    array = np.full((16, 16, 3), 128, dtype=np.uint8)
    image = read_image(_save(tmp_path / "a.JPG", array, quality=95))
    assert image.shape == (3, 16, 16) and abs(float(image.mean()) - 128 / 255) < 0.02


def test_grayscale_rgba_and_palette_become_rgb(tmp_path: Path) -> None:
    gray = read_image(_save(tmp_path / "g.png", np.full((5, 6), 51, dtype=np.uint8)))
    assert gray.shape == (3, 5, 6) and torch.allclose(gray, torch.full_like(gray, 0.2))
    rgba = np.zeros((5, 6, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red: alpha is dropped
    out = read_image(_save(tmp_path / "a.png", rgba))
    assert out.shape == (3, 5, 6) and out[0].min() == 1.0 and out[1:].max() == 0.0
    palette = Image.fromarray(_rgb(8, 8)).convert("P")
    palette.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (3, 8, 8)


def test_16_bit_images_keep_their_precision(tmp_path: Path) -> None:
    gray16 = np.full((4, 5), 1000, dtype=np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    png = read_image(tmp_path / "g16.png")
    assert png.shape == (3, 4, 5) and abs(float(png[0, 0, 0]) - 1000 / 65535) < 1e-6
    rgb16 = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000
    tifffile.imwrite(tmp_path / "c16.tif", rgb16)
    tif = read_image(tmp_path / "c16.tif")
    assert torch.allclose(tif.permute(1, 2, 0), torch.from_numpy(rgb16 / 65535).float())
    tifffile.imwrite(tmp_path / "g16.tiff", gray16)
    assert read_image(tmp_path / "g16.tiff").shape == (3, 4, 5)
    planar = np.moveaxis(rgb16, -1, 0).copy()
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    assert torch.equal(read_image(tmp_path / "planar.tif"), tif)


def test_missing_empty_and_imageless_directories(tmp_path: Path) -> None:
    with pytest.raises(RCOTError, match=r"data.train_dir: directory .*nope does not exist"):
        list_images(tmp_path / "nope", "data.train_dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RCOTError, match=r"data.train_dir: directory .*empty is empty"):
        list_images(tmp_path / "empty", "data.train_dir")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("hi")
    with pytest.raises(RCOTError, match=r"has no image files .*readme.txt.*supported extensions"):
        list_images(tmp_path / "docs", "data.train_dir")
    file = _save(tmp_path / "x.png", _rgb())
    with pytest.raises(RCOTError, match="is a file, not a directory"):
        list_images(file, "data.train_dir")


def test_not_an_image_fails_at_construction_naming_the_file(tmp_path: Path) -> None:
    _save(tmp_path / "d" / "good.png", _rgb())
    (tmp_path / "d" / "bad.png").write_bytes(b"this is not a png")
    with pytest.raises(RCOTError, match=r"image .*bad.png is corrupt or truncated .*skip_bad"):
        FolderImages(tmp_path / "d", "data.train_dir")


def _truncated(path: Path) -> Path:
    _save(path, _rgb(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_image_raises_when_read_or_is_skipped_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    _save(folder / "a.png", _rgb())
    _truncated(folder / "b.png")
    images = FolderImages(folder, "data.train_dir")  # headers are fine
    with pytest.raises(RCOTError, match=r"image .*b.png is corrupt or truncated"):
        images.load(1)
    with pytest.warns(
        UserWarning, match=r"data.train_dir: skipped 1 of 2 unreadable images.*b.png"
    ):
        skipping = FolderImages(folder, "data.train_dir", skip_bad_images=True)
    assert skipping.names == ["a"] and skipping.skipped == {"b"}


def test_duplicate_stems_in_one_folder_are_rejected(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", _rgb())
    _save(tmp_path / "a.jpg", _rgb())
    with pytest.raises(RCOTError, match=r"a.jpg and a.png .* same name"):
        FolderImages(tmp_path, "data.train_dir")


# -- paired folders ------------------------------------------------------------------------------


def _pair_folders(tmp_path: Path, names: list[str], size: tuple[int, int] = (40, 48)) -> Path:
    for i, name in enumerate(names):
        target = _rgb(*size, seed=i)
        _save(tmp_path / "target" / f"{name}.png", target)
        _save(tmp_path / "degraded" / f"{name}.bmp", 255 - target)
    return tmp_path


def _folder_pairs(root: Path) -> FolderPairs:
    return FolderPairs(
        FolderImages(root / "degraded", "data.train_degraded_dir"),
        FolderImages(root / "target", "data.train_target_dir"),
    )


def test_pairs_match_by_stem_across_extensions(tmp_path: Path) -> None:
    pairs = _folder_pairs(_pair_folders(tmp_path, ["b", "a", "c"]))
    assert pairs.names == ["a", "b", "c"]


def test_unmatched_names_are_all_listed(tmp_path: Path) -> None:
    root = _pair_folders(tmp_path, ["a", "b"])
    _save(root / "degraded" / "x.png", _rgb(40, 48))
    _save(root / "degraded" / "y.png", _rgb(40, 48))
    _save(root / "target" / "z.png", _rgb(40, 48))
    with pytest.raises(RCOTError) as err:
        _folder_pairs(root)
    message = str(err.value)
    assert "2 degraded images have no target with the same stem: x, y" in message
    assert "1 target images have no degraded image with the same stem: z" in message
    assert str(root / "degraded") in message and str(root / "target") in message


def test_pair_size_mismatch_names_both_files(tmp_path: Path) -> None:
    root = _pair_folders(tmp_path, ["a"])
    _save(root / "target" / "a.png", _rgb(20, 24))
    with pytest.raises(RCOTError, match=r"a.bmp is 40x48 but .*a.png is 20x24"):
        _folder_pairs(root)


def test_training_crops_and_flips_are_identical_for_the_pair(tmp_path: Path) -> None:
    data = PairedDataset(
        _folder_pairs(_pair_folders(tmp_path, ["a", "b"])), patch_size=16, length=32
    )
    modes = set()
    for i in range(32):
        row = data[SampleKey(i, 0)]
        # Degraded is 255 - target, stored as a near-lossless JPEG.
        assert torch.allclose(row["degraded"], 1 - row["target"], atol=0.05)
        assert torch.equal(row["clean"], row["target"]) and bool(row["paired"])
        assert row["degraded"].shape == (3, 16, 16)
        modes.add(row["target"].sum().item())
    assert len(modes) > 16  # crops and modes vary from item to item


def test_eight_modes_all_occur_and_are_seeded(tmp_path: Path) -> None:
    # An asymmetric 8x8 crop of an 8x8 image: only the mode varies.
    ramp = torch.arange(64.0).view(1, 8, 8).expand(3, 8, 8) / 64
    data = PairedDataset(FolderPairs(MemoryImages({"r": ramp}), MemoryImages({"r": ramp})), 8, 200)
    seen = {tuple(data[SampleKey(i, 0)]["target"][0, 0, :2].tolist()) for i in range(200)}
    assert len(seen) == 8
    assert torch.equal(data[SampleKey(5, 2)]["target"], data[SampleKey(5, 2)]["target"])
    epochs = [data[SampleKey(i, 0)]["target"] for i in range(8)]
    others = [data[SampleKey(i, 1)]["target"] for i in range(8)]
    assert any(not torch.equal(a, b) for a, b in zip(epochs, others, strict=True))


def test_image_smaller_than_crop_fails_at_construction(tmp_path: Path) -> None:
    pairs = _folder_pairs(_pair_folders(tmp_path, ["a"], size=(20, 64)))
    with pytest.raises(
        RCOTError, match=r"smaller than data.crops.patch_size=32: .*a.bmp \(20x64\); lower"
    ):
        PairedDataset(pairs, patch_size=32)


def test_paired_dataset_needs_targets() -> None:
    with pytest.raises(RCOTError, match="needs targets"):
        PairedDataset(DegradedOnly(MemoryImages({"a": torch.zeros(3, 8, 8)})), patch_size=4)


@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_invalid_patch_size_names_the_key(value: object) -> None:
    source = Synthesized(MemoryImages({"a": torch.zeros(3, 8, 8)}), GaussianNoise())
    with pytest.raises(RCOTError, match=r"data\.crops\.patch_size must be a positive integer"):
        PairedDataset(source, patch_size=value)  # type: ignore[arg-type]


# -- synthetic, evaluation -----------------------------------------------------------------------


def test_synthetic_pairs_are_seeded_per_epoch_and_index() -> None:
    clean = MemoryImages({"grey": torch.full((3, 64, 64), 0.5)})
    data = PairedDataset(Synthesized(clean, GaussianNoise(sigma=25)), patch_size=48, length=4)
    a, b = data[SampleKey(1, 0)], data[SampleKey(1, 0)]
    assert torch.equal(a["degraded"], b["degraded"])
    assert not torch.equal(a["degraded"], data[SampleKey(2, 0)]["degraded"])
    assert not torch.equal(a["degraded"], data[SampleKey(1, 1)]["degraded"])
    assert abs(float((a["degraded"] - a["target"]).std()) * 255 - 25) < 1.5
    assert int(a["degradation"]) == 0 and data[1]["degraded"].shape == (3, 48, 48)


def test_eval_is_full_size_and_the_same_every_time(tmp_path: Path) -> None:
    for name, size in (("small", (20, 30)), ("large", (36, 44))):
        _save(tmp_path / f"{name}.png", _rgb(*size))
    source = Synthesized(FolderImages(tmp_path, "data.val_sets"), GaussianNoise(25))
    data = EvalDataset(source, seed=3)
    rows = [data[i] for i in (1, 0, 1)]
    assert rows[0]["name"] == "small" and rows[0]["degraded"].shape == (3, 20, 30)
    assert rows[1]["degraded"].shape == (3, 36, 44) and rows[1]["target"].shape == (3, 36, 44)
    assert torch.equal(rows[0]["degraded"], rows[2]["degraded"])  # seeded by name
    other_seed = EvalDataset(source, seed=4)[1]["degraded"]
    assert not torch.equal(rows[0]["degraded"], other_seed)
    predict = EvalDataset(DegradedOnly(FolderImages(tmp_path, "data.predict_dir")))[0]
    assert set(predict) == {"degraded", "name"}


# -- unpaired, semi-paired -----------------------------------------------------------------------


def _constant_images(n: int, size: int = 16) -> MemoryImages:
    """Image i is constant (i + 1) / 100, so a crop tells which image it came from."""
    return MemoryImages({f"{i}": torch.full((3, size, size), (i + 1) / 100) for i in range(n)})


def test_unpaired_draws_clean_independently() -> None:
    degraded = DegradedOnly(MemoryImages({"y": torch.ones(3, 16, 16)}))
    clean = _constant_images(5)
    data = UnpairedDataset(degraded, clean, patch_size=8, length=40)
    drawn = set()
    for i in range(40):
        row = data[SampleKey(i, 0)]
        assert not bool(row["paired"]) and float(row["target"].abs().sum()) == 0
        assert row["clean"].shape == row["degraded"].shape == (3, 8, 8)
        drawn.add(round(float(row["clean"].mean()) * 100))
    assert drawn == {1, 2, 3, 4, 5}


def test_semi_paired_fraction_is_fixed_seeded_and_unpaired_rows_never_see_their_target() -> None:
    images = _constant_images(20)
    pairs = FolderPairs(images, images)
    data = SemiPairedDataset(pairs, paired_fraction=0.25, patch_size=8, length=60, seed=5)
    assert len(data.paired_indices) == 5
    again = SemiPairedDataset(pairs, paired_fraction=0.25, patch_size=8, seed=5)
    assert again.paired_indices == data.paired_indices
    other = SemiPairedDataset(pairs, paired_fraction=0.25, patch_size=8, seed=6)
    assert other.paired_indices != data.paired_indices
    for i in range(60):
        row = data[SampleKey(i, 2)]
        own = round(float(row["degraded"].mean()) * 100)
        source = round(float(row["clean"].mean()) * 100)
        assert bool(row["paired"]) == ((i % 20) in data.paired_indices)
        if row["paired"]:
            assert source == own and torch.equal(row["target"], row["clean"])
        else:
            assert source != own and float(row["target"].abs().sum()) == 0


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_semi_paired_fraction_is_validated(fraction: float) -> None:
    images = _constant_images(4)
    with pytest.raises(RCOTError, match=r"data\.paired_fraction must be in"):
        SemiPairedDataset(FolderPairs(images, images), fraction, patch_size=8)


def test_skipped_file_drops_its_partner_instead_of_reporting_it_unmatched(tmp_path: Path) -> None:
    root = _pair_folders(tmp_path, ["a", "b", "c"])
    (root / "degraded" / "b.bmp").write_bytes((root / "degraded" / "b.bmp").read_bytes()[:100])
    with pytest.warns(UserWarning, match=r"skipped 1 of 3 unreadable images.*b\.bmp"):
        degraded = FolderImages(root / "degraded", "data.train_degraded_dir", skip_bad_images=True)
    pairs = FolderPairs(degraded, FolderImages(root / "target", "data.train_target_dir"))
    assert pairs.names == ["a", "c"]
