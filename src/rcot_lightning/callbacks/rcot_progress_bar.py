"""The training progress bar, counting as the recipe block does.

Lightning's rich bar numbers epochs from 0 to ``max_epochs - 1`` (``Epoch 5/5`` is the last of
6) and prints every logged value with three decimals (``iteration: 87.000``); the recipe block
and the summary count epochs from 1 to ``max_epochs`` and iterations as integers.

A bar draws nothing useful into a file or a pipe (``nohup``, a batch job, CI): when the console
is not a terminal the bar logs one plain line every ``log_every_n_iterations`` iterations
instead (``iteration 500, epoch 1, 0.91 s/iteration, 7m35s elapsed, loss/map 0.0231``), so the
run's log and ``train.log`` show it is alive and how fast it goes.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar

from rcot_lightning.values import at_least

__all__ = ["RCOTProgressBar"]

#: Logged values that count things: shown as integers.
COUNTERS = ("iteration",)

log = logging.getLogger(__name__)


def _elapsed(seconds: float) -> str:
    """``75 -> '1m15s'``, ``3725 -> '1h02m05s'``.

    Example:
        >>> _elapsed(75), _elapsed(3725), _elapsed(9)
        ('1m15s', '1h02m05s', '9s')
    """
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class RCOTProgressBar(RichProgressBar):
    """:class:`~lightning.pytorch.callbacks.RichProgressBar` with ``Epoch 1/6`` ... ``Epoch 6/6``
    and integer counters; the logger's version number (``v_num``) is left out.

    Args:
        log_every_n_iterations: with no terminal to draw on, log a progress line this often
            (``0``: never).
        terminal: whether the output is a terminal; ``None`` asks ``sys.stdout.isatty()``.
        **kwargs: :class:`~lightning.pytorch.callbacks.RichProgressBar`'s arguments.
    """

    def __init__(
        self, log_every_n_iterations: int = 100, terminal: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.log_every_n_iterations = at_least(log_every_n_iterations, "log_every_n_iterations", 0)
        self._terminal = terminal
        self._last: tuple[float, int] | None = None  # (time, iteration) of the last line
        self._start = 0.0

    @property
    def plain_lines(self) -> bool:
        """Whether progress goes out as log lines (no terminal, and lines asked for)."""
        terminal = sys.stdout.isatty() if self._terminal is None else self._terminal
        return not terminal and self.log_every_n_iterations > 0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_start(trainer, pl_module)
        self._start = time.perf_counter()
        self._last = (self._start, int(getattr(pl_module, "iteration", trainer.global_step)))

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.log_every_n_iterations == 0 or not trainer.is_global_zero:
            return
        iteration = int(getattr(pl_module, "iteration", trainer.global_step))
        # Only then ask the terminal: every iteration would ask it for nothing.
        if iteration <= 0 or iteration % self.log_every_n_iterations or not self.plain_lines:
            return
        log.info(self.progress_line(trainer, pl_module, iteration))

    def progress_line(self, trainer: Any, pl_module: Any, iteration: int) -> str:
        """``iteration 500, epoch 1, 0.91 s/iteration, 7m35s elapsed, loss/map 0.0231``."""
        now = time.perf_counter()
        parts = [f"iteration {iteration}", f"epoch {trainer.current_epoch + 1}"]
        if self._last is not None and iteration > self._last[1]:
            rate = (now - self._last[0]) / (iteration - self._last[1])
            parts.append(f"{rate:.2f} s/iteration")
        self._last = (now, iteration)
        parts.append(f"{_elapsed(now - self._start)} elapsed")
        for name, value in trainer.progress_bar_metrics.items():
            if name in COUNTERS or name == "v_num" or not isinstance(value, (int, float)):
                continue
            parts.append(f"{name} {value:.4g}")
        return ", ".join(parts)

    def _get_train_description(self, current_epoch: int) -> str:
        # Lightning's own method (private, stable since 1.5) builds "Epoch <n>/<max - 1>".
        description = f"Epoch {current_epoch + 1}"
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs > 0:
            description += f"/{max_epochs}"
        width = len(self.validation_description)
        return f"{description:{width}}" if len(description) < width else description

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        for name in COUNTERS:
            value = items.get(name)
            if isinstance(value, (int, float)):
                # A string: the bar formats every number with three decimals, ints included.
                items[name] = str(int(value))
        return items
