"""Pre-emption: a signal to stop ends training with a resumable checkpoint and a non-zero status.

A cluster scheduler stops a job with SIGTERM (SLURM on pre-emption or at the time limit, after
an optional warning signal), a user with Ctrl-C (SIGINT). Lightning alone logs "Received
SIGTERM" and leaves the loops with ``SystemExit(None)``: exit status 0, so the scheduler records
success, and nothing is saved. :class:`PreemptionCheckpoint` instead only *notes* the signal
(a handler must not save: it runs between two bytecodes, possibly between the potential's and
the map's update), lets the current iteration finish (and its logging, and a validation that
is due), writes ``last.ckpt`` of that iteration before the next one starts, and stops with
:class:`TrainingInterrupted`. The entry point then reports where the checkpoint is and how to
resume, and exits with ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT),
the status a shell gives a process killed by that signal: schedulers and scripts see that the
run did not finish. A second signal while the iteration finishes stops at once.

Under SLURM with Lightning's auto-requeue (SLURMEnvironment, ``--signal=USR1@<seconds>``),
SIGUSR1 stays Lightning's: it writes ``hpc_ckpt_<n>.ckpt`` into the run folder and requeues the
job, and the requeued job finds that folder again (:mod:`rcot_lightning.cli.run_folder`) and
resumes from it.

With several processes (DDP) every rank must stop at the same iteration (saving is collective),
so before each iteration the ranks agree whether any of them got a signal.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rcot_lightning.errors import RCOTError, StopNow, TrainingInterrupted

__all__ = ["PreemptionCheckpoint", "TrainingInterrupted"]

log = logging.getLogger(__name__)


def _signals(names: Sequence[str]) -> list[signal.Signals]:
    found = []
    for name in names:
        try:
            found.append(signal.Signals[str(name).upper()])
        except KeyError:
            raise RCOTError(
                f"callbacks.preemption.signals: unknown signal {name!r}; use names such as "
                "SIGTERM, SIGINT, SIGUSR1"
            ) from None
    return found


class PreemptionCheckpoint(Callback):
    """On a stop signal: finish the iteration, save ``last.ckpt``, raise TrainingInterrupted.

    The checkpoint is written by the trainer's :class:`~rcot_lightning.callbacks.run_checkpoint.
    RunCheckpoint` (its ``last_model_path``), or to ``<default_root_dir>/checkpoints/last.ckpt``
    without one. Handlers are installed for ``fit`` only and the previous ones are restored
    afterwards. A signal before the first training batch (set-up, sanity check) gets
    Lightning's own handling.

    Args:
        signals: the signals that stop training this way.

    Example:
        >>> PreemptionCheckpoint().signals
        [<Signals.SIGTERM: 15>, <Signals.SIGINT: 2>]
    """

    def __init__(self, signals: Sequence[str] = ("SIGTERM", "SIGINT")) -> None:
        super().__init__()
        self.signals = _signals(signals)
        self.received: int | None = None
        self.checkpoint: str | None = None
        self._interrupted: TrainingInterrupted | None = None
        self._previous: dict[signal.Signals, Any] = {}

    # ------------------------------------------------------------------ signal handling
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # a second signal: the user does not want to wait
            self._restore_handlers()
            if signum == signal.SIGINT:
                raise StopNow(
                    "pressed twice: stopped at once; checkpoints already written are intact"
                )
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.received = signum
        log.warning(
            "received %s: stopping after the current iteration and saving a checkpoint "
            "(send it again to stop at once)",
            signal.Signals(signum).name,
        )
        previous = self._previous.get(signal.Signals(signum))
        if signum == signal.SIGTERM and callable(previous):
            # Lightning's own SIGTERM handler forwards the signal to the DDP processes it started.
            previous(signum, frame)

    def _install_handlers(self) -> None:
        try:
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: signals cannot be handled here
            self._restore_handlers()
            log.debug("PreemptionCheckpoint: not in the main thread, no signal handlers")

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    # ------------------------------------------------------------------ Lightning hooks
    # Installed after Lightning's own handlers (registered just before the training loop) and
    # restored before Lightning restores the ones from before fit, on both ways out of fit.
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.received, self.checkpoint, self._interrupted = None, None, None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install_handlers()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Checked before a batch, not after one: by then Lightning has logged the previous
        # iteration's values and marked it complete, so the checkpoint and the logs agree and
        # a resumed run starts with the next batch.
        requested = self.received is not None
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            raise self._stop(trainer, pl_module)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # On SIGTERM Lightning itself leaves fit with SIGTERMException, at the end of the
        # iteration under way (after its logging and a due validation) or during validation:
        # the same consistent state as before the next batch.
        if isinstance(exception, SIGTERMException) and self.checkpoint is None:
            self._stop(trainer, pl_module)
        self._restore_handlers()

    def _stop(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> TrainingInterrupted:
        self.checkpoint = self._save(trainer)
        interrupted = self.interruption(trainer)
        log.warning("%s", interrupted)
        return interrupted

    def interruption(self, trainer: pl.Trainer) -> TrainingInterrupted:
        """What the signal received during ``fit`` did: signal, checkpoint, iteration.

        Also for a signal that came during the final validation, when ``fit`` then ended
        normally and ``last.ckpt`` holds the final state.
        """
        if self._interrupted is None:
            checkpoint = self.checkpoint or getattr(
                trainer.checkpoint_callback, "last_model_path", ""
            )
            module = trainer.lightning_module
            iteration = int(getattr(module, "iteration", trainer.global_step))
            signum = self.received if self.received is not None else int(signal.SIGTERM)
            self._interrupted = TrainingInterrupted(signum, checkpoint or None, iteration)
        return self._interrupted

    @staticmethod
    def _save(trainer: pl.Trainer) -> str | None:
        from rcot_lightning.callbacks.run_checkpoint import RunCheckpoint

        callback = trainer.checkpoint_callback
        if isinstance(callback, RunCheckpoint):
            path = callback.write_last(trainer)
            if path:
                return path
        if getattr(trainer, "fast_dev_run", False):
            return None
        path = f"{trainer.default_root_dir}/checkpoints/last.ckpt"
        trainer.save_checkpoint(path)
        return path
