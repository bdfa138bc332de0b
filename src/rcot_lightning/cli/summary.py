"""What a command tells its user at the end: its reports (stdout and the run's log file) and
the training summary (validation PSNR/SSIM, checkpoints, pictures, logs)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The logger name a command's reports carry in its log file.
REPORT_LOGGER = "rcot_lightning.report"


def report(text: str) -> None:
    """Show a command's result to its user on standard output, and keep it in the run's log
    file (``<run>/<command>.log``, Hydra's file handler) without repeating it on the console.

    Example:
        >>> report("restored 1 image(s) into out")
        restored 1 image(s) into out
    """
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    record = logging.getLogger(REPORT_LOGGER).makeRecord(
        REPORT_LOGGER, logging.INFO, __file__, 0, text, (), None
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):.{digits}f}"


def checkpoint_files(trainer: Any) -> tuple[str, str, str] | None:
    """``(folder, best, last)`` of the trainer's checkpoint callback (``""`` for none yet)."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or not getattr(checkpoint, "dirpath", None):
        return None
    best = getattr(checkpoint, "best_model_path", "") or ""
    last = getattr(checkpoint, "last_model_path", "") or ""
    return str(checkpoint.dirpath), best, last


def training_summary(
    trainer: Any,
    metrics: Mapping[str, Any],
    image_paths: list[str],
    iterations: int | None = None,
    files: tuple[str, str, str] | None = None,
) -> str:
    """A few lines: validation PSNR/SSIM of the input and of the output, where files are.

    Args:
        trainer: the trainer after fit (and test).
        metrics: the last logged values (``val/*`` of the last validation, ``test/*``).
        image_paths: pictures written by the image callback.
        iterations: the iterations trained (read after fit: testing the best checkpoint loads
            its iteration count into the module); default the module's count.
        files: :func:`checkpoint_files` read after fit (testing a checkpoint restores the
            callback's state of that time); default read now.
    """
    lines = ["", "RCOT training summary"]
    psnr_in, ssim_in = metrics.get("val/psnr_input"), metrics.get("val/ssim_input")
    psnr_out, ssim_out = metrics.get("val/psnr"), metrics.get("val/ssim")
    if psnr_out is not None:
        gain = "" if psnr_in is None else f"  ({float(psnr_out) - float(psnr_in):+.2f} dB)"
        lines += [
            f"  validation input   : PSNR {_fmt(psnr_in, 2)} dB  SSIM {_fmt(ssim_in, 4)}",
            f"  validation restored: PSNR {_fmt(psnr_out, 2)} dB  SSIM {_fmt(ssim_out, 4)}{gain}",
        ]
    if "test/psnr" in metrics:
        lines.append(
            f"  test (full size)   : PSNR {_fmt(metrics.get('test/psnr_input'), 2)} -> "
            f"{_fmt(metrics['test/psnr'], 2)} dB, SSIM {_fmt(metrics.get('test/ssim_input'), 4)}"
            f" -> {_fmt(metrics.get('test/ssim'), 4)}"
        )
    if iterations is None:
        iterations = getattr(trainer.lightning_module, "iteration", None)
    lines.append(f"  iterations: {iterations}  (global steps: {trainer.global_step})")
    files = checkpoint_files(trainer) if files is None else files
    if files is not None:
        folder, best, last = files
        # Name only files that exist: a stale path would send the user to nothing.
        best, last = (Path(p).name if p and Path(p).is_file() else "none" for p in (best, last))
        lines.append(f"  checkpoints: {folder}")
        lines.append(f"    best: {best}   last: {last}")
    if image_paths:
        lines.append(
            f"  pictures: {Path(image_paths[-1]).parent}  (latest {Path(image_paths[-1]).name})"
        )
    for logger in trainer.loggers:
        directory = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if directory:
            lines.append(f"  {logger_label(logger)}: {directory}")
    if psnr_out is None and trainer.lightning_module is not None:
        lines += _no_validation_hint(trainer)
    return "\n".join(lines)


#: What the summary calls each logger, by the Lightning class it is or derives from.
_LOGGER_LABELS = {
    "CSVLogger": "metrics (CSV)",
    "TensorBoardLogger": "TensorBoard logs",
    "WandbLogger": "wandb run",
    "MLFlowLogger": "MLflow run",
}


def logger_label(logger: Any) -> str:
    """``metrics (CSV)`` for a CSV logger (ours writes atomically), else the class name.

    Example:
        >>> from rcot_lightning.checkpoints.atomic_io import AtomicCSVLogger
        >>> logger_label(AtomicCSVLogger("/tmp"))
        'metrics (CSV)'
    """
    for cls in type(logger).__mro__:
        if cls.__name__ in _LOGGER_LABELS:
            return _LOGGER_LABELS[cls.__name__]
    return type(logger).__name__


def _no_validation_hint(trainer: Any) -> list[str]:
    """Why a run has no validation score, pictures or best checkpoint, and how to get one."""
    if not trainer.num_val_batches or not any(trainer.num_val_batches):
        return ["  no validation: the data have no validation split (data.val_*_dir)"]
    interval = trainer.val_check_batch
    when = (
        f"every {interval} training batches"
        if isinstance(interval, int) and interval < trainer.num_training_batches
        else f"at the end of each epoch of {trainer.num_training_batches:,} training batches"
    )
    return [
        f"  no validation yet: the run ended before the first one ({when}), so there is no "
        "validation score, no validation picture and no best checkpoint;",
        "    validate sooner with trainer.val_check_interval=N (every N training batches), "
        "or train the short demo recipe on your data with recipe=demo",
    ]
