"""Non-finite losses or gradients skip the update, are counted, and stop a diverging run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from rcot_lightning.checkpoints.finite import first_nonfinite
from rcot_lightning.checkpoints.load import load_module
from rcot_lightning.cli.train import run
from rcot_lightning.contract import DEGRADED
from rcot_lightning.module import DivergedError


class NaNBatchAt(pl.Callback):
    """Poisons the degraded images of one training batch and records the weights around it."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}
        self.next_changed = False

    @staticmethod
    def _weights(module: Any) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, idx: int) -> None:
        if module.iteration == self.iteration:
            self.before = self._weights(module)
            batch[DEGRADED].fill_(float("nan"))

    def on_train_batch_end(self, trainer: Any, module: Any, out: Any, batch: Any, i: int) -> None:
        if module.iteration == self.iteration + 1:
            self.after = self._weights(module)
        elif module.iteration == self.iteration + 2:
            now = self._weights(module)
            self.next_changed = any(not torch.equal(now[k], self.after[k]) for k in now)


@pytest.mark.integration
def test_a_nan_batch_skips_its_updates_and_training_goes_on(compose_train, tmp_path: Path) -> None:
    cfg = compose_train(
        "trainer.max_steps=10",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "+callbacks.nan._target_=tests.test_nonfinite.NaNBatchAt",
        "+callbacks.nan.iteration=2",
    )
    result = run(cfg)
    model = result.model
    probe = next(c for c in result.trainer.callbacks if isinstance(c, NaNBatchAt))
    assert probe.before and probe.after
    assert all(torch.equal(probe.before[k], probe.after[k]) for k in probe.before)  # unchanged
    assert probe.next_changed  # the next, clean batch updates again
    assert first_nonfinite(model.state_dict()) is None
    assert model.skipped_updates == 2  # the potential's and the map's update of that batch
    # A skipped update is no optimizer step: 10 steps took 6 batches.
    assert result.trainer.global_step == 10 and model.iteration == 6
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    logged = [float(r["train/skipped_updates"]) for r in rows if r.get("train/skipped_updates")]
    assert logged[0] == 0 and logged[-1] == 2


@pytest.mark.integration
def test_an_exploding_learning_rate_stops_with_one_line_and_no_nan_best(
    compose_train, tmp_path: Path
) -> None:
    cfg = compose_train(
        "trainer.max_steps=200",
        "trainer.val_check_interval=2",
        "model.map_optimizer.lr=1e12",
        "model.potential_optimizer.lr=1e12",
        "model.max_bad_steps=3",
    )
    with pytest.raises(DivergedError) as info:
        run(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert "3 iterations in a row had a non-finite loss or gradient" in message
    assert "model.max_bad_steps" in message
    checkpoints = tmp_path / "checkpoints"
    names = sorted(p.name for p in checkpoints.iterdir())
    assert not [n for n in names if "nan" in n or "inf" in n], names
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert all(
        bool(torch.isfinite(v).all()) for v in last["state_dict"].values() if v.is_floating_point()
    )
    assert load_module(checkpoints / "last.ckpt").iteration == last["rcot_iteration"]
