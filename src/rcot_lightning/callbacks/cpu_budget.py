"""``CPUBudget``: stop training once the process has used a given amount of CPU time.

Wall time (``trainer.max_time``) says little on a shared machine: a run beside another job gets
fewer iterations than the same run alone. The CPU time of the training process is what a run
costs, so runs given the same CPU budget (one thread each, ``OMP_NUM_THREADS=1``) got the same
compute whatever else ran beside them; a cheaper map or objective gets more iterations from it.

The budget counts :func:`time.process_time` (every thread of this process, user + system) from
the start of training, so imports, data set-up and the sanity check are not counted; with
``data.loader.num_workers=0`` data loading is, with worker processes it is not. The CPU time used so
far is saved in checkpoints, so a run resumed from ``last.ckpt`` continues the same budget.
Like Lightning's ``Timer`` (``max_time``) it sets ``trainer.should_stop`` after an iteration,
so training ends cleanly (``last.ckpt`` written by the checkpoint callback); ``trainer.min_epochs``
and ``min_steps`` still hold training until they are met.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from rcot_lightning.errors import RCOTError

__all__ = ["CPUBudget"]

log = logging.getLogger(__name__)


class CPUBudget(Callback):
    """Stop training after ``minutes`` of CPU time of the training process.

    Args:
        minutes: the budget in CPU minutes (one thread for one minute is one minute; two busy
            threads use it twice as fast); ``None`` turns the callback off.

    Attributes:
        spent_seconds: CPU seconds used by training so far, resumed runs included.

    Example:
        >>> budget = CPUBudget(minutes=10)
        >>> budget.budget_seconds, budget.spent_seconds
        (600.0, 0.0)
        >>> CPUBudget(minutes=None).budget_seconds is None
        True
    """

    def __init__(self, minutes: float | None = None) -> None:
        if minutes is not None and (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not math.isfinite(minutes)
            or minutes <= 0
        ):
            raise RCOTError(
                f"callbacks.cpu_budget.minutes must be a number > 0 or null, got {minutes!r}"
            )
        self.budget_seconds = None if minutes is None else float(minutes) * 60.0
        self.spent_seconds = 0.0
        # CPU seconds spent before this process (a resumed run) and this process's clock at
        # the start of training.
        self._spent_before = 0.0
        self._started_at: float | None = None

    def _spent(self) -> float:
        if self._started_at is None:
            return self._spent_before
        return self._spent_before + time.process_time() - self._started_at

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started_at = time.process_time()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.spent_seconds = self._spent()
        if self.budget_seconds is None:
            return
        # Every rank must stop at the same iteration (saving is collective): rank 0 decides.
        stop = trainer.strategy.broadcast(self.spent_seconds >= self.budget_seconds)
        if stop and not trainer.should_stop:
            log.info(
                "CPU budget of %.3g minutes used (%.3g CPU minutes): stopping",
                self.budget_seconds / 60,
                self.spent_seconds / 60,
            )
        trainer.should_stop = trainer.should_stop or stop

    def state_dict(self) -> dict[str, Any]:
        return {"spent_seconds": self._spent()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # State from a file is data: anything but a finite number >= 0 counts as nothing spent.
        spent = state_dict.get("spent_seconds", 0.0)
        valid = isinstance(spent, int | float) and not isinstance(spent, bool)
        if not (valid and math.isfinite(spent) and spent >= 0):
            log.warning("checkpoint state: ignoring spent_seconds=%.60r (not a number >= 0)", spent)
            spent = 0.0
        self._spent_before = float(spent)
        self.spent_seconds = self._spent_before
