"""``rcot_lightning.cli.train`` through the real configs.

In-process: every task and every CPU-capable hardware config with ``fast_dev_run`` on the tiny
model, resume from ``last.ckpt``, the CSV / TensorBoard / wandb loggers with their pictures. As
commands: real DDP relaunches with 2 and 4 CPU processes (about 10 s each) and, marked slow,
the default job (``python -m rcot_lightning.train`` with no argument, one to two minutes).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import torch

from rcot_lightning.cli.train import run
from rcot_lightning.contract import DegradationId
from rcot_lightning.data.degradations import Degradation
from tests.conftest import TINY_CLI, run_cli

TASKS = ("denoise", "derain", "dehaze", "deblur", "sr", "lowlight", "jpeg", "custom")
TASK_IDS = {
    "denoise": DegradationId.NOISE,
    "derain": DegradationId.RAIN,
    "dehaze": DegradationId.HAZE,
    "deblur": DegradationId.BLUR,
    "sr": DegradationId.SR,
    "lowlight": DegradationId.LOWLIGHT,
    "jpeg": DegradationId.JPEG,
    "custom": DegradationId.OTHER,
}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_runs_fast_dev_run(compose_train, task: str, tmp_path: Path) -> None:
    cfg = compose_train(f"task={task}", "trainer.fast_dev_run=true")
    result = run(cfg)
    dm, model = result.datamodule, result.model
    assert result.trainer.state.finished
    assert model.iteration == 1
    assert dm.degradation_id == TASK_IDS[task]
    if task == "custom":  # no synthetic degradation of its own: the samples' default noise
        assert cfg.data.degradation is None
    else:
        assert isinstance(dm.degradation, Degradation)
    # The task's Fourier norm and metric conventions reached the module.
    expected = 2 if task == "denoise" else 1
    assert int(model.objective.fourier_exponents[TASK_IDS[task]]) == expected
    assert model.evaluation.y_channel == cfg.task.metric.y_channel
    assert model.evaluation.crop_border == cfg.task.metric.crop_border
    assert model.hparams.evaluation == dataclasses.asdict(model.evaluation)
    # fast_dev_run swaps the logger for a dummy: the picture lands in the run folder.
    assert (tmp_path / "images" / "val_1.png").is_file()


@pytest.mark.parametrize("hardware", ["auto", "cpu", "bf16", "ddp"])
def test_cpu_hardware_configs_run(
    compose_train, hardware: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RCOT_NATIVE_BF16", "1")  # as on a CPU with AVX-512 BF16 or AMX
    cfg = compose_train(f"hardware={hardware}", "trainer.fast_dev_run=true")
    trainer = run(cfg).trainer
    assert trainer.state.finished
    assert trainer.precision == ("bf16-mixed" if hardware == "bf16" else "32-true")
    if hardware == "ddp":  # one CPU process, but the strategy RCOT needs under DDP
        assert type(trainer.strategy).__name__ == "DDPStrategy"
        assert trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True
    assert not torch.distributed.is_initialized()  # torn down for the next job


@pytest.mark.parametrize("hardware", ["bf16", "cpu_fast"])
@pytest.mark.integration
def test_bf16_without_native_bf16_runs_in_fp32_with_one_line(
    compose_train, hardware: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RCOT_NATIVE_BF16", "0")  # as on an AVX2-only CPU (AMD EPYC Zen 3)
    cfg = compose_train(f"hardware={hardware}", "trainer.fast_dev_run=true")
    assert run(cfg).trainer.precision == "32-true"
    (note,) = [r.getMessage() for r in caplog.records if "no native bf16" in r.getMessage()]
    assert note.startswith("trainer.precision: this CPU (") and "running in fp32 instead" in note


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("hardware", ["gpu", "fp16", "bf16"])
def test_gpu_hardware_configs_run(compose_train, hardware: str) -> None:
    cfg = compose_train(
        f"hardware={hardware}", "trainer.accelerator=gpu", "trainer.fast_dev_run=true"
    )
    trainer = run(cfg).trainer
    assert trainer.state.finished
    assert trainer.strategy.root_device.type == "cuda"


@pytest.mark.integration
def test_resume_from_last_checkpoint_continues_iterations(compose_train, tmp_path: Path) -> None:
    first = run(compose_train("trainer.max_steps=4", "trainer.val_check_interval=2"))
    assert first.model.iteration == 2 and first.trainer.global_step == 4
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file()
    saved = tmp_path / "resume-from.ckpt"
    shutil.copy(last, saved)

    second = run(
        compose_train("trainer.max_steps=8", "trainer.val_check_interval=2", f"ckpt_path={saved}")
    )
    assert second.model.iteration == 4
    assert second.trainer.global_step == 8
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["rcot_iteration"] == 4
    assert checkpoint["global_step"] == 8


@pytest.mark.integration
def test_csv_logger_metrics_pictures_and_checkpoints(compose_train, tmp_path: Path) -> None:
    cfg = compose_train(
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "callbacks.image_logger.every_n_steps=1",
        "trainer.log_every_n_steps=1",
        "test=true",
        "data.val_images=[chelsea]",  # the test split: chelsea at full size
    )
    result = run(cfg)
    assert result.metric is not None and result.metric > 0  # best val/psnr
    assert "test/psnr" in result.trainer.callback_metrics
    version = tmp_path / "csv" / "version_0"
    header = (version / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("train/map_loss", "train/potential_loss", "train/lr_map", "val/psnr", "val/ssim"):
        assert key in header
    assert {"lr-Adam", "lr-RMSprop"} <= set(header)  # the learning-rate monitor (map, phi)
    pictures = {p.name for p in (version / "images").iterdir()}
    assert {"train_1.png", "train_2.png", "val_2.png"} <= pictures
    names = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "last.ckpt" in names
    assert any(re.fullmatch(r"best-iter000002-psnr\d+\.\d\d\.ckpt", n) for n in names), names


@pytest.mark.integration
def test_tensorboard_logger_gets_scalars_and_pictures(compose_train, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(compose_train("logger=tensorboard", "trainer.max_steps=4", "trainer.val_check_interval=2"))
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0].parent)).Reload()
    assert "val/psnr" in accumulator.Tags()["scalars"]
    assert "val/restoration" in accumulator.Tags()["images"]


@pytest.mark.integration
def test_wandb_runs_offline_without_a_key(
    compose_train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no ~/.config/wandb
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    cfg = compose_train("logger=wandb", "trainer.max_steps=2", "trainer.val_check_interval=1")
    assert cfg.logger.wandb.offline is True
    result = run(cfg)
    assert result.trainer.state.finished
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline run folder"


def test_wandb_goes_online_when_a_key_is_configured(
    compose_train, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert compose_train("logger=wandb").logger.wandb.offline is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert compose_train("logger=wandb").logger.wandb.offline is True


def _run_folders(root: Path) -> list[Path]:
    return sorted(p for p in (root / "outputs" / "train" / "runs").iterdir() if p.is_dir())


@pytest.mark.parametrize("devices", [2, 4])
@pytest.mark.integration
def test_ddp_on_cpu_processes(tmp_path: Path, devices: int) -> None:
    proc = run_cli(
        "rcot_lightning.train",
        *TINY_CLI,
        f"trainer.devices={devices}",
        "data.samples_per_epoch=16",  # 2 batches of 2 per rank and epoch even with 4 ranks
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "iterations: 2  (global steps: 4)" in proc.stdout
    (folder,) = _run_folders(tmp_path)  # every rank wrote into the same run folder
    logs = {p.name for p in folder.glob("*.log")}
    assert logs == {"train.log"} | {f"train_ddp_process_{r}.log" for r in range(1, devices)}
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["rcot_iteration"] == 2
    assert f"devices: {devices}" in (folder / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.integration
def test_default_job_gains_six_db_on_the_sample_photos(tmp_path: Path) -> None:
    """`python -m rcot_lightning.train` with no argument (the README's first command)."""
    proc = run_cli("rcot_lightning.train", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    noisy = re.search(r"validation input\s+: PSNR ([\d.]+) dB", proc.stdout)
    restored = re.search(r"validation restored: PSNR ([\d.]+) dB", proc.stdout)
    assert noisy and restored, proc.stdout[-2000:]
    assert float(restored.group(1)) - float(noisy.group(1)) >= 6.0, proc.stdout[-2000:]
    assert "checkpoints:" in proc.stdout and "pictures:" in proc.stdout
