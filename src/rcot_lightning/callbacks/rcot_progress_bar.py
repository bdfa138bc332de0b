"""The training progress bar, counting as the recipe block does.

Lightning's rich bar numbers epochs from 0 to ``max_epochs - 1`` (``Epoch 5/5`` is the last of
6) and prints every logged value with three decimals (``iteration: 87.000``); the recipe block
and the summary count epochs from 1 to ``max_epochs`` and iterations as integers.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar

__all__ = ["RCOTProgressBar"]

#: Logged values that count things: shown as integers.
COUNTERS = ("iteration",)


class RCOTProgressBar(RichProgressBar):
    """:class:`~lightning.pytorch.callbacks.RichProgressBar` with ``Epoch 1/6`` ... ``Epoch 6/6``
    and integer counters; the logger's version number (``v_num``) is left out."""

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
