"""The bundled pretrained denoiser: its registry, its quality, and ``rcot-restore`` without a
checkpoint (``model=NAME``, ``ckpt_path`` winning, one-line errors)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rcot_lightning.checkpoints.load import build_module
from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY
from rcot_lightning.cli.map_source import choose_map, model_alias
from rcot_lightning.data.degradations import GaussianNoise
from rcot_lightning.data.images import read_image
from rcot_lightning.errors import RCOTError
from rcot_lightning.metrics import psnr
from rcot_lightning.pretrained import (
    DEFAULT_MODEL,
    WEIGHTS_DIR,
    available,
    bundle,
    load,
    map_from_bundle,
)
from tests.conftest import run_cli

LOCAL_MAP = {
    "_target_": "torch.nn.Conv2d",
    "in_channels": 3,
    "out_channels": 3,
    "kernel_size": 3,
    "padding": 1,
}


def _module_config(transport_map: dict, ema_decay: float | None = None) -> dict:
    config = {
        "_target_": "rcot_lightning.RCOTModule",
        "transport_map": transport_map,
        "potential": {"_target_": "rcot_lightning.nets.Potential", "channels": [4, 4]},
    }
    if ema_decay is not None:
        config["ema_decay"] = ema_decay
    return config


def _checkpoint(path: Path, config: dict) -> Path:
    module = build_module(config)
    torch.save({"state_dict": module.state_dict(), BUILD_CONFIG_KEY: module.build_config}, path)
    return path


def _photo(path: Path, height: int = 45, width: int = 29) -> Path:
    """A smooth colour image with edges (what a denoiser should keep)."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 / width, yy * 255 / height, 128 + 60 * ((xx // 8 + yy // 8) % 2)], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def test_registry_says_what_each_entry_is() -> None:
    entries = available()
    assert DEFAULT_MODEL in entries
    entry = entries[DEFAULT_MODEL]
    assert entry.weights.is_file()
    assert entry.weights.stat().st_size <= 10 * 2**20
    for key in ("trained_on", "config", "overrides", "iterations", "cpu_minutes", "heldout"):
        assert key in entry.info, key
    assert entry.info["config"] == "experiment=denoise_blind"
    assert "GPU" in entry.info["hardware"]
    assert {p.stem for p in WEIGHTS_DIR.glob("*.pt")} == set(entries)


@pytest.mark.parametrize("name", sorted(available()))
def test_every_entry_says_how_it_was_made_and_loads(name: str) -> None:
    """Issue 30: each bundled file at most 10 MB, its YAML naming the committed recipe that made
    it, the command, the commit, the CPU time and its held-out figures; it restores any size."""
    entry = available()[name]
    assert entry.weights.is_file() and entry.weights.stat().st_size <= 10 * 2**20
    for key in ("task", "trained_on", "config", "command", "trained_at_commit", "heldout"):
        assert entry.info.get(key), (name, key)
    assert float(entry.info["cpu_minutes"]) > 0 and int(entry.info["iterations"]) > 0
    experiment = str(entry.info["config"]).removeprefix("experiment=")
    conf = Path(__file__).resolve().parents[1] / "src/rcot_lightning/conf/experiment"
    assert (conf / f"{experiment}.yaml").is_file(), entry.info["config"]
    with torch.no_grad():
        assert load(name)(torch.rand(1, 3, 21, 30)).shape == (1, 3, 21, 30)


def test_bundled_deraining_map_removes_rain_on_a_photo_it_never_trained_on() -> None:
    from rcot_lightning.data.degradations import RainStreaks
    from rcot_lightning.data.samples import load_photo

    net = load("derain-blind")
    clean = load_photo("coffee")[None, :, 100:228, 200:328]  # a validation photo
    rainy = RainStreaks(density=0.006, length=21, angle=5.0, opacity=0.75)(
        clean, torch.Generator().manual_seed(0)
    ).clamp(0, 1)
    with torch.no_grad():
        restored = net(rainy).clamp(0, 1)
    gain = float(psnr(restored, clean) - psnr(rainy, clean))
    assert gain > 6.0, gain  # issue 30's target for rain: +6 dB over the input


