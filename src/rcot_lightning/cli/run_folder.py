"""Which training run a command means: ``ckpt_path=last`` for eval, restore and export.

The run folders themselves (a new one claimed per run, the latest, a given ``run_dir`` checked)
are the configs' (:mod:`rcot_lightning.conf.run_dir`, the logic of their ``${rcot_run_dir:}``
resolver); their names are importable from here as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from rcot_lightning.conf.run_dir import (
    HYDRA_RECORD,
    LAST_CHECKPOINT,
    check_run_dir,
    latest_run,
    new_run_folder,
    run_folder,
    run_task,
    saved_runs,
)
from rcot_lightning.errors import RCOTError

__all__ = [
    "HYDRA_RECORD",
    "LAST_CHECKPOINT",
    "LastRun",
    "check_run_dir",
    "checkpoint_path",
    "last_training_run",
    "latest_run",
    "new_run_folder",
    "run_folder",
    "run_task",
]


class LastRun(NamedTuple):
    """The checkpoint ``ckpt_path=last`` names, and what a user needs to know about it."""

    #: ``<run>/checkpoints/last.ckpt``.
    checkpoint: Path
    #: The task that run trained (:func:`run_task`; None: unknown).
    task: str | None
    #: Newer runs of another task, passed over: ``(run folder, its task)``.
    passed_over: tuple[tuple[Path, str], ...] = ()

    def describe(self, wanted: str | None = None) -> str:
        """One line: which checkpoint, from which run and task, and what was passed over."""
        run = self.checkpoint.parent.parent.name
        if self.task is None:
            what = f"task unknown: {run} has no {HYDRA_RECORD}/config.yaml"
        else:
            what = f"task {self.task}"
        line = f"ckpt_path=last: {self.checkpoint} (the latest training run {run}, {what})"
        if self.passed_over:
            newer = ", ".join(f"{p.name} (task {t})" for p, t in self.passed_over[:3])
            more = ", ..." if len(self.passed_over) > 3 else ""
            line += (
                f"; passed over {len(self.passed_over)} newer run(s) of another task than "
                f"{wanted}: {newer}{more}"
            )
        return line


def last_training_run(train_runs: str | os.PathLike[str], task: str | None = None) -> LastRun:
    """The run ``ckpt_path=last`` takes: the newest ``last.ckpt`` under ``train_runs``, of
    ``task`` when one is given.

    Args:
        train_runs: where the training runs live (``<log_dir>/train/runs``).
        task: the command's task (``rcot-eval task=derain``); a run of another task is never
            taken (a run whose task is unknown is, and says so). None: any task.

    Raises:
        RCOTError: no run has a ``last.ckpt``; runs have one, but all of another task (the
            message names the newest and how to take it anyway).

    Example:
        >>> import tempfile
        >>> runs = Path(tempfile.mkdtemp())
        >>> for name, trained in (("a", "derain"), ("b", "denoise")):
        ...     (runs / name / "checkpoints").mkdir(parents=True)
        ...     _ = (runs / name / LAST_CHECKPOINT).write_bytes(b"")
        ...     (runs / name / HYDRA_RECORD).mkdir()
        ...     _ = (runs / name / HYDRA_RECORD / "config.yaml").write_text(
        ...         f"task:\\n  name: {trained}\\n")
        >>> os.utime(runs / "a" / LAST_CHECKPOINT, (1, 1))
        >>> last_training_run(runs, "derain").describe("derain")  # doctest: +ELLIPSIS
        'ckpt_path=last: .../a/checkpoints/last.ckpt (the latest training run a, task derain); \
passed over 1 newer run(s) of another task than derain: b (task denoise)'
    """
    runs = saved_runs(train_runs)
    if not runs:
        raise RCOTError(
            f"ckpt_path=last: no training run under {train_runs} has a {LAST_CHECKPOINT}; "
            "train one first (python -m rcot_lightning.train), pass ckpt_path=<file>.ckpt, or "
            "set train_runs=<folder holding the training runs>"
        )
    passed_over: list[tuple[Path, str]] = []
    for run in runs:
        trained = run_task(run)
        if task is None or trained is None or trained == task:
            return LastRun(run / LAST_CHECKPOINT, trained, tuple(passed_over))
        passed_over.append((run, trained))
    newest, trained = passed_over[0]
    raise RCOTError(
        f"ckpt_path=last: no training run of task {task} under {train_runs} has a "
        f"{LAST_CHECKPOINT}; the latest, {newest.name}, trained task {trained}: pass "
        f"task={trained} to score it as that task, or ckpt_path={newest / LAST_CHECKPOINT} to "
        f"score it as task {task} anyway"
    )


def checkpoint_path(
    ckpt_path: str | os.PathLike[str],
    train_runs: str | os.PathLike[str],
    task: str | None = None,
) -> Path:
    """The checkpoint ``ckpt_path`` names for eval, restore and export.

    Args:
        ckpt_path: a ``.ckpt`` file, or ``"last"``: the ``checkpoints/last.ckpt`` of the
            training run under ``train_runs`` that saved one most recently
            (:func:`last_training_run`).
        train_runs: where the training runs live (``<log_dir>/train/runs``).
        task: the command's task: ``last`` never takes a run of another task.

    Raises:
        RCOTError: ``ckpt_path=last`` and no run under ``train_runs`` (of ``task``) has a
            ``last.ckpt``.

    Example:
        >>> import tempfile
        >>> runs = Path(tempfile.mkdtemp())
        >>> (runs / "2026-01-01_00-00-00" / "checkpoints").mkdir(parents=True)
        >>> _ = (runs / "2026-01-01_00-00-00" / LAST_CHECKPOINT).write_bytes(b"")
        >>> checkpoint_path("last", runs).relative_to(runs).as_posix()
        '2026-01-01_00-00-00/checkpoints/last.ckpt'
    """
    if str(ckpt_path) != "last":
        return Path(ckpt_path)
    return last_training_run(train_runs, task).checkpoint
