"""Hydra multiruns of ``rcot_lightning.cli.train``: basic grid, optuna, and with DDP processes.

Each test runs one command of tiny jobs (5-15 s on a 2-core CPU), so they are not marked slow;
the last one checks the launch of one sweep job in-process.

The trap tested here: Lightning starts DDP ranks 1..N-1 by re-running the command line, which
under ``-m`` would start a second sweep in every child. Each job's ranks must compose that
job's config and write into that job's folder, and the next job must start its own ranks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_CLI, run_cli

# Subprocesses: the integration tier (docs/development.md).
pytestmark = pytest.mark.integration


def _sweep_folder(root: Path) -> Path:
    train = root / "outputs" / "train"
    assert not (train / "runs").exists(), "a process ran outside the sweep (single-run folder)"
    (sweep,) = (train / "multiruns").iterdir()  # one sweep, no nested or second sweep
    return sweep


def _jobs(sweep: Path) -> list[Path]:
    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def _child_overrides(job: Path, rank: int = 1) -> str:
    log = (job / f"train_ddp_process_{rank}.log").read_text()
    (line,) = [ln for ln in log.splitlines() if "job overrides:" in ln]
    return line


def test_basic_grid_sweep(tmp_path: Path) -> None:
    proc = run_cli(
        "rcot_lightning.train", "-m", *TINY_CLI, "model.objective.lambda_gp=5,10", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(_sweep_folder(tmp_path))
    assert [j.name for j in jobs] == ["0", "1"]
    for job, lam in zip(jobs, (5, 10), strict=True):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert config["model"]["objective"]["lambda_gp"] == lam
        assert (job / "checkpoints" / "last.ckpt").is_file()


def test_optuna_sweep_two_trials(tmp_path: Path) -> None:
    proc = run_cli(
        "rcot_lightning.train",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        *TINY_CLI,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = _sweep_folder(tmp_path)
    assert [j.name for j in _jobs(sweep)] == ["0", "1"]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert results["best_value"] > 10  # a PSNR in dB, returned by train
    assert "model.map_optimizer.lr" in results["best_params"]


@pytest.mark.parametrize("sweeper", ["basic", "optuna"])
def test_sweep_with_two_ddp_processes_per_job(tmp_path: Path, sweeper: str) -> None:
    if sweeper == "basic":
        args = ["-m", "model.objective.lambda_gp=5,10"]
    else:
        args = [
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.n_startup_trials=2",
        ]
    proc = run_cli("rcot_lightning.train", *args, *TINY_CLI, "trainer.devices=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = _sweep_folder(tmp_path)
    jobs = _jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        # Rank 1 of this job logged into this job's folder, with this job's overrides...
        child = _child_overrides(job)
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        for override in overrides:
            assert override in child, (override, child)
        assert config["trainer"]["devices"] == 2
        # ...and the job's checkpoint saw both ranks' data: 2 iterations of 2 x 2 images.
        assert (job / "checkpoints" / "last.ckpt").is_file()
    # rank 1 never wrote hydra's job files anywhere (output_subdir is null for children)
    assert sorted(p.name for p in sweep.rglob("config.yaml")) == ["config.yaml", "config.yaml"]


def _photo_like_folder(root: Path, count: int) -> Path:
    """``count`` 64x64 images with smooth gradients and a little texture (not flat colour)."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 64)
    for i in range(count):
        base = np.stack(
            [np.add.outer(ramp * (c + 1) / 3, ramp * (i % 3) / 3) for c in range(3)], -1
        )
        image = (base / base.max() * 200 + rng.uniform(0, 40, base.shape)).astype(np.uint8)
        Image.fromarray(image).save(root / f"{i:02d}.png")
    return root


def test_optuna_sweep_on_unpaired_data_searches_no_supervised_key(tmp_path: Path) -> None:
    clean = _photo_like_folder(tmp_path / "clean", 8)
    data = (
        "data=unpaired",
        f"data.clean_dir={clean}",
        f"data.val_sets='{clean}'",
        "data.loader.num_workers=0",
    )
    sweep = ("hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2")
    # The paired search space names the supervised weight, which unpaired data rejects, and says
    # which search space to use instead.
    proc = run_cli(
        "rcot_lightning.train", "hparams_search=optuna", *sweep, *TINY_CLI, *data, cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "hparams_search=optuna_unpaired" in proc.stderr
    proc = run_cli(
        "rcot_lightning.train",
        "hparams_search=optuna_unpaired",
        *sweep,
        *TINY_CLI,
        *data,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeps = sorted((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    results = yaml.safe_load((sweeps[-1] / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {
        "model.map_optimizer.lr",
        "model.potential_optimizer.lr",
        "model.objective.transport_weight",
        "model.objective.lambda_gp",
    }
    assert results["best_value"] > 10  # a PSNR in dB


def test_ddp_launch_of_a_sweep_job_points_children_at_the_job_and_restores_run_dir(
    compose_train, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the children's command line and folder, and ``run.dir`` left unresolved."""
    import sys

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf, read_write

    from rcot_lightning.cli.launch import hydra_ddp_launch

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "model.map_optimizer.lr=1e-3,1e-4"])
    cfg = compose_train("model.map_optimizer.lr=1e-4")
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.overrides.task = ["model.map_optimizer.lr=1e-4"]
    HydraConfig().set_config(cfg)

    def run_dir() -> str:
        run = OmegaConf.to_container(HydraConfig.get().run, resolve=False)
        assert isinstance(run, dict)
        return str(run["dir"])

    before = run_dir()
    assert before.startswith("${rcot_run_dir:")  # resolving it would claim a run folder
    with hydra_ddp_launch():
        assert sys.argv == ["train.py", "model.map_optimizer.lr=1e-4", "hydra.mode=RUN"]
        assert run_dir() == HydraConfig.get().runtime.output_dir
    assert run_dir() == before
    assert sys.argv == ["train.py", "-m", "model.map_optimizer.lr=1e-3,1e-4"]