def test_bundled_jpeg_map_gains_over_a_saved_jpeg_file_and_over_the_all_in_one_map() -> None:
    from rcot_lightning.data.degradations import JPEG
    from rcot_lightning.data.samples import load_photo

    clean = load_photo("chelsea")[None, :, 40:232, 40:232]  # a validation photo
    saved = JPEG(quality=(20.0, 20.0), codec="libjpeg")(clean, torch.Generator().manual_seed(0))
    with torch.no_grad():
        gain, allinone = (
            float(psnr(load(name)(saved).clamp(0, 1), clean) - psnr(saved, clean))
            for name in ("jpeg-blind", "allinone-blind")
        )
    # Held out (jpeg-blind.yaml): +0.62 dB at q20 where allinone-blind loses 0.18 dB.
    assert gain > 0.3 and gain > allinone + 0.2, (gain, allinone)


def test_bundled_low_light_map_beats_gamma_correction_on_a_photo_it_never_trained_on() -> None:
    from rcot_lightning.data.degradations import LowLight
    from rcot_lightning.data.samples import load_photo

    net = load("lowlight-blind")
    clean = load_photo("coffee")[None, :, 100:228, 200:328]  # a validation photo
    dark = LowLight(gamma=2.0, gain=0.35, sigma=5.0)(clean, torch.Generator().manual_seed(0))
    with torch.no_grad():
        restored = net(dark).clamp(0, 1)
    # The classical anchor at its best on the validation photos for this severity: gamma 0.3.
    brightened = dark.clamp_min(0) ** 0.3
    assert float(psnr(restored, clean)) > float(psnr(brightened, clean)) + 3.0
    assert float(psnr(restored, clean) - psnr(dark, clean)) > 8.0


def _low_resolution_crop(tmp_path: Path) -> tuple[torch.Tensor, Path]:
    """A 128x128 crop of a validation photo and its x4 bicubic down-sampling saved as a PNG."""
    from rcot_lightning.data.degradations import Downscale
    from rcot_lightning.data.samples import load_photo
    from rcot_lightning.visualize import save_png

    clean = load_photo("coffee")[None, :, 100:228, 200:328]
    small = Downscale(scale=4, upsample=False)(clean)
    path = tmp_path / "small.png"
    save_png(small[0], path)
    return clean, path


