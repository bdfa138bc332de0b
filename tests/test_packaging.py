"""The wheel: it ships every config, and installed elsewhere it trains, evaluates and restores.

The wheel is built from a copy of the repository and installed (without dependencies) into a
fresh virtual environment in a temporary folder. The dependencies come from the test's own
environment through ``PYTHONPATH`` (no ``.pth`` file there is executed, so the editable
install of ``rcot_lightning`` stays invisible): ``rcot_lightning`` itself and its configs can
only come from the wheel, and the commands run from a folder outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_CLI, cli_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "src" / "rcot_lightning" / "conf"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = dist.glob("rcot_lightning-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed; returns its bin folder."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return root / "bin"


def _env() -> dict[str, str]:
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    return cli_env(PYTHONPATH=os.pathsep.join(paths))


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def test_wheel_ships_every_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {
        f"rcot_lightning/conf/{p.relative_to(CONF).as_posix()}" for p in CONF.rglob("*.yaml")
    }
    assert len(configs) > 40
    assert configs <= names, sorted(configs - names)
    assert "rcot_lightning/py.typed" in names
    weights = REPO / "src" / "rcot_lightning" / "weights"
    bundled = {f"rcot_lightning/weights/{p.name}" for p in weights.iterdir() if p.suffix != ".py"}
    assert bundled >= {
        "rcot_lightning/weights/denoise-blind.pt",
        "rcot_lightning/weights/denoise-blind.yaml",
        "rcot_lightning/weights/denoise-blind-fast.pt",
        "rcot_lightning/weights/denoise-blind-fast.yaml",
    }
    assert bundled <= names, sorted(bundled - names)
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
        .decode()
    )
    for script in ("rcot-train", "rcot-eval", "rcot-restore", "rcot-export"):
        assert script in entry_points


def test_wheel_ships_the_licence(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(licence) == (REPO / "LICENSE").read_bytes()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert b"License-Expression: MIT" in metadata and b"License-File: LICENSE" in metadata


def test_installed_wheel_trains_evaluates_and_restores(venv: Path, tmp_path: Path) -> None:
    where = _run(
        [str(venv / "python"), "-c", "import rcot_lightning; print(rcot_lightning.__file__)"],
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv.parent), where.stdout

    trained = _run([str(venv / "python"), "-m", "rcot_lightning.train", *TINY_CLI], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    evaluated = _run(
        [str(venv / "rcot-eval"), f"ckpt_path={ckpt}", "split=val", "data.crops.val_crop_size=64"],
        tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "chelsea" in evaluated.stdout and "mean" in evaluated.stdout

    from PIL import Image

    Image.new("RGB", (45, 29), color=(200, 120, 40)).save(tmp_path / "photo.png")
    restored = _run(
        [
            str(venv / "rcot-restore"),
            f"ckpt_path={ckpt}",
            f"input={tmp_path / 'photo.png'}",
            f"output={tmp_path / 'restored'}",
        ],
        tmp_path,
    )
    assert restored.returncode == 0, restored.stderr[-3000:]
    with Image.open(tmp_path / "restored" / "photo.png") as image:
        assert image.size == (45, 29)


def test_installed_wheel_uses_a_user_config_dir(venv: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: rcot_tiny\n"
        "model:\n  objective:\n    lambda_gp: 2.5\ntrainer:\n  fast_dev_run: true\n"
    )
    proc = _run(
        [
            str(venv / "rcot-train"),
            "--config-dir",
            str(tmp_path / "my_conf"),
            "experiment=mine",
            "data.batch_size=2",
            "data.crops.patch_size=32",
            "data.crops.val_crop_size=64",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert config["model"]["objective"]["lambda_gp"] == 2.5
    assert config["model"]["transport_map"]["dim"] == 4  # rcot_tiny, from the packaged configs


def test_installed_wheel_restores_and_exports_with_the_bundled_model(
    venv: Path, tmp_path: Path
) -> None:
    from PIL import Image

    Image.new("RGB", (45, 29), color=(200, 120, 40)).save(tmp_path / "photo.png")
    restored = _run(
        [
            str(venv / "rcot-restore"),
            f"input={tmp_path / 'photo.png'}",
            f"output={tmp_path / 'restored'}",
        ],
        tmp_path,
    )
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert "model: bundled model denoise-blind" in restored.stdout
    with Image.open(tmp_path / "restored" / "photo.png") as image:
        assert image.size == (45, 29)

    exported = _run(
        [
            str(venv / "rcot-export"),
            "model=denoise-blind",
            "format=torchscript",
            f"output={tmp_path / 'denoise.pt'}",
        ],
        tmp_path,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "denoise.pt").is_file()
