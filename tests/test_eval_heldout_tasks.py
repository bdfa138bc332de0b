"""``rcot-eval data=heldout_tasks``: one call scores a checkpoint on every task's held-out inputs.

The inputs are the benchmarks' (``benchmarks/tasks.py``, ``benchmarks/pretrained_quality.py``
for noise) bit for bit, so the figures agree; eval prints a table per task with a row per
severity, each with its task's metric conventions. The photos are cropped to 48 pixels (the
benchmark's ``--crop``) to stay fast.
"""

from __future__ import annotations

import csv
import importlib
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from rcot_lightning.cli.eval import evaluate
from rcot_lightning.data.evaluation import scored_sets
from rcot_lightning.data.heldout import HELDOUT_PHOTOS, load_heldout
from rcot_lightning.data.heldout_tasks import SEVERITIES, TASKS, HeldoutTasksDataModule
from rcot_lightning.errors import RCOTError
from tests.hostile import one_line_exit, save_checkpoint, tiny_config

CROP = 48
#: The metric column each task's table shows (conf/task/<task>.yaml).
CONVENTION = {"jpeg": "Y", "sr": "Y, crop 4"}


@pytest.fixture(scope="module")
def photos() -> None:
    from rcot_lightning.data.heldout import heldout_path

    try:
        for name in HELDOUT_PHOTOS:
            heldout_path(name)
    except RCOTError as err:  # the quality extra is optional
        pytest.skip(str(err))


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """An untrained tiny model: enough to run the command (figures near the input's)."""
    return save_checkpoint(tmp_path / "tiny.ckpt", tiny_config())


def _benchmark(name: str) -> Any:
    return importlib.import_module(f"benchmarks.{name}")


def test_eval_inputs_are_the_benchmarks_bit_for_bit(photos: None) -> None:
    """Every (task, severity, photo) row eval reads, through the route rcot-eval takes
    (scored_sets -> EvalDataset), equals benchmarks/tasks.py's model input and target (for
    denoise, pretrained_quality.py's noisy copy), seeds included."""
    tasks_benchmark, pretrained_quality = _benchmark("tasks"), _benchmark("pretrained_quality")
    names = ["flower", "china"]  # not the default order: a photo's seed is its place in the list
    data = HeldoutTasksDataModule(photos=names, crop=CROP, seed=1)
    clean = {n: tasks_benchmark.centre_crop(load_heldout(n)[None], CROP) for n in names}
    sets = scored_sets(data, "test")
    assert [s.label for s in sets] == [f"{t}/{s}" for t in TASKS for s in SEVERITIES[t]]
    assert set(TASKS) == {"denoise", *tasks_benchmark.TASKS}
    for item in sets:
        task, severity = item.label.split("/")
        assert item.task == task
        for index, photo in enumerate(names):
            row = item.dataset[index]
            assert row["name"] == f"{item.label}/{photo}"
            if task == "denoise":
                sigma = float(severity.removeprefix("sigma"))
                seed = 1 * 1_000_003 + int(sigma) * 101 + index  # pretrained_quality.py's
                expected = pretrained_quality.noisy_copy(clean[photo], sigma, seed)
                target = clean[photo]
            else:
                s_index = list(tasks_benchmark.SEVERITIES[task]).index(severity)
                seed = tasks_benchmark.seed_of(1, task, s_index, index)
                degrade = tasks_benchmark.SEVERITIES[task][severity]
                case = tasks_benchmark.make_case(task, degrade, clean[photo], seed)
                expected, target = case.model_input, case.clean
            assert torch.equal(row["degraded"], expected[0]), (item.label, photo)
            assert torch.equal(row["target"], target[0]), (item.label, photo)