@pytest.mark.integration
def test_restore_with_the_bundled_sr_map_enlarges_x4_and_beats_bicubic(tmp_path: Path) -> None:
    """Issue 30: model=sr-blind enlarges by its YAML's upscale (bicubic, then the map) and gains
    over bicubic on a photo it never trained on; upscale= overrides it, and bad values are one
    line naming the key."""
    from rcot_lightning.inference import bicubic_upscale

    assert available()["sr-blind"].upscale == 4 and available()[DEFAULT_MODEL].upscale == 1
    clean, small = _low_resolution_crop(tmp_path)
    proc = run_cli(
        "rcot_lightning.restore",
        "model=sr-blind",
        f"input={small}",
        f"output={tmp_path / 'out'}",
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "upscale: x4 (bicubic, 8-bit), then the map" in proc.stdout
    restored = read_image(tmp_path / "out" / "small.png")[None]
    assert restored.shape == clean.shape == (1, 3, 128, 128)
    bicubic = bicubic_upscale(read_image(small)[None], 4)
    gain = float(psnr(restored, clean) - psnr(bicubic, clean))
    assert gain > 0.5, gain  # +1.35 dB on the held-out photos (docs/quality.md)

    proc = run_cli(
        "rcot_lightning.restore",
        "model=sr-blind",
        "upscale=1.5",
        f"input={small}",
        f"output={tmp_path / 'bad'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "rcot-restore: error: upscale must be an integer >= 1 (4 for a x4 super-resolution "
        "map; 1: none), got 1.5"
    ]
    assert not (tmp_path / "bad").exists()


def test_choose_map_carries_the_entry_upscale() -> None:
    assert choose_map(None, "sr-blind").upscale == 4
    assert choose_map(None, None).upscale == 1


def test_bundled_denoiser_is_blind_and_denoises() -> None:
    from rcot_lightning.data.samples import load_photo

    net = load(DEFAULT_MODEL)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    clean = load_photo("chelsea")[None, :, 100:196, 150:270]  # a validation photo, not trained on
    for sigma in (15, 50):
        noisy = GaussianNoise(sigma=sigma)(clean, torch.Generator().manual_seed(sigma))
        with torch.no_grad():
            restored = net(noisy).clamp(0, 1)
        gain = float(psnr(restored, clean) - psnr(noisy, clean))
        assert gain > 3.0, (sigma, gain)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(
        RCOTError, match=r"no bundled model named 'nope'; known: allinone-blind, denoise-blind"
    ):
        load("nope")


def test_bundle_keeps_the_ema_map_only(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "ema.ckpt", _module_config(LOCAL_MAP, ema_decay=0.9))
    stored_ckpt = torch.load(ckpt, weights_only=False)
    with torch.no_grad():  # make the EMA copy differ from the trained map
        stored_ckpt["state_dict"]["map_ema.module.weight"] += 1.0
    torch.save(stored_ckpt, ckpt)
    # torch.nn is no module of the registry: a file builds its classes only when trusted.
    with pytest.raises(RCOTError, match=r"pass trusted_targets=\[torch.nn\] if you trust"):
        bundle(ckpt, tmp_path / "mine.pt")
    out = bundle(ckpt, tmp_path / "mine.pt", trusted_targets=["torch.nn"])
    stored = torch.load(out, weights_only=True)
    assert set(stored) == {"format", "transport_map", "state_dict"}
    assert set(stored["state_dict"]) == {"weight", "bias"}
    net = map_from_bundle(stored, ["torch.nn"])
    assert torch.equal(net.weight, stored_ckpt["state_dict"]["map_ema.module.weight"])


def test_model_alias_only_renames_the_bare_model_key() -> None:
    assert model_alias(["x", "model=a", "model.dim=4", "+model=b"]) == [
        "x",
        "pretrained=a",
        "model.dim=4",
        "+model=b",
    ]


def test_checkpoint_wins_over_a_model_name(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "local.ckpt", _module_config(LOCAL_MAP))
    chosen = choose_map(ckpt, "nope", trusted_targets=["torch.nn"])
    assert isinstance(chosen.net, torch.nn.Conv2d)
    assert chosen.source == f"checkpoint {ckpt}"


def test_checkpoint_whose_config_cannot_be_rebuilt(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "local.ckpt", _module_config(LOCAL_MAP))
    stored = torch.load(ckpt, weights_only=False)
    stored[BUILD_CONFIG_KEY]["transport_map"]["_target_"] = "rcot_lightning.nets.NoSuchMap"
    torch.save(stored, ckpt)
    with pytest.raises(
        RCOTError, match="NoSuchMap is not a map this version of rcot-lightning builds from a file"
    ):
        choose_map(ckpt, None, trusted_targets=["torch.nn"])


def _restore(tmp_path: Path, *args: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``rcot-restore <args>`` on a small photo, written to ``tmp_path/out``."""
    photo = _photo(tmp_path / "photo.png")
    proc = run_cli(
        "rcot_lightning.restore",
        *args,
        f"input={photo}",
        f"output={tmp_path / 'out'}",
        cwd=tmp_path,
        timeout=300,
    )
    return photo, proc


@pytest.mark.integration
def test_restore_without_a_checkpoint_uses_the_bundled_model(tmp_path: Path) -> None:
    photo, proc = _restore(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"model: bundled model {DEFAULT_MODEL}" in proc.stdout
    restored = read_image(tmp_path / "out" / "photo.png")
    assert restored.shape == (3, 45, 29)
    # precision=auto runs bf16 autocast on a CPU with native bf16 (AVX-512 BF16, AMX), fp32
    # elsewhere: the map is run here the way the command says it ran it.
    bf16 = "precision: auto chose bf16" in proc.stdout
    assert bf16 or "precision: auto chose 32" in proc.stdout, proc.stdout
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        expected = load(DEFAULT_MODEL)(read_image(photo)[None])[0].float().clamp(0, 1)
    assert (restored - expected).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (
            lambda tmp: ["model=nope"],
            "rcot-restore: error: model: no bundled model named 'nope'; known: allinone-blind, "
            "denoise-blind",
        ),
        (
            lambda tmp: [f"ckpt_path={_broken_checkpoint(tmp)}", "trusted_targets=[torch.nn]"],
            "rcot-restore: error: ckpt_path: {ckpt}: its stored model config cannot be rebuilt "
            "by this version of rcot-lightning (transport_map=torch.nn.Conv2d: ",
        ),
    ],
    ids=["unknown-model", "unbuildable-checkpoint"],
)
@pytest.mark.integration
def test_restore_bad_model_is_one_line(make_args, expected: str, tmp_path: Path) -> None:
    _, proc = _restore(tmp_path, *make_args(tmp_path))
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(expected.format(ckpt=tmp_path / "broken.ckpt")), line
    assert not (tmp_path / "out" / "photo.png").exists()


def _broken_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint whose stored map config names an argument the map does not take."""
    ckpt = _checkpoint(tmp_path / "broken.ckpt", _module_config(LOCAL_MAP))
    stored = torch.load(ckpt, weights_only=False)
    stored[BUILD_CONFIG_KEY]["transport_map"] = {**LOCAL_MAP, "no_such_argument": 3}
    torch.save(stored, ckpt)
    return ckpt


@pytest.mark.integration
def test_restore_speed_benchmark_reports_cpu_seconds() -> None:
    from tests.test_benchmarks import run_benchmark

    report = run_benchmark("restore_speed.py", "--megapixels", "0.05", "--ensemble", "1", "2")
    assert report["model"] == DEFAULT_MODEL and report["threads"] == 1
    settings = [(r["precision"], r["ensemble"]) for r in report["runs"]]
    assert settings == [("32", 1), ("32", 2), ("bf16", 1), ("bf16", 2)]
    assert report["cpu_s"] == report["runs"][0]["cpu_s"]
    assert report["runs"][0]["cpu_ratio_to_first"] == 1.0
    assert report["size"] == [194, 258]
    assert report["cpu_s"] > 0 and report["wall_s"] > 0
    # Both figures are rounded (cpu_s to 1 ms, the 12 MP one to 0.1 s): on an idle machine this
    # restore takes a fraction of a second, so the ms rounding times the 240x scale counts.
    scale = 12 / 0.050052
    assert report["cpu_s_12mp"] == pytest.approx(report["cpu_s"] * scale, abs=0.0005 * scale + 0.05)


@pytest.mark.integration
def test_restore_speed_benchmark_times_several_models_side_by_side() -> None:
    from tests.test_benchmarks import run_benchmark

    report = run_benchmark(
        "restore_speed.py",
        *("--megapixels", "0.02", "--precision", "32", "--rounds", "2"),
        *("--model", "denoise-blind", "allinone-blind"),
    )
    assert report["models"] == ["denoise-blind", "allinone-blind"]
    assert [r["model"] for r in report["runs"]] == ["denoise-blind", "allinone-blind"]
    for run in report["runs"]:
        assert len(run["rounds"]) == 2 and run["cpu_s"] == pytest.approx(
            sorted(run["rounds"])[0] / 2 + sorted(run["rounds"])[1] / 2, abs=2e-3
        )
    assert report["runs"][0]["cpu_ratio_to_first"] == 1.0
    assert report["runs"][1]["cpu_ratio_to_first"] == pytest.approx(
        report["runs"][1]["cpu_s"] / report["runs"][0]["cpu_s"], abs=2e-3
    )


@pytest.mark.integration
def test_quality_benchmark_scores_the_bundled_model() -> None:
    from tests.test_benchmarks import run_benchmark

    pytest.importorskip("sklearn", reason='held-out photos: pip install "rcot-lightning[quality]"')
    report = run_benchmark(
        "pretrained_quality.py",
        *("--methods", "pretrained", "--crop", "48", "--sigmas", "25", "--images", "china"),
    )
    result = report["results"]["sigma25"]
    assert set(result) == {"noisy", DEFAULT_MODEL}
    assert result[DEFAULT_MODEL]["mean"]["psnr"] > result["noisy"]["mean"]["psnr"]


def test_the_recipe_config_composes_and_builds(compose_train) -> None:
    from hydra.utils import instantiate

    from rcot_lightning.cli.app import as_dict

    cfg = compose_train("experiment=denoise_blind", tiny=False)
    assert list(cfg.data.degradation.sigma) == [0, 50]
    assert cfg.model.ema_decay == 0.999 and cfg.model.objective.supervised_weight == 1.0
    assert cfg.model.clipping.map == 0.5 and cfg.model.clipping.algorithm == "norm"
    assert cfg.model.objective.potential_weight == 0 and cfg.model.objective.fourier_weight == 0
    assert cfg.model.transport_map.dim == 16 and cfg.data.crops.patch_size == 64
    assert cfg.trainer.precision == "bf16-mixed"
    # Training data: scikit-image photos and generated images only, never a held-out photo.
    from rcot_lightning.data.heldout import HELDOUT_PHOTOS
    from rcot_lightning.data.samples import GREY_PHOTOS

    assert set(GREY_PHOTOS) <= set(cfg.data.train_images)
    assert not set(cfg.data.train_images) & set(HELDOUT_PHOTOS)
    module = build_module(as_dict(cfg.model))
    assert module.map_ema is not None
    stored = torch.load(available()[DEFAULT_MODEL].weights, weights_only=True)
    # The bundled entry is this recipe's map: the same config, key for key.
    assert stored["transport_map"] == as_dict(cfg.model.transport_map)
    assert instantiate(cfg.data).batch_size == 8
