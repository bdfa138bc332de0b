"""Train RCOT: ``python -m rcot_lightning.train [overrides]`` (or ``rcot-train``).

With no argument: denoising (sigma 25) of the embedded sample photos with the small model on the
CPU, a few minutes; then a summary of validation PSNR/SSIM and where the checkpoints and
pictures are. Everything is a Hydra override, e.g.::

    python -m rcot_lightning.train task=derain data=paired data.train_degraded_dir=... \\
        model=rcot hardware=gpu trainer.devices=4
    python -m rcot_lightning.train experiment=paper_denoise
    python -m rcot_lightning.train -m model.map_optimizer.lr=1e-3,3e-4

Returns (to Hydra sweepers) the best ``optimized_metric`` (validation PSNR).
"""

from __future__ import annotations

import logging
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from rcot_lightning.cli import app
from rcot_lightning.cli.launch import hydra_ddp_launch

log = logging.getLogger(__name__)


def _metric_value(trainer: Any, name: str) -> float | None:
    """Best value of ``name`` seen by the checkpoint callback, else its last value."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and getattr(checkpoint, "monitor", None) == name:
        best = getattr(checkpoint, "best_model_score", None)
        if best is not None:
            return float(best)
    value = trainer.callback_metrics.get(name)
    return None if value is None else float(value)


def _has_test_data(datamodule: Any) -> bool:
    # Named test sets (CBSD68, ...) and all-in-one tasks count, not only data.test_*_dir.
    eval_sets = getattr(datamodule, "eval_sets", None)
    return eval_sets is None or bool(eval_sets("test"))


def _with_run_checkpoint(callbacks: list[Any], trainer: Any) -> list[Any]:
    """``callbacks`` with a :class:`RunCheckpoint` where Lightning would add its own default.

    Without a checkpoint callback in the config (``callbacks=none``), Lightning adds a plain
    ModelCheckpoint, which restores checkpoint paths from the resumed file unchecked and deletes
    the previous best; a RunCheckpoint with the same (default) settings keeps them inside the
    run's checkpoints folder.

    Args:
        callbacks: the callbacks built from the config.
        trainer: the trainer config (``enable_checkpointing: false`` adds nothing).

    Returns:
        ``callbacks``, with ``RunCheckpoint()`` appended when Lightning would add its default.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    from rcot_lightning.callbacks import RunCheckpoint

    if trainer.get("enable_checkpointing", True) is False or any(
        isinstance(c, ModelCheckpoint) for c in callbacks
    ):
        return callbacks
    return [*callbacks, RunCheckpoint()]


def _hpc_checkpoint(folder: Path) -> Path | None:
    """The newest of Lightning's ``hpc_ckpt_<n>.ckpt`` in ``folder`` (highest ``n``), or None."""
    numbered = []
    for path in folder.glob("hpc_ckpt_*.ckpt"):
        number = path.stem.removeprefix("hpc_ckpt_")
        if number.isdigit():
            numbered.append((int(number), path))
    return max(numbered)[1] if numbered else None


def _special_path(name: str, trainer: Any) -> str:
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

    from rcot_lightning.errors import RCOTError

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


def _is_special(path: str) -> bool:
    """Whether ``ckpt_path`` is one of Lightning's names (``last``, ``best``, ``hpc``, a registry).

    Example:
        >>> [_is_special(p) for p in ("last", "hpc", "registry:m", "runs/last.ckpt")]
        [True, True, True, False]
    """
    return path in ("last", "best", "hpc", "registry") or path.lower().startswith("registry:")


