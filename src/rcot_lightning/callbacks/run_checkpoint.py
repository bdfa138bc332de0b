"""``RunCheckpoint``: ModelCheckpoint whose ``last.ckpt`` is always the last state of the run.

Lightning's ModelCheckpoint, saving at validation end, rewrites ``last.ckpt`` only when it also
saved a top-k checkpoint at that step, and its ``on_train_end`` skips the save once any last
checkpoint exists. A run whose validation PSNR stopped improving, or that stopped at
``max_steps`` between two validations, therefore kept an old ``last.ckpt``, and resuming from
it silently redid work. Here ``last.ckpt`` is rewritten after every validation and once more
when training ends for any reason (``max_steps``, ``max_epochs``, early stopping), unless it
already holds the current step (also when the module stops a diverging run); the best
checkpoint stays a separate file.

A model whose monitored value or whose weights are not finite is never saved as the best.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from rcot_lightning.checkpoints.finite import first_nonfinite

__all__ = ["RunCheckpoint"]

log = logging.getLogger(__name__)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last checkpoint holds the final state and whose best is finite.

    Takes ModelCheckpoint's arguments. With ``save_last`` set, ``last_model_path`` is the
    run's final state after ``fit`` returns (or is interrupted through
    :class:`~rcot_lightning.callbacks.PreemptionCheckpoint`, which calls :meth:`write_last`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_saved_at: int | None = None

    def write_last(self, trainer: pl.Trainer) -> str | None:
        """Write the last checkpoint of the current state now (all ranks call it); its path."""
        if not self.save_last or getattr(trainer, "fast_dev_run", False):
            return None
        if self._last_saved_at != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path

    def _save_last_checkpoint(self, trainer: pl.Trainer, candidates: dict[str, Tensor]) -> None:
        super()._save_last_checkpoint(trainer, candidates)
        self._last_saved_at = trainer.global_step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write_last(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        from rcot_lightning.module import DivergedError

        super().on_exception(trainer, pl_module, exception)
        # Stopped for non-finite values: the skipped updates left the weights finite, and they
        # are the run's final state.
        if isinstance(exception, DivergedError) and first_nonfinite(pl_module.state_dict()) is None:
            self.write_last(trainer)

    def _save_topk_checkpoint(self, trainer: pl.Trainer, candidates: dict[str, Tensor]) -> None:
        current = candidates.get(self.monitor) if self.monitor else None
        if current is not None and not math.isfinite(float(current)):
            log.warning(
                "not saving a best checkpoint at step %d: %s is %s",
                trainer.global_step,
                self.monitor,
                float(current),
            )
            return
        if first_nonfinite(trainer.lightning_module.state_dict()) is not None:
            log.warning(
                "not saving a best checkpoint at step %d: the model has non-finite weights",
                trainer.global_step,
            )
            return
        super()._save_topk_checkpoint(trainer, candidates)
