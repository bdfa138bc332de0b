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
from dataclasses import dataclass
from typing import Any

import hydra
from omegaconf import DictConfig

from rcot_lightning.cli import app
from rcot_lightning.cli.launch import hydra_ddp_launch
from rcot_lightning.cli.resume import is_special, resume_path, special_path, stop_after_signal

# The names the resume logic had here before it moved to cli/resume.py.
_special_path, _is_special = special_path, is_special

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


@dataclass
class TrainingRun:
    """What :func:`run` built and did: the optimised metric and the objects behind it."""

    metric: float | None
    trainer: Any
    model: Any
    datamodule: Any


@dataclass
class BuiltTraining:
    """What :func:`build_training` made from a config, ready for :func:`fit_and_test`."""

    trainer: Any
    model: Any
    datamodule: Any
    callbacks: list[Any]
    trust: bool  # unpickle checkpoints in full (trust_checkpoint=true)


def run(cfg: DictConfig) -> TrainingRun:
    """Build everything from ``cfg``, fit, optionally test: :func:`build_training`, then
    :func:`fit_and_test`."""
    return fit_and_test(cfg, build_training(cfg))


def build_training(cfg: DictConfig) -> BuiltTraining:
    """Check ``cfg`` and build the Trainer (loggers, callbacks), the data module and the model.

    Ranks 1..N-1 of a DDP run re-run this (Lightning starts them as new processes), so it only
    builds objects: no data is read, nothing written.
    """
    import lightning as L
    from hydra.utils import instantiate

    from rcot_lightning.callbacks import RecipeReport
    from rcot_lightning.checkpoints.atomic_io import AtomicCheckpointIO
    from rcot_lightning.checkpoints.load import build_module
    from rcot_lightning.checkpoints.trust import trust_settings
    from rcot_lightning.cli.checks import check_model_values, check_wandb_reachable
    from rcot_lightning.cli.recipe import check_recipe, group_choices
    from rcot_lightning.data.images import set_max_megapixels
    from rcot_lightning.values import at_least

    app.single_log_handlers()
    # In train.log only: the recipe block is the first thing the command prints.
    overrides = " ".join(app.job_overrides()) or "(none)"
    log.info("job overrides: %s", overrides, extra=app.LOG_FILE_ONLY)
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
    return BuiltTraining(trainer, model, datamodule, callbacks, trust)


def fit_and_test(cfg: DictConfig, built: BuiltTraining) -> TrainingRun:
    """Fit (``train: true``; resuming from ``ckpt_path``), test (``test: true``), then print the
    summary; a stop signal ends here with the command that resumes the run."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from rcot_lightning.callbacks import RestorationImageLogger, RunCheckpoint
    from rcot_lightning.errors import TrainingInterrupted

    trainer, model, datamodule, callbacks = (
        built.trainer,
        built.model,
        built.datamodule,
        built.callbacks,
    )
    iterations = None
    # Weights-only unless the user trusts the file: a checkpoint's pickle could run code.
    weights_only = not built.trust
    with hydra_ddp_launch():
        if cfg.get("train", True):
            ckpt_path = resume_path(cfg.get("ckpt_path"), trainer, model, built.trust)
            for callback in trainer.callbacks:
                if isinstance(callback, RunCheckpoint) and ckpt_path is not None:
                    callback.resuming_from = str(ckpt_path)
            # Not an error: a stop signal saves a checkpoint and exits with 128 + signal.
            try:
                trainer.fit(
                    model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=weights_only
                )
            except (TrainingInterrupted, SIGTERMException) as err:
                stop_after_signal(trainer, callbacks, err)
            stop_after_signal(trainer, callbacks, None)
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
                if best not in (None, "") and is_special(str(best)):
                    best = special_path(str(best), trainer)
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


#: Console entry point ``rcot-train``: ``main`` -> ``_hydra_main`` -> :func:`run` ->
#: :func:`build_training`, :func:`fit_and_test`.
main = app.command("rcot-train", _hydra_main)


if __name__ == "__main__":
    main()
