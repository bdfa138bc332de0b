"""Faults that used to print a traceback (or hang) now end in one line naming what to do."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch

from rcot_lightning.checkpoints.load import build_module, load_module
from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY
from rcot_lightning.cli import app
from rcot_lightning.cli.train import run
from rcot_lightning.errors import RCOTError
from tests.conftest import TINY, run_cli


def _training_checkpoint(compose_train, path: Path, *model_overrides: str) -> Path:
    module = build_module(app.as_dict(compose_train(*model_overrides).model))
    torch.save(
        {
            "state_dict": module.state_dict(),
            "optimizer_states": [],
            BUILD_CONFIG_KEY: module.build_config,
        },
        path,
    )
    return path


def _resume_error(compose_train, ckpt: Path | str) -> str:
    with pytest.raises(RCOTError) as info:
        run(compose_train("trainer.max_steps=2", f"ckpt_path={ckpt}"))
    message = app.user_error_message(info.value)
    assert message is not None and "\n" not in message
    return message


def test_resume_from_another_model_size_is_one_line(compose_train, tmp_path: Path) -> None:
    wider = _training_checkpoint(compose_train, tmp_path / "w.ckpt", "model.transport_map.dim=8")
    message = _resume_error(compose_train, wider)
    assert message.startswith(f"ckpt_path: {wider} was written by a model of another size")
    assert "resume with the model config it was trained with" in message


@pytest.mark.integration
def test_resume_from_missing_truncated_or_foreign_files_is_one_line(
    compose_train, tmp_path: Path
) -> None:
    good = _training_checkpoint(compose_train, tmp_path / "good.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    missing = tmp_path / "missing.ckpt"
    assert _resume_error(compose_train, missing).startswith(f"ckpt_path: {missing} does not exist")
    assert _resume_error(compose_train, truncated).startswith(
        f"ckpt_path: {truncated} is not a readable PyTorch checkpoint"
    )
    assert _resume_error(compose_train, foreign).startswith(
        f"ckpt_path: {foreign} is not a Lightning training checkpoint"
    )


def test_a_checkpoint_with_non_finite_weights_is_refused(compose_train, tmp_path: Path) -> None:
    module = build_module(app.as_dict(compose_train().model))
    state = module.state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    path = tmp_path / "nan.ckpt"
    torch.save({"state_dict": state, BUILD_CONFIG_KEY: module.build_config}, path)
    with pytest.raises(RCOTError, match=rf"ckpt_path: {path} has non-finite weights \({key}\)"):
        load_module(path)


def test_unknown_precision_is_one_line(compose_train) -> None:
    with pytest.raises(RCOTError, match=r"^trainer.precision=13: .*; use 32-true, bf16-mixed"):
        run(compose_train("trainer.precision=13"))


def test_wandb_online_without_network_fails_fast(
    compose_train, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    cfg = compose_train("logger=wandb", "trainer.max_steps=2")
    start = time.monotonic()
    with pytest.raises(RCOTError, match=r"^logger=wandb: a wandb API key is configured but "):
        run(cfg)
    assert time.monotonic() - start < 30


def test_unexpected_exceptions_are_one_line_with_the_log_holding_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    handler = logging.FileHandler(tmp_path / "train.log")  # what Hydra gives a run
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(SystemExit) as info, app.exit_on_user_error("rcot-train"):
            raise KeyError("a bug")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert info.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    log = tmp_path / "train.log"
    assert line == (
        f"rcot-train: error: unexpected KeyError: 'a bug' (traceback: {log}; "
        "HYDRA_FULL_ERROR=1 prints it)"
    )
    assert "Traceback (most recent call last)" in log.read_text()


def test_unexpected_exception_before_a_run_folder_goes_to_a_temporary_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with pytest.raises(SystemExit), app.exit_on_user_error("rcot-eval"):
        raise RuntimeError("boom")
    (line,) = capsys.readouterr().err.strip().splitlines()
    path = Path(line.split("(traceback: ")[1].split(";")[0])
    assert line.startswith("rcot-eval: error: unexpected RuntimeError: boom")
    assert "RuntimeError: boom" in path.read_text()
    path.unlink()


@pytest.mark.integration
def test_the_command_prints_one_line_for_a_truncated_resume_file(
    compose_train, tmp_path: Path
) -> None:
    good = _training_checkpoint(compose_train, tmp_path / "good.ckpt")
    truncated = tmp_path / "t.ckpt"
    truncated.write_bytes(good.read_bytes()[:100])
    proc = run_cli("rcot_lightning.train", *TINY, f"ckpt_path={truncated}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"rcot-train: error: ckpt_path: {truncated} is not a readable")
