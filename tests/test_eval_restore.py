"""``rcot_lightning.eval`` and ``rcot_lightning.restore`` on checkpoints, and ``load_module``."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from rcot_lightning.checkpoints.load import build_module, load_module
from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY
from rcot_lightning.cli.eval import evaluate
from rcot_lightning.cli.restore import restore_files
from rcot_lightning.cli.train import run
from rcot_lightning.data.images import read_image
from rcot_lightning.errors import RCOTError
from rcot_lightning.module import RCOTModule
from tests.conftest import run_cli

#: A transport map whose receptive field is local (two 3x3 convs): tiling must be exact.
LOCAL_MAP = {"_target_": "tests.hostile.LocalMap", "width": 8}


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of a 2-iteration run of the tiny model, written by the train entry point."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from tests.conftest import CONFIG_MODULE, TINY

    out = tmp_path_factory.mktemp("train")
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*TINY, "trainer.max_steps=4", "trainer.val_check_interval=2"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.paths.output_dir = str(out)
    HydraConfig().set_config(cfg)
    run(cfg)
    GlobalHydra.instance().clear()
    return out / "checkpoints" / "last.ckpt"


def _save_image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_load_module_rebuilds_the_trained_module(trained_checkpoint: Path) -> None:
    module = load_module(trained_checkpoint)
    assert isinstance(module, RCOTModule)
    assert module.iteration == 2 and not module.training
    state = torch.load(trained_checkpoint, weights_only=False)["state_dict"]
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_module_errors(tmp_path: Path) -> None:
    with pytest.raises(RCOTError, match="does not exist"):
        load_module(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RCOTError, match="not a readable PyTorch checkpoint"):
        load_module(junk)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(RCOTError, match="not an RCOT checkpoint"):
        load_module(foreign)


def test_eval_prints_a_table_and_saves_images_by_name(
    trained_checkpoint: Path, compose_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = compose_config(
        "eval", f"ckpt_path={trained_checkpoint}", "split=val", "data.crops.val_crop_size=64"
    )
    mean_psnr = evaluate(cfg)
    out = capsys.readouterr().out
    assert "chelsea" in out and "coffee" in out and "mean" in out
    assert {p.name for p in (tmp_path / "restored").iterdir()} == {"chelsea.png", "coffee.png"}
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["name"] for r in rows] == ["chelsea", "coffee", "mean"]
    assert list(rows[0]) == ["name", "psnr_input", "ssim_input", "psnr", "ssim"]  # no extras
    assert float(rows[-1]["psnr"]) == pytest.approx(mean_psnr)
    assert read_image(tmp_path / "restored" / "chelsea.png").shape == (3, 64, 64)


def test_eval_tile_restores_in_tiles_of_that_size(
    trained_checkpoint: Path, compose_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rcot_lightning.checkpoints.load as load

    loaded: list[RCOTModule] = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        loaded.append(load_module(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(load, "load_module", spy)
    cfg = compose_config(
        "eval",
        f"ckpt_path={trained_checkpoint}",
        "split=val",
        "data.crops.val_crop_size=80",
        "tile=64",
    )
    evaluate(cfg)
    (module,) = loaded
    assert module.evaluation.val_tile_size == 64
    assert module.hparams["evaluation"]["val_tile_size"] == 64


def test_eval_fid_and_lpips_run_offline_and_say_why_a_score_is_skipped(
    trained_checkpoint: Path,
    compose_config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An empty torch hub: whatever is installed, the pretrained weights are absent.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    overrides = [f"ckpt_path={trained_checkpoint}", "split=val", "fid=true", "save_images=false"]
    cfg = compose_config("eval", *overrides, "data.crops.val_crop_size=96", "lpips=true")
    evaluate(cfg)  # 96x96 images: 4 patches of 64x64 each
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 3
    assert notes[0].startswith("note: LPIPS skipped: ")
    assert notes[1].startswith("note: Inception FID skipped: ")
    assert "torch-fidelity" in notes[1] or "weights" in notes[1]
    assert "FID rf, KID rf: random-conv features" in notes[2]
    assert "FID rf" in out and "KID rf" in out
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert list(rows[0]) == [
        *("name", "psnr_input", "ssim_input", "psnr", "ssim"),
        *("lpips", "fid", "kid", "fid_inception"),
    ]
    image, mean = rows[0], rows[-1]
    assert image["fid"] == image["kid"] == image["lpips"] == ""  # per set / skipped
    assert mean["lpips"] == mean["fid_inception"] == ""
    assert float(mean["fid"]) > 0 and np.isfinite(float(mean["kid"]))

    # The same images give the same distances (KID's subsets are seeded).
    evaluate(cfg)
    again = list(csv.DictReader((tmp_path / "metrics.csv").open()))[-1]
    assert (again["fid"], again["kid"]) == (mean["fid"], mean["kid"])

    # Images smaller than a patch: no FID/KID, and one line says why.
    evaluate(compose_config("eval", *overrides, "data.crops.val_crop_size=48"))
    out = capsys.readouterr().out
    assert "note: FID/KID skipped for val: FID/KID need at least 2 patches of 64x64" in out
    assert list(csv.DictReader((tmp_path / "metrics.csv").open()))[-1]["fid"] == ""


def test_eval_uses_lpips_and_inception_fid_when_their_weights_are_present(
    trained_checkpoint: Path,
    compose_config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stand-ins for the pretrained metrics (no weights here): any torchmetrics metric with the
    # same calls. LPIPS -> per-image MSE; Inception FID -> FID on a tiny random network.
    from torchmetrics import MeanSquaredError

    from rcot_lightning import metrics
    from rcot_lightning.metrics import pretrained_probes as probes

    present = metrics.MetricAvailability(True, "stand-in")
    monkeypatch.setattr(probes, "lpips_available", lambda: present)
    monkeypatch.setattr(probes, "inception_fid_available", lambda weights_path=None: present)
    monkeypatch.setattr(probes, "lpips", lambda: MeanSquaredError())
    seen: list[str | None] = []

    def inception_fid(weights_path: str | None = None) -> object:
        seen.append(weights_path)
        return metrics.feature_fid(torch.nn.Conv2d(3, 4, 3), num_features=4)

    monkeypatch.setattr(probes, "inception_fid", inception_fid)
    cfg = compose_config(
        "eval",
        f"ckpt_path={trained_checkpoint}",
        "split=val",
        "data.crops.val_crop_size=64",
        "fid=true",
        "lpips=true",
        "inception_weights=/weights/inception.pth",
        "save_images=false",
    )
    evaluate(cfg)
    out = capsys.readouterr().out
    assert "skipped" not in out
    assert seen == ["/weights/inception.pth"]
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    lpips = [float(r["lpips"]) for r in rows[:-1]]
    assert all(value > 0 for value in lpips)
    assert float(rows[-1]["lpips"]) == pytest.approx(sum(lpips) / 2)
    assert np.isfinite(float(rows[-1]["fid_inception"]))
    assert np.isfinite(float(rows[-1]["fid"]))  # 64x64 images: one patch each, two in all


def test_restore_keeps_odd_sizes_and_tiles_match_whole_images(
    trained_checkpoint: Path, compose_config, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    _save_image(inputs / "odd.png", 37, 53)  # sides not multiples of 8
    whole = restore_files(
        compose_config(
            "restore",
            f"ckpt_path={trained_checkpoint}",
            f"input={inputs}",
            f"output={tmp_path / 'whole'}",
            "tile=null",
        )
    )
    tiled = restore_files(
        compose_config(
            "restore",
            f"ckpt_path={trained_checkpoint}",
            f"input={inputs}",
            f"output={tmp_path / 'tiled'}",
            "tile=64",
            "tile_overlap=16",
        )
    )
    a, b = read_image(whole[0]), read_image(tiled[0])
    assert a.shape == b.shape == (3, 37, 53)
    assert (a - b).abs().max() <= 1e-4  # the image fits in one tile: the same computation


def test_tiled_restore_of_a_local_map_equals_the_whole_image(
    compose_config, tmp_path: Path
) -> None:
    from rcot_lightning.inference import restore_image

    config = {
        "_target_": "rcot_lightning.RCOTModule",
        "transport_map": LOCAL_MAP,
        "potential": {"_target_": "rcot_lightning.nets.Potential", "channels": [4, 4]},
    }
    module = build_module(config)
    ckpt = tmp_path / "local.ckpt"
    torch.save({"state_dict": module.state_dict(), BUILD_CONFIG_KEY: module.build_config}, ckpt)
    image = _save_image(tmp_path / "big.png", 101, 157, seed=1)
    (path,) = restore_files(
        compose_config(
            "restore",
            f"ckpt_path={ckpt}",
            f"input={image}",
            f"output={tmp_path / 'out'}",
            "tile=48",
            "tile_overlap=32",
            "trusted_targets=[tests.hostile]",
        )
    )
    with torch.no_grad():
        net = load_module(ckpt, trusted_targets=["tests.hostile"]).map_for_inference
        expected = restore_image(net, read_image(image)[None])
    restored = read_image(path)
    # Both went through 8-bit PNG: allow one quantisation step where rounding differs.
    assert (restored - expected[0].clamp(0, 1)).abs().max() <= 1 / 255 + 1e-6
    with torch.no_grad():
        y = read_image(image)[None]
        tiled = restore_image(net, y, tile=48, overlap=32)
        untiled = restore_image(net, y)
    assert (tiled - untiled).abs().max() <= 1e-4


def test_restore_self_ensemble_writes_the_averaged_map(
    trained_checkpoint: Path, compose_config, tmp_path: Path
) -> None:
    from rcot_lightning.inference import restore_image

    image = _save_image(tmp_path / "photo.png", 29, 43, seed=2)

    def run(*overrides: str, output: str = "out") -> Path:
        (path,) = restore_files(
            compose_config(
                "restore",
                f"ckpt_path={trained_checkpoint}",
                f"input={image}",
                f"output={tmp_path / output}",
                "tile=null",
                *overrides,
            )
        )
        return path

    ensembled = read_image(run("ensemble=8"))
    with torch.no_grad():
        net = load_module(trained_checkpoint).map_for_inference
        expected = restore_image(net, read_image(image)[None], ensemble=8)[0].clamp(0, 1)
    assert (ensembled - expected).abs().max() <= 1 / 255 + 1e-6
    with pytest.raises(RCOTError, match=r"ensemble must be one of 1, 2, 4, 8 .* got 3"):
        run("ensemble=3", output="refused")
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("module", ["rcot_lightning.eval", "rcot_lightning.restore"])
@pytest.mark.integration
def test_commands_report_a_missing_checkpoint_in_one_line(module: str, tmp_path: Path) -> None:
    args = ["ckpt_path=missing.ckpt"]
    if module.endswith("restore"):
        args += [f"input={_save_image(tmp_path / 'x.png', 9, 9)}", f"output={tmp_path / 'o'}"]
    proc = run_cli(module, *args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    prog = "rcot-eval" if module.endswith("eval") else "rcot-restore"
    assert proc.stderr.strip().splitlines() == [
        f"{prog}: error: ckpt_path: missing.ckpt does not exist; pass a .ckpt file written by "
        "rcot_lightning.train (e.g. <run folder>/checkpoints/last.ckpt)"
    ]


def _training_runs(root: Path, checkpoint: Path, names: list[str]) -> list[Path]:
    """Copies of ``checkpoint`` as the last.ckpt of training runs ``names``, saved in order."""
    import os
    import shutil

    paths = []
    for age, name in enumerate(reversed(names)):
        path = root / "outputs" / "train" / "runs" / name / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        shutil.copy(checkpoint, path)
        os.utime(path, (1e9 - age * 100, 1e9 - age * 100))  # the last name saved last
        paths.append(path)
    return paths[::-1]


@pytest.mark.parametrize("command", ["eval", "restore", "export"])
def test_ckpt_path_last_is_the_latest_training_run(
    trained_checkpoint: Path,
    compose_config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    _, latest = _training_runs(tmp_path, trained_checkpoint, ["2026-01-01_00-00-00", "b"])
    if command == "eval":
        cfg = compose_config("eval", "ckpt_path=last", "split=val", "data.crops.val_crop_size=32")
        evaluate(cfg)
    elif command == "restore":
        image = _save_image(tmp_path / "x.png", 16, 16)
        cfg = compose_config(
            "restore", "ckpt_path=last", f"input={image}", f"output={tmp_path / 'o'}"
        )
        restore_files(cfg)
    else:
        from rcot_lightning.cli.export import export_files

        cfg = compose_config(
            "export", "ckpt_path=last", "format=torchscript", f"output={tmp_path / 'm.pt'}"
        )
        export_files(cfg)
    assert f"model: checkpoint {latest}" in capsys.readouterr().out


@pytest.mark.integration
def test_ckpt_path_last_without_a_training_run_says_where_it_looked(tmp_path: Path) -> None:
    """One command stands for the three (they share ``app.checkpoint_of``)."""
    image = _save_image(tmp_path / "x.png", 9, 9)
    proc = run_cli(
        "rcot_lightning.restore", "ckpt_path=last", f"input={image}", "output=o", cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "rcot-restore: error: ckpt_path=last: no training run under ./outputs/train/runs has "
        "a checkpoints/last.ckpt; train one first (python -m rcot_lightning.train), pass "
        "ckpt_path=<file>.ckpt, or set train_runs=<folder holding the training runs>"
    ]


@pytest.mark.parametrize(("native", "expected"), [("0", "32"), ("1", "bf16")])
def test_restore_bf16_runs_in_fp32_where_the_cpu_has_no_native_bf16(
    native: str, expected: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rcot_lightning.cli.restore import run_precision

    monkeypatch.setenv("RCOT_NATIVE_BF16", native)
    assert run_precision("bf16", torch.device("cpu")) == expected
    assert run_precision("32", torch.device("cpu")) == "32"
    notes = [r.getMessage() for r in caplog.records if "no native bf16" in r.getMessage()]
    assert len(notes) == (native == "0")
    assert all(n.startswith("precision: this CPU (") for n in notes)
    with pytest.raises(RCOTError, match="precision must be auto, 32 or bf16, got '16'"):
        run_precision("16", torch.device("cpu"))


def test_restore_says_the_ensemble_it_used(
    compose_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing confirmed that ensemble=8 was used: its last line (and restore.log) says so."""
    image = _save_image(tmp_path / "x.png", 16, 16)
    for ensemble, said in ((8, " (ensemble=8: each the mean of 8 flips/rotations)"), (1, "")):
        out = tmp_path / f"o{ensemble}"
        cfg = compose_config("restore", f"ensemble={ensemble}", f"input={image}", f"output={out}")
        restore_files(cfg)
        assert capsys.readouterr().out.splitlines()[-1] == f"restored 1 image(s) into {out}{said}"


