"""Lightning's checkpoint IO and CSV logger, writing through :func:`.atomic.atomic_write`.

A crash while Lightning writes a checkpoint or ``metrics.csv`` leaves the previous file whole.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from rcot_lightning.checkpoints.atomic import atomic_write

__all__ = ["AtomicCSVLogger", "AtomicCheckpointIO"]

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, writing through :func:`atomic_write` (local paths).

    Lightning's own writer stages the file under ``$TMPDIR`` and moves it, which is a copy (not
    atomic) when ``$TMPDIR`` is on another filesystem, and never fsyncs. Remote URLs
    (``s3://``...) keep Lightning's writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        buffer = io.BytesIO()  # serialise first: a pickling error must not touch the disk
        torch.save(checkpoint, buffer)
        try:
            with atomic_write(path, "wb") as handle:
                handle.write(buffer.getbuffer())
        except OSError as err:
            from rcot_lightning.errors import RCOTError

            raise RCOTError(
                f"cannot write the checkpoint {path} ({err.strerror or err}); the checkpoints "
                f"already in {Path(path).parent} are intact (no partial file was left): free "
                "some space, then resume with run_dir=<this run> ckpt_path=last"
            ) from None
        log.debug("checkpoint written: %s", path)


class _AtomicExperimentWriter(ExperimentWriter):
    """CSV writer whose whole-file rewrites (a new column appeared) are atomic.

    Appending rows can at worst lose the rows being appended; Lightning's rewrite opens the
    file with ``"w"`` and a crash there loses every row logged so far.
    """

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        with atomic_write(self.metrics_file_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)

    def save(self) -> None:
        known = list(self.metrics_keys)
        try:
            super().save()
        except BaseException:
            # The header on disk still has the old columns: the next save must rewrite it.
            self.metrics_keys = known
            raise
        # Rows reach the disk at each save, so a killed run keeps what it logged.
        with contextlib.suppress(OSError), open(self.metrics_file_path, "ab") as handle:
            os.fsync(handle.fileno())


class AtomicCSVLogger(CSVLogger):
    """:class:`~lightning.pytorch.loggers.CSVLogger` that never leaves a damaged ``metrics.csv``."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AtomicExperimentWriter(log_dir=self.log_dir)
        assert isinstance(self._experiment, ExperimentWriter)
        return self._experiment