def _resume_path(ckpt_path: Any, trainer: Any, model: Any, trust: bool = False) -> str | None:
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
            name that names no file (:func:`_special_path`).
    """
    from rcot_lightning.checkpoints.load import check_resumable

    if ckpt_path in (None, ""):
        return None
    path = str(ckpt_path)
    if _is_special(path):
        path = _special_path(path, trainer)
        if _is_special(path):  # a registry: resolved by Lightning
            return path
    check_resumable(path, model, trust)
    return path


def _stopped(trainer: Any, callbacks: list[Any], err: BaseException | None) -> None:
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
        app.report(_resume_report(interrupted))
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
            for o in app.job_overrides()
            if not o.lstrip("+~").startswith(("ckpt_path=", "run_dir=", "hydra."))
        ]
        args = [*overrides, f"run_dir={run_dir}", "ckpt_path=last"]
        command = " ".join(["python -m rcot_lightning.train", *map(shlex.quote, args)])
        lines += [f"  checkpoint: {interrupted.checkpoint}", f"  resume: {command}"]
    else:
        lines.append("  no checkpoint was written (fast_dev_run or checkpointing disabled)")
    return "\n".join(lines)


@dataclass
class TrainingRun:
    """What :func:`run` built and did: the optimised metric and the objects behind it."""

    metric: float | None
    trainer: Any
    model: Any
    datamodule: Any


def run(cfg: DictConfig) -> TrainingRun:
    """Build everything from ``cfg``, fit, optionally test.

    Ranks 1..N-1 of a DDP run re-run this function (Lightning starts them as new processes), so
    everything before ``trainer.fit`` only builds objects: no data is read, nothing written.
    """
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from rcot_lightning.callbacks import RecipeReport, RestorationImageLogger
    from rcot_lightning.callbacks.preemption_checkpoint import TrainingInterrupted
    from rcot_lightning.checkpoints.atomic_io import AtomicCheckpointIO
    from rcot_lightning.checkpoints.load import build_module
    from rcot_lightning.cli.checks import check_model_values, check_wandb_reachable
    from rcot_lightning.cli.recipe import check_recipe, group_choices
    from rcot_lightning.values import at_least

    app.single_log_handlers()
    # In train.log only: the recipe block is the first thing the command prints.
    overrides = " ".join(app.job_overrides()) or "(none)"
    log.info("job overrides: %s", overrides, extra=app.LOG_FILE_ONLY)
    from rcot_lightning.checkpoints.trust import trust_settings
    from rcot_lightning.data.images import set_max_megapixels

    trust, _ = trust_settings(cfg)
    set_max_megapixels(cfg.get("max_megapixels", 178))
    resolved = {key: app.as_dict(cfg.get(key)) for key in ("task", "data", "model", "trainer")}
    if cfg.get("seed") is not None:  # first: model.seed repeats it
        at_least(cfg.seed, "seed", 0, keyed=True)
    check_model_values(resolved["model"])
    check_recipe(resolved, app.job_overrides())
    check_wandb_reachable(app.as_dict(cfg.get("logger")))
    loggers = app.instantiate_group(cfg.get("logger"), "logger")
    callbacks = _with_run_checkpoint(
        app.instantiate_group(cfg.get("callbacks"), "callbacks"), cfg.trainer
    )
    # The recipe block: printed before the first batch, saved in the run folder, logged.
    report = RecipeReport(resolved, group_choices(), app.report, cfg.paths.get("output_dir"))
    callbacks.append(report)
    if not loggers:
        # LearningRateMonitor refuses to run without a logger.
        callbacks = [c for c in callbacks if type(c).__name__ != "LearningRateMonitor"]
    # Checkpoints are written to a temporary file beside their destination, then renamed.
    plugins = {} if "plugins" in cfg.trainer else {"plugins": [AtomicCheckpointIO()]}
    trainer = app.build_trainer(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, **plugins
    )
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = instantiate(cfg.data, _convert_="partial")
    model = build_module(app.as_dict(cfg.model))

    iterations = None
    # Weights-only unless the user trusts the file: a checkpoint's pickle could run code.
    weights_only = not trust
    with hydra_ddp_launch():
        if cfg.get("train", True):
            ckpt_path = _resume_path(cfg.get("ckpt_path"), trainer, model, trust)
            # Not an error: a stop signal saves a checkpoint and exits with 128 + signal.
            try:
                trainer.fit(
                    model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=weights_only
                )
            except (TrainingInterrupted, SIGTERMException) as err:
                _stopped(trainer, callbacks, err)
            _stopped(trainer, callbacks, None)
            iterations = model.iteration  # testing the best checkpoint loads its count
        metric = _metric_value(trainer, cfg.optimized_metric)
        metrics = dict(trainer.callback_metrics)  # testing replaces the validation values
        # Read now: testing a checkpoint restores the callback's state as it was when that
        # checkpoint was written, before last.ckpt existed.
        files = app.checkpoint_files(trainer)
        if cfg.get("test", False) and _has_test_data(datamodule):
            best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
            if not cfg.get("train", True):
                best = cfg.get("ckpt_path")
                if best not in (None, "") and _is_special(str(best)):
                    best = _special_path(str(best), trainer)
            trainer.test(
                model,
                datamodule=datamodule,
                ckpt_path=best,
                verbose=False,
                weights_only=weights_only,
            )
            metrics.update(trainer.callback_metrics)

    if trainer.is_global_zero:
        images = next(
            (c.last_paths for c in callbacks if isinstance(c, RestorationImageLogger)), []
        )
        app.report(app.training_summary(trainer, metrics, images, iterations, files))
    return TrainingRun(metric, trainer, model, datamodule)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    """Train as configured; return the optimised metric (what Hydra sweepers maximise)."""
    with app.exit_on_user_error("rcot-train"):
        return run(cfg).metric


#: Console entry point ``rcot-train``: ``main`` -> ``_hydra_main`` -> :func:`run` -> ``fit``.
main = app.command("rcot-train", _hydra_main)


if __name__ == "__main__":
    main()