def test_restore_through_onnxruntime_writes_what_the_torch_backend_writes(
    compose_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """backend=onnxruntime (issue 28, item 3): the bundled map exported and run by ONNX Runtime,
    tiled as the map itself is (odd size, several tiles), to the same 8-bit image within one
    level; the run says which backend it used."""
    pytest.importorskip("onnxruntime", reason='backend=onnxruntime: pip install ".[export]"')
    image = _save_image(tmp_path / "photo.png", 75, 93, seed=3)

    def run(backend: str) -> Path:
        cfg = compose_config(
            "restore",
            f"backend={backend}",
            f"input={image}",
            f"output={tmp_path / backend}",
            "tile=64",
            "tile_overlap=16",
            # Both in float32: precision=auto would run torch in bf16 on a CPU with native bf16.
            "precision=32",
        )
        (path,) = restore_files(cfg)
        return path

    onnx = read_image(run("onnxruntime"))
    assert "backend: onnxruntime (CPU provider," in capsys.readouterr().out
    torch_written = read_image(run("torch"))
    assert "backend:" not in capsys.readouterr().out
    assert onnx.shape == torch_written.shape == (3, 75, 93)
    assert (onnx - torch_written).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize(
    ("overrides", "threshold", "hide", "expected"),
    [
        ([], 1e-3, None, "onnxruntime"),  # the default: auto, above the (lowered) threshold
        ([], 1e3, None, "torch"),  # small images: the export would cost more than it saves
        (["precision=bf16"], 1e-3, None, "torch"),  # bf16 asked: only PyTorch runs it
        ([], 1e-3, "onnxruntime", "torch"),  # the export extra not installed
        ([], 1e-3, "export", "torch"),  # a map that does not export: warned, then PyTorch
    ],
    ids=["large", "small", "bf16", "not-installed", "export-fails"],
)
def test_backend_auto_runs_onnxruntime_only_where_it_can_and_pays(
    overrides: list[str],
    threshold: float,
    hide: str | None,
    expected: str,
    compose_config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """backend=auto (the default): ONNX Runtime on the CPU in float32 from
    AUTO_ONNX_MEGAPIXELS of input when onnx and onnxruntime are installed, PyTorch otherwise;
    the line says which, and the image is the one PyTorch writes in float32 (within a level)."""
    import sys

    import rcot_lightning.cli.restore as restore_module

    pytest.importorskip("onnxruntime", reason='backend=onnxruntime: pip install ".[export]"')
    monkeypatch.setattr(restore_module, "AUTO_ONNX_MEGAPIXELS", threshold)
    if hide == "onnxruntime":
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec: not installed
    if hide == "export":

        def no_export(net: torch.nn.Module) -> torch.nn.Module:
            raise RCOTError("this map does not export")

        monkeypatch.setattr(restore_module, "OnnxRuntimeMap", no_export)
    monkeypatch.setenv("RCOT_NATIVE_BF16", "0")  # precision=auto is float32 on any CPU here
    image = _save_image(tmp_path / "photo.png", 40, 56, seed=5)

    def run(*extra: str, name: str) -> Tensor:
        cfg = compose_config(
            "restore", *extra, f"input={image}", f"output={tmp_path / name}", "device=cpu"
        )
        (path,) = restore_files(cfg)
        return read_image(path)

    with caplog.at_level(logging.WARNING):
        auto = run(*overrides, name="auto")
    out = capsys.readouterr().out
    if expected == "onnxruntime":
        assert "backend: auto chose onnxruntime (CPU provider," in out
    else:
        assert "backend:" not in out  # PyTorch goes unsaid
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if hide == "export":
        assert warned == [
            "backend=auto: ONNX Runtime cannot run this map (this map does not export); using torch"
        ]
    if "precision=bf16" not in overrides:
        reference = run("backend=torch", "precision=32", name="torch")
        assert (auto - reference).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize(
    ("override", "native", "message"),
    [
        (
            "backend=tensorrt",
            "1",
            "backend: 'tensorrt' is not a backend; use auto, torch or onnxruntime",
        ),
        *(
            (
                "precision=bf16",
                native,
                "precision: backend=onnxruntime runs the map in float32; use precision=32 (or "
                "auto), or backend=torch for bf16",
            )
            for native in ("1", "0")
        ),
        (
            "device=cuda",
            "1",
            "device: backend=onnxruntime runs on the CPU, not cuda; use device=cpu, or "
            "backend=torch for the GPU",
        ),
    ],
    ids=["unknown-backend", "bf16-native", "bf16-emulated", "gpu"],
)
def test_restore_refuses_a_backend_it_cannot_run_before_any_work(
    override: str,
    native: str,
    message: str,
    compose_config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The refusal is the only thing said: on a CPU without native bf16 no "bf16 is emulated"
    warning comes first, and no GPU check runs for a backend that never uses one."""
    monkeypatch.setenv("RCOT_NATIVE_BF16", native)
    image = _save_image(tmp_path / "x.png", 16, 16)
    overrides = ["backend=onnxruntime", override] if override != "backend=tensorrt" else [override]
    cfg = compose_config("restore", *overrides, f"input={image}", f"output={tmp_path / 'o'}")
    with caplog.at_level(logging.WARNING), pytest.raises(RCOTError) as err:
        restore_files(cfg)
    assert str(err.value) == message
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not (tmp_path / "o").exists()
