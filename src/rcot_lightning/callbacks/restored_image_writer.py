"""``RestoredImageWriter``: scores each restored batch of ``rcot-eval`` and saves the images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from rcot_lightning.contract import DEGRADED, NAME, TARGET
from rcot_lightning.errors import RCOTError
from rcot_lightning.metrics import OptionalScores

__all__ = ["RestoredImageWriter"]

#: The columns of every row: the image's name, then the scores of the input and of the output.
_COLUMNS = ("name", "psnr_input", "ssim_input", "psnr", "ssim")


class RestoredImageWriter(BasePredictionWriter):
    """Scores each predicted batch against its targets and saves the outputs by name."""

    def __init__(
        self,
        directory: Path | None,
        y_channel: bool,
        crop_border: int,
        optional: OptionalScores | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.directory = directory
        self.y_channel, self.crop_border = y_channel, crop_border
        self.rows: list[dict[str, Any]] = []
        #: Extra columns of every row (the set being scored, when there are several).
        self.extra: dict[str, Any] = {}
        #: LPIPS, FID and KID when asked for (``lpips=true``, ``fid=true``).
        self.optional = optional if optional is not None else OptionalScores(fid=False, lpips=False)

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        from rcot_lightning.checkpoints.atomic import atomic_path
        from rcot_lightning.metrics import score_images
        from rcot_lightning.visualize import save_png

        restored = prediction["restored"].float()
        target = batch.get(TARGET)
        if target is None:
            raise RCOTError(
                "eval needs ground truth: the chosen split has no targets; to restore images "
                "without targets use rcot_lightning.restore"
            )
        names = batch.get(NAME) or [f"image_{batch_idx}_{i}" for i in range(len(restored))]
        scores = score_images(
            restored,
            target,
            degraded=batch[DEGRADED],
            y_channel=self.y_channel,
            crop_border=self.crop_border,
        )
        optional = self.optional.update(restored, target)
        for i, name in enumerate(names):
            row: dict[str, Any] = {"name": str(name)}
            row |= {k: float(v[i]) for k, v in scores.items()}
            row |= {k: v[i] for k, v in optional.items()}
            self.rows.append(self.extra | row)
            if self.directory is not None:
                with atomic_path(self.directory / f"{name}.png") as temp:
                    save_png(restored[i], temp)

    @property
    def columns(self) -> list[str]:
        """Every column of a row of scores, in the order of the table and of ``metrics.csv``."""
        return [*_COLUMNS, *self.optional.columns]

    def mean(self, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Mean of each per-image score over ``rows`` (all rows by default); None if skipped."""
        rows = self.rows if rows is None else rows
        mean: dict[str, float | None] = {}
        for key in [*_COLUMNS[1:], *self.optional.image_columns]:
            values = [r[key] for r in rows if r.get(key) is not None]
            mean[key] = sum(values) / len(values) if values else None
        return mean
