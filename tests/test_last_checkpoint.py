"""``last.ckpt`` holds the final state of every run, however it ends; the best stays separate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rcot_lightning.callbacks.run_checkpoint import RunCheckpoint
from rcot_lightning.cli.train import run


def _last(tmp_path: Path) -> dict:
    return torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)


def _same_weights(checkpoint: dict, model: torch.nn.Module) -> bool:
    state = model.state_dict()
    return all(torch.equal(checkpoint["state_dict"][k], v) for k, v in state.items())


# 4 batches (iterations) per epoch; validation every 2 iterations unless said otherwise.
ENDINGS = {
    # max_steps=10 (5 iterations) stops between two validations (after 4 and 6).
    "max_steps": ("trainer.max_steps=10", "trainer.val_check_interval=2"),
    "max_epochs": ("trainer.max_epochs=2", "trainer.val_check_interval=3"),
    # Validation PSNR must rise by 100 dB: stops after the second validation.
    "early_stop": (
        "trainer.max_epochs=5",
        "+callbacks.early_stopping._target_=lightning.pytorch.callbacks.EarlyStopping",
        "+callbacks.early_stopping.monitor=val/psnr",
        "+callbacks.early_stopping.mode=max",
        "+callbacks.early_stopping.patience=0",
        "+callbacks.early_stopping.min_delta=100",
    ),
}
EXPECTED_ITERATIONS = {"max_steps": 5, "max_epochs": 8, "early_stop": 8}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.integration
def test_last_checkpoint_is_the_final_state(
    compose_train, tmp_path: Path, ending: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(compose_train(*ENDINGS[ending]))
    model, trainer = result.model, result.trainer
    assert model.iteration == EXPECTED_ITERATIONS[ending]
    last = _last(tmp_path)
    assert last["rcot_iteration"] == model.iteration
    assert last["global_step"] == trainer.global_step
    assert _same_weights(last, model)
    callback = trainer.checkpoint_callback
    assert isinstance(callback, RunCheckpoint)
    assert Path(callback.last_model_path).name == "last.ckpt"
    best = Path(callback.best_model_path)
    assert (
        best.is_file() and best.name.startswith("best-") and best != Path(callback.last_model_path)
    )
    out = capsys.readouterr().out
    assert f"iterations: {model.iteration}  (global steps: {trainer.global_step})" in out


@pytest.mark.integration
def test_summary_counts_iterations_trained_not_the_tested_checkpoints(
    compose_train, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Testing loads the best checkpoint (iteration 2, 4 or 6) into the module; the summary
    # must still report the 7 iterations trained.
    cfg = compose_train(
        "trainer.max_steps=14",
        "trainer.val_check_interval=2",
        "test=true",
        "data.val_images=[chelsea]",
    )
    result = run(cfg)
    best = torch.load(result.trainer.checkpoint_callback.best_model_path, weights_only=False)
    assert best["rcot_iteration"] in (2, 4, 6)
    assert _last(tmp_path)["rcot_iteration"] == 7
    assert "iterations: 7  (global steps: 14)" in capsys.readouterr().out


@pytest.mark.integration
def test_resume_from_last_continues_after_the_final_iteration(
    compose_train, tmp_path: Path
) -> None:
    run(compose_train("trainer.max_steps=10", "trainer.val_check_interval=2"))
    assert _last(tmp_path)["rcot_iteration"] == 5
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = run(
            compose_train("trainer.max_steps=14", "trainer.val_check_interval=2", "ckpt_path=last")
        )
    # Its own folder is full, as it should be: Lightning's warning is for fresh runs only.
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    assert resumed.model.iteration == 7
    assert _last(tmp_path)["rcot_iteration"] == 7
    names = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "last-v1.ckpt" not in names  # the same run continues in its own last.ckpt
    with pytest.warns(UserWarning, match="exists and is not empty"):  # a fresh run into it
        run(compose_train("trainer.max_steps=2", "trainer.val_check_interval=1"))


@pytest.mark.integration
def test_every_n_epochs_checkpoints_are_named_with_their_own_validation_psnr(
    compose_train, tmp_path: Path
) -> None:
    """The task recipes keep a checkpoint every second validation (every_n_epochs=2 with saves
    at validation end): each name's PSNR is the validation at that very iteration, which a
    step-based save (every_n_train_steps, before the validation at its step) would not give."""
    import csv

    run(
        compose_train(
            "trainer.max_epochs=4",
            "+callbacks.model_checkpoint.every_n_epochs=2",
            "callbacks.model_checkpoint.save_top_k=-1",
        )
    )
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("best-*.ckpt"))
    assert [name.split("-")[1] for name in names] == ["iter000008", "iter000016"]
    (metrics,) = (tmp_path / "csv").glob("*/metrics.csv")
    validated = {}
    for row in csv.DictReader(metrics.open()):
        if row.get("val/psnr"):  # at the end of each epoch of 4 iterations
            validated[4 * (int(row["epoch"]) + 1)] = float(row["val/psnr"])
    assert sorted(validated) == [4, 8, 12, 16]
    for name in names:
        iteration = int(name.split("-")[1].removeprefix("iter"))
        assert name == f"best-iter{iteration:06d}-psnr{validated[iteration]:.2f}.ckpt"