def test_the_benchmark_seeds_are_unchanged() -> None:
    """The published figures (docs/quality/tasks_anchors.json) were measured with these seeds."""
    tasks_benchmark = _benchmark("tasks")
    assert tasks_benchmark.TASKS == ("jpeg", "derain", "dehaze", "deblur", "lowlight", "sr")
    assert tasks_benchmark.seed_of(2, "lowlight", 1, 2) == 2 * 1_000_003 + 4 * 10_007 + 101 + 2
    assert list(tasks_benchmark.SEVERITIES["jpeg"]) == [
        "q10",
        "q20",
        "q40",
        "q10_libjpeg",
        "q20_libjpeg",
        "q40_libjpeg",
    ]
    assert list(SEVERITIES["denoise"]) == ["sigma15", "sigma25", "sigma50"]


def test_the_data_refuse_training_and_unknown_names(photos: None) -> None:
    data = HeldoutTasksDataModule(tasks=["sr"], photos=["china"], crop=CROP)
    with pytest.raises(RCOTError, match="for rcot-eval only"):
        data.build_train()
    with pytest.raises(RCOTError, match=r"data.tasks must list .*unknown: denoising"):
        HeldoutTasksDataModule(tasks=["denoising"])
    with pytest.raises(RCOTError, match=r"data.photos must list .*unknown: lena"):
        HeldoutTasksDataModule(photos=["lena"])


def _tables(out: str) -> dict[str, list[list[str]]]:
    """``task -> rows`` of the per-task tables eval prints (each row split on whitespace)."""
    tables: dict[str, list[list[str]]] = {}
    task = None
    for line in out.splitlines():
        if line.startswith("task "):
            task = line.split()[1]
            tables[task] = []
        elif task and line.startswith(f"{task}/"):
            tables[task].append(line.split())
        elif not line.strip():
            task = None
    return tables


@pytest.mark.integration
def test_eval_scores_every_task_at_every_severity_in_one_call(
    photos: None,
    checkpoint: Path,
    compose_config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = compose_config(
        "eval",
        f"ckpt_path={checkpoint}",
        "data=heldout_tasks",
        f"data.crop={CROP}",
        "data.photos=[china]",
        "save_images=false",
    )
    evaluate(cfg)
    tables = _tables(capsys.readouterr().out)
    assert list(tables) == list(TASKS)
    for task, rows in tables.items():
        assert [r[0] for r in rows] == [f"{task}/{s}" for s in SEVERITIES[task]]
        for row in rows:
            assert row[1] == "1"  # images
            psnr_in, psnr_out = float(row[2]), float(row[4])
            assert math.isfinite(psnr_in) and math.isfinite(psnr_out) and psnr_out > 0
            assert " ".join(row[6:]) == CONVENTION.get(task, "RGB")
    csv_rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert {r["set"] for r in csv_rows} == {f"{t}/{s}" for t in TASKS for s in SEVERITIES[t]}


def test_one_task_keeps_its_own_metric_conventions(
    photos: None,
    checkpoint: Path,
    compose_config,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A single set of all-in-one data is still scored with its task's conventions (SR: Y
    channel, crop 4), not those of eval's task=denoise."""
    cfg = compose_config(
        "eval",
        f"ckpt_path={checkpoint}",
        "data=heldout_tasks",
        "data.tasks=[sr]",
        f"data.crop={CROP}",
        "data.photos=[china]",
        "save_images=false",
    )
    evaluate(cfg)
    tables = _tables(capsys.readouterr().out)
    assert list(tables) == ["sr"]
    (row,) = tables["sr"]
    assert row[0] == "sr/x4" and " ".join(row[6:]) == "Y, crop 4"


def test_missing_photos_name_the_extra_in_one_line(
    checkpoint: Path, compose_config, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    # As if scikit-learn were not installed.
    monkeypatch.setitem(HELDOUT_PHOTOS, "china", ("no_such_package_rcot", "china.jpg"))
    cfg = compose_config("eval", f"ckpt_path={checkpoint}", "data=heldout_tasks")
    code, line = one_line_exit("rcot-eval", lambda: evaluate(cfg), capsys)
    assert code == 2
    assert line.startswith("rcot-eval: error: data=heldout_tasks restores the held-out photos")
    assert 'pip install "rcot-lightning[quality]"' in line
