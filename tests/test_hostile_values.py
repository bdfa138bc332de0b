"""Every value a user types for a number or a flag ends, when wrong, in one line naming its key.

``tile_overlap=abc``, ``task.metric.crop_border=abc``, ``trainer.max_steps=abc``,
``max_megapixels=inf``, ``tile=nan`` used to end in ``unexpected ValueError: invalid literal for
int()``, an AssertionError or a TypeError naming no key; ``fid=abc``, ``verify=abc`` or
``trainer.enable_model_summary=abc`` were taken as true. Each value now goes through a checker of
``rcot_lightning.values`` before the work: exit status 2, one line, the key and what it takes.
Each case runs the entry point's own function in-process, as its command does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rcot_lightning.cli.eval import _conventions, evaluate
from rcot_lightning.cli.export import export_files
from rcot_lightning.cli.restore import restore_files
from rcot_lightning.cli.train import run
from rcot_lightning.errors import RCOTError
from tests.hostile import image, one_line_exit, save_checkpoint, tiny_config

FLAG = "must be true or false, got 'abc'"

#: rcot-restore: (override, the message after ``rcot-restore: error: ``).
RESTORE = [
    ("tile_overlap=abc", "tile_overlap must be an integer >= 0, got 'abc'"),
    ("tile_overlap=1.5", "tile_overlap must be an integer >= 0, got 1.5"),
    ("tile=nan", "tile must be a positive multiple of 8 or null, got nan"),
    ("tile=inf", "tile must be a positive multiple of 8 or null, got inf"),
    ("max_megapixels=abc", "max_megapixels must be a finite number > 0, got 'abc'"),
    ("max_megapixels=inf", "max_megapixels must be a finite number > 0, got inf"),
    ("precision=abc", "precision must be auto, 32 or bf16, got 'abc'"),
    ("skip_bad=abc", f"skip_bad {FLAG}"),
    ("overwrite=abc", f"overwrite {FLAG}"),
]

#: rcot-eval.
EVAL = [
    ("task.metric.crop_border=abc", "task.metric.crop_border must be an integer >= 0, got 'abc'"),
    ("task.metric.y_channel=abc", f"task.metric.y_channel {FLAG}"),
    ("save_images=abc", f"save_images {FLAG}"),
    ("fid=abc", f"fid {FLAG}"),
    ("lpips=abc", f"lpips {FLAG}"),
    ("split=abc", "split must be one of 'test', 'val', got 'abc'"),
    ("max_megapixels=abc", "max_megapixels must be a finite number > 0, got 'abc'"),
    # The tile's overlap is rcot-restore's default, 32: a tile of 32 ended in 'unexpected
    # ValueError' at the first image; the settings refuse it before the work.
    ("tile=32", "tile must be larger than tile_overlap=32, got 32"),
    ("tile=abc", "tile must be a positive multiple of 8 or null, got 'abc'"),
]

#: rcot-export.
EXPORT = [
    ("verify=abc", f"verify {FLAG}"),
    ("overwrite=abc", f"overwrite {FLAG}"),
]

#: rcot-train (the Trainer's settings are checked before the Trainer is built).
TRAIN = [
    ("trainer.max_steps=abc", "trainer.max_steps must be an integer >= -1, got 'abc'"),
    ("trainer.max_epochs=abc", "trainer.max_epochs must be an integer >= -1 or null, got 'abc'"),
    ("trainer.min_epochs=abc", "trainer.min_epochs must be an integer >= 0 or null, got 'abc'"),
    (
        "trainer.limit_val_batches=abc",
        "trainer.limit_val_batches must be a fraction in [0.0, 1.0] or a whole number >= 0 or "
        "null, got 'abc'",
    ),
    (
        "trainer.log_every_n_steps=abc",
        "trainer.log_every_n_steps must be an integer >= 0 or null, got 'abc'",
    ),
    (
        "trainer.num_sanity_val_steps=abc",
        "trainer.num_sanity_val_steps must be an integer >= -1 or null, got 'abc'",
    ),
    (
        "trainer.check_val_every_n_epoch=abc",
        "trainer.check_val_every_n_epoch must be an integer >= 1 or null, got 'abc'",
    ),
    ("trainer.enable_model_summary=abc", f"trainer.enable_model_summary {FLAG}"),
    ("trainer.benchmark=abc", f"trainer.benchmark {FLAG}"),
    (
        "trainer.deterministic=abc",
        "trainer.deterministic must be one of True, False, 'warn', None, got 'abc'",
    ),
    ("max_megapixels=inf", "max_megapixels must be a finite number > 0, got inf"),
    (
        "+trainer.max_time=abc",
        "trainer.max_time=abc: `Timer(duration='abc')` is not a valid duration. Expected a "
        "string in the format DD:HH:MM:SS",
    ),
]


_EMA = "must be a number in (0, 1) (e.g. 0.999) or null,"
#: rcot-train keys of the model node and the seed, checked before anything is built.
TRAIN_MODEL = [
    ("seed=abc", "seed must be an integer >= 0, got 'abc'"),
    ("model.n_critic=abc", "model.n_critic must be a positive integer, got 'abc'"),
    (
        "model.ema_decay=abc",
        "model.ema_decay must be a number in (0, 1) (e.g. 0.999) or null, got 'abc'",
    ),
    (
        "model.ema_decay=1.5",
        "model.ema_decay must be a number in (0, 1) (e.g. 0.999) or null, got 1.5",
    ),
    ("model.max_bad_steps=abc", "model.max_bad_steps must be a positive integer, got 'abc'"),
    ("model.map_optimizer.lr=abc", "model.map_optimizer.lr must be a finite number > 0, got 'abc'"),
    (
        "model.potential_optimizer.lr=-1",
        "model.potential_optimizer.lr must be a finite number > 0, got -1",
    ),
]


def _refused(prog: str, work: Callable[[], Any], capsys: pytest.CaptureFixture[str]) -> str:
    code, line = one_line_exit(prog, work, capsys)
    assert code == 2, line
    return line


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "tiny.ckpt", tiny_config())


@pytest.mark.parametrize(("override", "expected"), RESTORE, ids=[c[0] for c in RESTORE])
def test_restore(compose_config, capsys, tmp_path: Path, ckpt: Path, override, expected) -> None:
    photo = image(tmp_path / "a.png")
    cfg = compose_config(
        "restore", f"ckpt_path={ckpt}", f"input={photo}", f"output={tmp_path / 'o'}", override
    )
    line = _refused("rcot-restore", lambda: restore_files(cfg), capsys)
    assert line == f"rcot-restore: error: {expected}"
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(("override", "expected"), EVAL, ids=[c[0] for c in EVAL])
def test_eval(compose_config, capsys, ckpt: Path, override: str, expected: str) -> None:
    cfg = compose_config("eval", f"ckpt_path={ckpt}", "hardware=cpu", "split=val", override)
    line = _refused("rcot-eval", lambda: evaluate(cfg), capsys)
    assert line == f"rcot-eval: error: {expected}"


def test_eval_names_a_sets_own_metric_setting() -> None:
    task = {"y_channel": False, "crop_border": 0}
    assert _conventions(task, {"crop_border": 4}, "Set5") == (False, 4)
    with pytest.raises(RCOTError) as info:
        _conventions(task, {"crop_border": "abc"}, "Set5")
    assert str(info.value) == (
        "data metric.crop_border (set Set5) must be an integer >= 0, got 'abc'"
    )


@pytest.mark.parametrize(("override", "expected"), EXPORT, ids=[c[0] for c in EXPORT])
def test_export(compose_config, capsys, tmp_path: Path, ckpt: Path, override, expected) -> None:
    out = tmp_path / "m.pt"
    cfg = compose_config(
        "export", "format=torchscript", f"ckpt_path={ckpt}", f"output={out}", override
    )
    line = _refused("rcot-export", lambda: export_files(cfg), capsys)
    assert line == f"rcot-export: error: {expected}"
    assert not out.exists()


@pytest.mark.parametrize(("override", "expected"), TRAIN, ids=[c[0] for c in TRAIN])
def test_train(compose_train, capsys, tmp_path: Path, override: str, expected: str) -> None:
    cfg = compose_train("trainer.max_steps=2", override)
    line = _refused("rcot-train", lambda: run(cfg), capsys)
    assert line == f"rcot-train: error: {expected}"
    assert not any(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(("override", "expected"), TRAIN_MODEL, ids=[c[0] for c in TRAIN_MODEL])
def test_train_model_values(compose_train, capsys, override: str, expected: str) -> None:
    cfg = compose_train("trainer.max_steps=2", override)
    assert _refused("rcot-train", lambda: run(cfg), capsys) == f"rcot-train: error: {expected}"
