"""Bad config values end ``rcot-train`` with one line on stderr and exit status 2."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rcot_lightning.cli.app import _one_line, user_error_message
from rcot_lightning.errors import ArgumentError, RCOTError
from tests.conftest import cli_env, run_cli

CASES = [
    (
        ["task=foo"],
        "rcot-train: error: In 'train': Could not find 'task/foo'; Available options in 'task': "
        "custom, deblur, dehaze, denoise, derain, jpeg, lowlight, sr",
    ),
    (
        ["task.degradation.sigma=-5"],
        "rcot-train: error: task.degradation.sigma must be >= 0, got -5",  # the key typed
    ),
    (
        ["model.map_grad_clip=null"],
        "rcot-train: error: Could not override 'model.map_grad_clip': no such key; "
        "model.map_grad_clip was moved; use model.clipping.map instead",
    ),
    (
        ["model.no_such_key=1"],
        "rcot-train: error: Could not override 'model.no_such_key': no such key; check its "
        "spelling (--cfg job on the command line prints every key)",
    ),
    (
        ["trainer.devices=0"],
        "rcot-train: error: trainer.devices=0: `Trainer(devices=0)` value is not a valid input "
        "using cpu accelerator; use a positive number of devices, a list of device ids, or 'auto'",
    ),
    (
        ["trainer.gradient_clip_val=1.0"],
        "rcot-train: error: trainer.gradient_clip_val cannot be used with RCOT's two manual "
        "optimisers; set model.clipping.map and/or model.clipping.potential instead",
    ),
]
if not torch.cuda.is_available():
    CASES.append(
        (
            ["hardware=fp16"],
            "rcot-train: error: trainer.accelerator=gpu: No supported gpu backend found!; use "
            "hardware=auto (a GPU if there is one, else the CPU), hardware=cpu, or hardware=bf16 "
            "for mixed precision on a CPU",
        )
    )


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[c[0][0] for c in CASES])
@pytest.mark.integration
def test_bad_values_end_in_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    proc = run_cli("rcot_lightning.train", *args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "outputs" / "train" / "runs").exists() or not any(
        (tmp_path / "outputs" / "train" / "runs").rglob("*.ckpt")
    )


@pytest.mark.integration
def test_full_traceback_on_request(tmp_path: Path) -> None:
    proc = run_cli(
        "rcot_lightning.train",
        "trainer.devices=0",
        cwd=tmp_path,
        timeout=300,
        env=cli_env(HYDRA_FULL_ERROR="1"),
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RCOTError" in proc.stderr


def test_user_errors_are_found_through_wrapping_exceptions() -> None:
    from hydra.errors import InstantiationException

    try:
        try:
            raise RCOTError("data.degradation.sigma must be >= 0, got -5")
        except RCOTError as inner:
            raise InstantiationException("Error in call to target 'GaussianNoise'") from inner
    except InstantiationException as outer:
        assert user_error_message(outer) == "data.degradation.sigma must be >= 0, got -5"
    assert user_error_message(KeyError("bug")) is None  # a bug keeps its traceback


def test_argument_errors_of_instantiated_nodes_name_the_config_key() -> None:
    import hydra
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {"data": {"degradation": {"_target_": "rcot_lightning.data.GaussianNoise", "sigma": -5}}}
    )
    with pytest.raises(Exception) as info:
        instantiate(cfg.data.degradation)
    # The key comes from the `full_key:` line of Hydra's InstantiationException message; if a
    # Hydra release drops it, this fails and says so.
    assert "full_key: data.degradation" in str(info.value), (
        f"hydra-core {hydra.__version__} no longer names the node in InstantiationException "
        f"({str(info.value)!r}); rcot_lightning.cli.app._instantiated_key must read it elsewhere"
    )
    assert user_error_message(info.value) == "data.degradation.sigma must be >= 0, got -5"
    # Raised outside Hydra, the same error names the argument only.
    with pytest.raises(ArgumentError) as direct:
        instantiate(cfg.data.degradation, _convert_="all", sigma=1).__class__(sigma=-5)
    assert user_error_message(direct.value) == "sigma must be >= 0, got -5"


def test_multi_line_messages_become_one_line() -> None:
    text = "Could not find 'task/x'\n\nAvailable options in 'task':\n\tdenoise\n\tderain\n"
    assert (
        _one_line(text) == "Could not find 'task/x'; Available options in 'task': denoise, derain"
    )


def _hydra_main_without_config() -> Callable[[], Any]:
    import hydra

    @hydra.main(version_base="1.3", config_path=None, config_name=None)
    def main(cfg: object) -> None:
        raise AssertionError("composition should have failed")

    return main


def test_hydra_raises_its_own_errors_when_asked_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """``app.run_cli`` rests on this: with HYDRA_FULL_ERROR=1 a composition error propagates."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    monkeypatch.setattr("sys.argv", ["prog", "task=foo"])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    try:
        with pytest.raises(HydraException):
            _hydra_main_without_config()()
    except BaseException as err:
        raise AssertionError(
            f"hydra-core {hydra.__version__} no longer raises a composition error from the "
            "@hydra.main function with HYDRA_FULL_ERROR=1 (it raised or exited with "
            f"{err!r}); app.run_cli relies on it for one-line errors"
        ) from err
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.integration
def test_run_cli_reports_a_composition_error_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from rcot_lightning.cli import app

    monkeypatch.setattr("sys.argv", ["prog", "task=foo"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("RCOT_FULL_ERROR", raising=False)
    try:
        with pytest.raises(SystemExit) as info:
            app.run_cli("rcot-test", _hydra_main_without_config())
    finally:
        GlobalHydra.instance().clear()
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("rcot-test: error: Could not override 'task'")
    assert "HYDRA_FULL_ERROR" not in os.environ and "RCOT_FULL_ERROR" not in os.environ


_EVAL_SPELLING = "(a folder of targets, or {degraded: ..., target: ...})"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("val_target_dir", f"data.val_sets {_EVAL_SPELLING}"),
        ("test_degraded_dir", f"data.test_sets {_EVAL_SPELLING}"),
        ("root", "data.folders.root"),
        ("pairing", "data.folders.pairing"),
    ],
)
def test_an_old_data_key_on_the_command_line_names_its_new_spelling(
    compose_train, old: str, new: str
) -> None:
    """Overriding a removed key fails in Hydra (the key is gone); ``+data.<old>=`` reaches the
    data module: both end in one line that names the spelling today."""
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    expected = f"data.{old} was removed; use {new} instead"
    with pytest.raises(HydraException) as composed:
        compose_train("data=paired", f"data.{old}=x", tiny=False)
    message = user_error_message(composed.value)
    assert message is not None and "\n" not in message
    assert message.endswith(expected)
    cfg = compose_train(
        "data=paired",
        "data.train_degraded_dir=a",
        "data.train_target_dir=b",
        f"+data.{old}=x",
        tiny=False,
    )
    with pytest.raises(Exception) as built:
        instantiate(cfg.data, _convert_="partial")
    assert user_error_message(built.value) == expected
