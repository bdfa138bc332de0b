"""SIGTERM / SIGINT stop training with a checkpoint of the current iteration and 128 + signal."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from rcot_lightning.callbacks.preemption_checkpoint import PreemptionCheckpoint, TrainingInterrupted
from rcot_lightning.cli.train import run
from tests.conftest import TINY, cli_env, run_cli

# Subprocesses: the integration tier (docs/development.md).
pytestmark = pytest.mark.integration


class SignalAt(pl.Callback):
    """Sends ``signum`` to this process once the module reaches ``iteration``."""

    def __init__(self, iteration: int, signum: int) -> None:
        self.iteration, self.signum, self.sent = iteration, signum, False

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        if not self.sent and pl_module.iteration == self.iteration:
            self.sent = True
            os.kill(os.getpid(), self.signum)  # arrives in the middle of this iteration


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_the_current_iteration_and_exits_128_plus_signal(
    compose_train, tmp_path: Path, signum: int, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = signal.getsignal(signum)
    cfg = compose_train(
        "trainer.max_epochs=100",
        "+callbacks.signal._target_=tests.test_preemption.SignalAt",
        "+callbacks.signal.iteration=3",
        f"+callbacks.signal.signum={int(signum)}",
    )
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == status
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["rcot_iteration"] == 4  # iteration 3 (0-based) finished, then it stopped
    out = capsys.readouterr().out
    name = signal.Signals(signum).name
    assert f"interrupted by {name} at iteration 4 (exit status {status} = 128 + {name})" in out
    assert f"checkpoint: {tmp_path / 'checkpoints' / 'last.ckpt'}" in out
    assert "resume: python -m rcot_lightning.train" in out and "ckpt_path=last" in out
    assert signal.getsignal(signum) == previous  # handlers restored


def test_interrupted_reports_its_exit_status() -> None:
    err = TrainingInterrupted(int(signal.SIGTERM), "x/last.ckpt", 7)
    assert err.exit_status == 143
    assert str(err) == "training interrupted by SIGTERM; checkpoint of iteration 7: x/last.ckpt"
    assert PreemptionCheckpoint(["sigusr1"]).signals == [signal.SIGUSR1]


def _max_logged_iteration(run_dir: Path) -> int:
    rows = list(csv.DictReader((run_dir / "csv" / "version_0" / "metrics.csv").open()))
    return int(max(float(r["iteration"]) for r in rows if r.get("iteration")))


def test_sigterm_to_a_training_process_then_resume_in_its_folder(tmp_path: Path) -> None:
    """A real process: SIGTERM mid-training, checkpoint = last logged iteration, resume."""
    args = [
        *TINY,
        "trainer.max_epochs=1000",
        "trainer.log_every_n_steps=1",
        "+trainer.enable_progress_bar=false",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rcot_lightning.train", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
    )
    runs = tmp_path / "outputs" / "train" / "runs"
    deadline = time.monotonic() + 240
    while not list(runs.glob("*/checkpoints/best-*.ckpt")):  # a few iterations are done
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]
    (run_dir,) = runs.iterdir()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["rcot_iteration"] == _max_logged_iteration(run_dir) >= 4
    assert f"checkpoint: {run_dir / 'checkpoints' / 'last.ckpt'}" in out
    command = re.search(r"resume: python -m rcot_lightning.train (.*)", out)
    assert command is not None, out[-3000:]
    resume_args = command.group(1).split()
    assert f"run_dir={run_dir}" in resume_args and "ckpt_path=last" in resume_args

    stop = last["global_step"] + 4  # two more iterations
    resume_args = [a for a in resume_args if not a.startswith("trainer.max_epochs")]
    proc2 = run_cli("rcot_lightning.train", *resume_args, f"trainer.max_steps={stop}", cwd=tmp_path)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert f"iterations: {last['rcot_iteration'] + 2}" in proc2.stdout
    assert list(runs.iterdir()) == [run_dir]  # resumed in its own folder
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["rcot_iteration"] == last["rcot_iteration"] + 2
