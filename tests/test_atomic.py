"""Checkpoints and metrics.csv are replaced atomically: a failed save leaves the previous file."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import torch

import rcot_lightning.checkpoints.atomic as atomic
from rcot_lightning.checkpoints.atomic import atomic_write
from rcot_lightning.checkpoints.atomic_io import AtomicCheckpointIO, AtomicCSVLogger
from rcot_lightning.cli.train import run


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_save_killed_midway_leaves_the_previous_last_checkpoint(
    compose_train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(compose_train("trainer.max_steps=4", "trainer.val_check_interval=2"))
    assert isinstance(first.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = _digest(last)

    real_fsync = atomic.os.fsync

    def dies_before_the_rename(fd: int) -> None:
        real_fsync(fd)
        raise OSError(5, "Input/output error (simulated crash while saving)")

    # Resume for 2 more iterations: every checkpoint save now fails after its bytes are out.
    monkeypatch.setattr(atomic.os, "fsync", dies_before_the_rename)
    with pytest.raises(OSError, match="simulated crash"):
        run(compose_train("trainer.max_steps=8", "trainer.val_check_interval=2", "ckpt_path=last"))
    assert _digest(last) == before
    assert torch.load(last, weights_only=False)["rcot_iteration"] == 2
    leftovers = [p.name for p in last.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_checkpoint_bytes_reach_the_destination_folder_only_by_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[Path, Path]] = []
    real_replace = atomic.os.replace

    def spy(src: str, dst: str) -> None:
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    target = tmp_path / "ckpts" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(3)}, target)
    ((src, dst),) = renames
    assert src.parent == dst.parent == target.parent  # same folder: a rename, never a copy
    assert torch.equal(torch.load(target)["w"], torch.ones(3))


def test_metrics_csv_rewrite_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = AtomicCSVLogger(tmp_path, name="csv")
    logger.log_metrics({"a": 1.0}, step=0)
    logger.save()
    path = Path(logger.experiment.metrics_file_path)
    before = path.read_text()

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    # A new column makes Lightning rewrite the whole file: it must fail without damage.
    logger.log_metrics({"a": 2.0, "b": 3.0}, step=1)
    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError):
        logger.save()
    assert path.read_text() == before
    monkeypatch.undo()
    logger.log_metrics({"a": 4.0, "b": 5.0}, step=2)
    logger.save()
    rows = list(csv.DictReader(path.open()))
    assert [r["a"] for r in rows] == ["1.0", "2.0", "4.0"] and rows[-1]["b"] == "5.0"


def test_atomic_write_text(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "sub" / "t.csv", "w", newline="") as handle:
        handle.write("x\n")
    assert (tmp_path / "sub" / "t.csv").read_text() == "x\n"
    assert (tmp_path / "sub" / "t.csv").stat().st_mode & 0o777 != 0o600  # not mkstemp's mode
