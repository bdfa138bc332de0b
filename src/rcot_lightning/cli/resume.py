"""Where a training run resumes from, and how a stopped one says to resume.

``ckpt_path`` is checked before ``fit`` so a wrong one is one line, not a failure after the
data are built: a file must fit the module (:func:`~rcot_lightning.checkpoints.load.
check_resumable`); Lightning's special names (``last``, ``hpc``, a registry) become files where
they can, ``best`` is refused. A run stopped by a signal (:class:`~rcot_lightning.callbacks.
PreemptionCheckpoint`) prints the command that resumes it and exits with ``128 + signal``.
"""

from __future__ import annotations

import logging
import shlex
import signal
from pathlib import Path
from typing import Any

from rcot_lightning.cli.config import job_overrides
from rcot_lightning.cli.summary import report
from rcot_lightning.errors import RCOTError

log = logging.getLogger(__name__)


def _hpc_checkpoint(folder: Path) -> Path | None:
    """The newest of Lightning's ``hpc_ckpt_<n>.ckpt`` in ``folder`` (highest ``n``), or None."""
    numbered = []
    for path in folder.glob("hpc_ckpt_*.ckpt"):
        number = path.stem.removeprefix("hpc_ckpt_")
        if number.isdigit():
            numbered.append((int(number), path))
    return max(numbered)[1] if numbered else None


def special_path(name: str, trainer: Any) -> str:
    """The file a special ``ckpt_path`` names: ``last``, ``hpc``; ``best`` and others refused.

    Args:
        name: ``last``, ``best``, ``hpc`` or ``registry[:...]``.
        trainer: the trainer (its checkpoint callback and run folder).

    Returns:
        ``<checkpoints folder>/last.ckpt`` for ``last``; the newest ``hpc_ckpt_<n>.ckpt`` of the
        run folder for ``hpc``; ``registry[:...]`` itself when Lightning's model registry
        (``litmodels``) is installed.

    Raises:
        RCOTError: ``best`` (no best of this run exists before it trains), ``last``
            without the checkpoint callback, ``hpc`` without an ``hpc_ckpt_<n>.ckpt``, a registry
            without ``litmodels``.
    """
    from lightning_utilities.core.imports import module_available

    if name == "last":
        callback = trainer.checkpoint_callback
        if callback is None or not getattr(callback, "dirpath", None):
            raise RCOTError("ckpt_path=last needs the model_checkpoint callback; pass a file")
        folder = Path(callback.dirpath)
        newer = sorted(p.name for p in folder.glob(f"{callback.CHECKPOINT_NAME_LAST}-v*.ckpt"))
        if newer:
            # Written by a resumed run of a moved or copied folder before last.ckpt was always
            # the last state: may be newer than last.ckpt.
            log.warning(
                "ckpt_path=last: resuming from %s/last.ckpt; the folder also holds %s (older "
                "versions wrote a moved run's last state there): pass ckpt_path=<that file> "
                "to resume from it",
                folder,
                ", ".join(newer),
            )
        return str(folder / f"{callback.CHECKPOINT_NAME_LAST}.ckpt")
    if name == "hpc":
        run = Path(trainer.default_root_dir)
        found = _hpc_checkpoint(run)
        if found is None:
            raise RCOTError(
                f"ckpt_path=hpc: {run} holds no hpc_ckpt_<n>.ckpt (Lightning writes them on "
                "SLURM's auto-requeue signal); pass ckpt_path=last with run_dir=<run folder>, or "
                "ckpt_path=<file>.ckpt"
            )
        return str(found)
    if name == "best":
        raise RCOTError(
            "ckpt_path=best: this run has no best checkpoint before it trains (a run resumes "
            "from its last state); pass ckpt_path=last (with run_dir=<run folder>) or "
            "ckpt_path=<run folder>/checkpoints/best-<...>.ckpt"
        )
    if not module_available("litmodels"):
        raise RCOTError(
            f"ckpt_path={name}: Lightning's model registry needs the litmodels package (pip "
            "install litmodels); pass ckpt_path=last (with run_dir=<run folder>) or "
            "ckpt_path=<file>.ckpt"
        )
    return name


