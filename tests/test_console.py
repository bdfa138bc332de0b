"""What a run prints: the run's own lines, counted as the recipe block counts.

No advertisement of a cloud service, no metric objects in the model summary, epochs numbered 1
to ``max_epochs``, integer counters, loggers named in words, loader workers the machine has
(so torch does not warn about them), and a short run that says why it has no validation.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from rcot_lightning.callbacks.rcot_progress_bar import RCOTProgressBar
from tests.conftest import TINY, cli_env, run_cli


@pytest.mark.parametrize(
    ("epoch", "max_epochs", "expected"),
    [(0, 6, "Epoch 1/6"), (5, 6, "Epoch 6/6"), (2, -1, "Epoch 3")],
)
def test_progress_bar_numbers_epochs_from_one_to_max_epochs(
    epoch: int, max_epochs: int, expected: str
) -> None:
    bar = RCOTProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs)
    assert bar._get_train_description(epoch).strip() == expected


def test_progress_bar_shows_the_iteration_as_an_integer() -> None:
    bar = RCOTProgressBar()
    trainer = SimpleNamespace(
        progress_bar_metrics={"iteration": 87.0, "val/psnr": 28.5}, loggers=[]
    )
    items = bar.get_metrics(trainer, None)
    assert items["iteration"] == "87"  # the bar prints any number as 87.000
    assert items["val/psnr"] == 28.5


def test_without_a_terminal_the_bar_logs_a_line_every_n_iterations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bar = RCOTProgressBar(log_every_n_iterations=2, terminal=False)
    assert bar.plain_lines and not RCOTProgressBar(terminal=True).plain_lines
    assert not RCOTProgressBar(log_every_n_iterations=0, terminal=False).plain_lines
    trainer = SimpleNamespace(
        current_epoch=0,
        global_step=0,
        is_global_zero=True,
        progress_bar_metrics={"iteration": 2.0, "loss/map": 0.02312, "v_num": 3},
    )
    module = SimpleNamespace(iteration=0)
    bar._start, bar._last = 0.0, None
    lines = []
    for iteration in (1, 2, 3, 4):
        module.iteration = iteration
        if iteration % bar.log_every_n_iterations == 0:
            lines.append(bar.progress_line(trainer, module, iteration))
    assert lines[0].startswith("iteration 2, epoch 1, ") and "elapsed" in lines[0]
    assert lines[0].endswith("loss/map 0.02312") and "v_num" not in lines[0]
    assert "s/iteration" in lines[1]  # a rate once two lines are known
    with pytest.raises(ValueError, match="log_every_n_iterations must be an integer >= 0"):
        RCOTProgressBar(log_every_n_iterations=-1)


@pytest.mark.integration
def test_a_short_run_on_folders_is_quiet_and_explains_itself(tmp_path: Path) -> None:
    """Paired folders (``num_workers: auto``), the model summary on, warnings shown."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (48, 48), color=(40 * i, 50, 100)).save(folder / f"{i}.png")
    args = [
        *(
            t
            for t in TINY
            if not t.startswith(("data.", "recipe=", "trainer.enable_model", "callbacks.rich"))
        ),
        # The bar, into a pipe: a line per iteration.
        "callbacks.rich_progress_bar.log_every_n_iterations=1",
        "data=paired",
        f"data.train_degraded_dir={folder}",
        f"data.train_target_dir={folder}",
        f"data.val_sets={{degraded: '{folder}', target: '{folder}'}}",
        "data.batch_size=2",
        "data.crops.patch_size=32",
        "trainer.max_steps=4",
    ]
    env = cli_env()
    env.pop("PYTHONWARNINGS")  # a warning of torch or Lightning must show here
    proc = run_cli("rcot_lightning.train", *args, cwd=tmp_path, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    for noise in ("litlogger", "litmodels", "Tip:", "MeanMetric", "LeafSpec", "worker"):
        assert noise not in console, noise
    assert "transport_map" in console and "potential" in console  # the summary still shows
    assert "metrics (CSV): " in proc.stdout and "AtomicCSVLogger" not in proc.stdout
    assert "iterations: 2  (global steps: 4)" in proc.stdout
    assert "iteration 1, epoch 1, " in console and "iteration 2, epoch 1, " in console
    # 2 pairs of 4 images a batch per epoch, max_steps=4: 2 iterations, no validation yet.
    assert "no validation yet: the run ended before the first one" in proc.stdout
    assert "trainer.val_check_interval=N" in proc.stdout and "recipe=demo" in proc.stdout


def test_the_manual_optimisation_checkpoint_advice_is_dropped_and_other_warnings_kept() -> None:
    """Lightning 2.6 warns on every ``every_n_train_steps`` checkpoint of a manual-optimisation
    module (``experiment=denoise_blind`` sets one); RCOT's checkpoints do not need its advice."""
    import warnings

    from rcot_lightning.console import quiet_third_party

    with warnings.catch_warnings(record=True) as caught:
        quiet_third_party()
        warnings.warn(
            "Using ModelCheckpoint with manual optimization and every_n_train_steps, but no "
            "pre-optimization state was saved.",
            UserWarning,
            stacklevel=1,
        )
        warnings.warn("a warning of the user's own", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a warning of the user's own"]


def test_a_module_built_by_hand_quiets_the_trainer_built_around_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Importing the library changes no logging (tests/test_architecture.py); building an
    RCOTModule does, so a user's own Trainer shows what the entry points show."""
    import logging

    import lightning as L

    from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
    from rcot_lightning.console import _RANK_ZERO, ADVERTISEMENTS, _not_an_advertisement
    from rcot_lightning.module import RCOTModule
    from rcot_lightning.nets import Potential, TwoPassMap

    logging.getLogger(_RANK_ZERO).removeFilter(_not_an_advertisement)
    caplog.set_level(logging.INFO)
    L.Trainer(default_root_dir=tmp_path, accelerator="cpu", devices=1)
    # What Lightning says unless told otherwise: litlogger from 2.6.6, litmodels at the 2.6.0
    # floor (ci/floors.txt).
    assert any(word in caplog.text for word in ADVERTISEMENTS)
    caplog.clear()
    RCOTModule(TwoPassMap(**MAP_PRESETS["tiny"]), Potential(**POTENTIAL_PRESETS["tiny"]))
    L.Trainer(default_root_dir=tmp_path, accelerator="cpu", devices=1)
    assert not any(word in caplog.text for word in ADVERTISEMENTS)
    assert logging.getLogger(_RANK_ZERO).filter(logging.makeLogRecord({"msg": "GPU available"}))