def is_special(path: str) -> bool:
    """Whether ``ckpt_path`` is one of Lightning's names (``last``, ``best``, ``hpc``, a registry).

    Example:
        >>> [is_special(p) for p in ("last", "hpc", "registry:m", "runs/last.ckpt")]
        [True, True, True, False]
    """
    return path in ("last", "best", "hpc", "registry") or path.lower().startswith("registry:")


def resume_path(ckpt_path: Any, trainer: Any, model: Any, trust: bool = False) -> str | None:
    """``ckpt_path`` checked before fit (one-line errors); a special name made a file.

    Args:
        ckpt_path: the ``ckpt_path`` setting (None or ``""``: a fresh run).
        trainer: the trainer (its checkpoint callback and run folder).
        model: the module the checkpoint must fit.
        trust: unpickle the file in full (``trust_checkpoint=true``).

    Returns:
        The checkpoint file to resume from (``last``: this run's ``last.ckpt``; ``hpc``: its
        newest ``hpc_ckpt_<n>.ckpt``), a registry name, or None.

    Raises:
        RCOTError: the file cannot continue ``model`` (:func:`check_resumable`), or a special
            name that names no file (:func:`special_path`).
    """
    from rcot_lightning.checkpoints.load import check_resumable

    if ckpt_path in (None, ""):
        return None
    path = str(ckpt_path)
    if is_special(path):
        path = special_path(path, trainer)
        if is_special(path):  # a registry: resolved by Lightning
            return path
    check_resumable(path, model, trust)
    return path


def stop_after_signal(trainer: Any, callbacks: list[Any], err: BaseException | None) -> None:
    """End a ``fit`` that a stop signal interrupted: how to resume, exit ``128 + signal``.

    ``err`` is what ``fit`` raised: the callback's ``TrainingInterrupted``, Lightning's own
    ``SIGTERMException`` (outside a training batch; re-raised without the callback), or None
    when ``fit`` returned: then only a signal during the final validation stops here (training
    finished and ``last.ckpt`` holds it), and anything else returns None.
    """
    from rcot_lightning.callbacks.preemption_checkpoint import (
        PreemptionCheckpoint,
        TrainingInterrupted,
    )

    watcher = next((c for c in callbacks if isinstance(c, PreemptionCheckpoint)), None)
    if isinstance(err, TrainingInterrupted):
        interrupted = err
    elif watcher is None or (err is None and watcher.received is None):
        if err is not None:
            raise err
        return None
    else:
        interrupted = watcher.interruption(trainer)
    if trainer.is_global_zero:
        report(_resume_report(interrupted))
    raise SystemExit(interrupted.exit_status)


def _resume_report(interrupted: Any) -> str:
    name = signal.Signals(interrupted.signum).name
    lines = [
        "",
        f"RCOT training interrupted by {name} at iteration {interrupted.iteration} "
        f"(exit status {interrupted.exit_status} = 128 + {name})",
    ]
    if interrupted.checkpoint:
        run_dir = Path(interrupted.checkpoint).resolve().parent.parent
        overrides = [
            o
            for o in job_overrides()
            if not o.lstrip("+~").startswith(("ckpt_path=", "run_dir=", "hydra."))
        ]
        args = [*overrides, f"run_dir={run_dir}", "ckpt_path=last"]
        command = " ".join(["python -m rcot_lightning.train", *map(shlex.quote, args)])
        lines += [f"  checkpoint: {interrupted.checkpoint}", f"  resume: {command}"]
    else:
        lines.append("  no checkpoint was written (fast_dev_run or checkpointing disabled)")
    return "\n".join(lines)
