"""benchmarks/tasks.py (issue 30's classical anchors) runs on a small crop of one held-out photo,
for every task, a tiny untrained checkpoint scored beside the anchors, and prints sane JSON.

About 15 s on a 2-core CPU: 48-pixel crops, validation crops of 48 pixels for the tuning, one
BM3D sigma (BM3D costs about a second a call whatever the size).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.hostile import save_checkpoint, tiny_config
from tests.test_benchmarks import run_benchmark

pytest.importorskip("bm3d")
pytest.importorskip("skimage")

TASKS = ("jpeg", "derain", "dehaze", "deblur", "lowlight", "sr")
ANCHORS = {
    "jpeg": {"bm3d"},
    "derain": {"median", "guided"},
    "dehaze": {"dcp"},
    "deblur": {"wiener", "richardson_lucy"},
    "lowlight": {"gamma", "histeq", "clahe"},
    "sr": {"lanczos", "nearest"},
}


def _mean(report: dict, task: str, severity: str, method: str, key: str = "psnr") -> float:
    return report["tasks"][task]["severities"][severity]["methods"][method]["mean"][key]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from rcot_lightning.data.heldout import heldout_path

    try:
        heldout_path("china")
    except Exception as err:  # the quality extra is optional
        pytest.skip(str(err))
    folder = tmp_path_factory.mktemp("tasks")
    ckpt = save_checkpoint(folder / "tiny.ckpt", tiny_config())
    out = folder / "anchors.json"
    printed = run_benchmark(
        "tasks.py",
        *("--crop", "48", "--photos", "china", "--tune-crop", "48", "--bm3d-sigmas", "10"),
        *("--ckpt", f"jpeg={ckpt}", "--ckpt", f"sr={ckpt}", "--tile", "0", "--out", str(out)),
    )
    assert json.loads(out.read_text()) == printed
    return printed


@pytest.mark.integration
def test_every_task_has_its_anchors_scored_per_photo_and_per_severity(report: dict) -> None:
    assert report["benchmark"] == "tasks"
    assert report["photos"] == {"china": [48, 48]}
    assert report["threads"] == 1
    assert isinstance(report["cpu"]["model"], str) and report["cpu"]["model"]
    assert "native_bf16" in report["cpu"]
    assert set(report["tasks"]) == set(TASKS)
    rows = 0
    for task, entry in report["tasks"].items():
        model = {"model"} if task in ("jpeg", "sr") else set()
        assert set(entry["methods"]) == {"input", *ANCHORS[task], *model}
        metric = entry["metric"]
        # The field's convention, read from conf/task/<task>.yaml.
        assert metric["y_channel"] == (task in ("jpeg", "sr"))
        assert metric["crop_border"] == (4 if task == "sr" else 0)
        assert 1 <= len(entry["severities"]) <= (6 if task == "jpeg" else 4)
        for severity in entry["severities"].values():
            rows += 1
            assert set(severity["methods"]) == {"input", *ANCHORS[task], *model}
            assert severity["best_classical"] in ANCHORS[task]
            assert set(severity["tuned"]) == ANCHORS[task]
            for tuned in severity["tuned"].values():
                if "grid" in tuned:  # tuned: the chosen parameters are the grid's best
                    best = max(tuned["grid"], key=lambda trial: trial["val_psnr"])
                    assert best["val_psnr"] == tuned["val_psnr"]
                    assert all(best[k] == v for k, v in tuned["params"].items())
            for scores in severity["methods"].values():
                assert set(scores["per_photo"]) == {"china"}
                keys = {"psnr", "ssim"}
                if metric["y_channel"] or metric["also_y"]:
                    keys |= {"psnr_y", "ssim_y"}
                assert set(scores["mean"]) == keys
                assert all(math.isfinite(v) for v in scores["mean"].values())
                assert 0 < scores["mean"]["psnr"] < 100 and -1 <= scores["mean"]["ssim"] <= 1
    assert len(report["table_psnr"]) == rows


@pytest.mark.integration
def test_the_anchors_are_not_obviously_wrong(report: dict) -> None:
    tasks = report["tasks"]
    # SR: bicubic (the model's input) and Lanczos above nearest-neighbour up-sampling.
    assert _mean(report, "sr", "x4", "input") > _mean(report, "sr", "x4", "nearest")
    assert _mean(report, "sr", "x4", "lanczos") > _mean(report, "sr", "x4", "nearest")
    # Dehazing: the dark channel prior above the hazy input on the mean over severities, and
    # on the heaviest haze.
    dehaze = tasks["dehaze"]["severities"]
    assert sum(_mean(report, "dehaze", s, "dcp") for s in dehaze) > sum(
        _mean(report, "dehaze", s, "input") for s in dehaze
    )
    assert _mean(report, "dehaze", "heavy", "dcp") > _mean(report, "dehaze", "heavy", "input") + 3
    # Deblurring told the kernel beats the blurred input at every severity.
    for severity in tasks["deblur"]["severities"]:
        best = max(_mean(report, "deblur", severity, m) for m in ANCHORS["deblur"])
        assert best > _mean(report, "deblur", severity, "input")
    # Low light: the best classical enhancement far above the dark input.
    for severity, entry in tasks["lowlight"]["severities"].items():
        best = _mean(report, "lowlight", severity, entry["best_classical"])
        assert best > _mean(report, "lowlight", severity, "input") + 3
    # JPEG: BM3D deblocking above the q=10 input. (Rain is not compared: on 48 px crops the
    # filters, tuned on 48 px validation crops, may lose to the input; at full size the median
    # filter gains 3-7 dB, docs/quality/tasks_anchors.json.)
    assert _mean(report, "jpeg", "q10", "bm3d") > _mean(report, "jpeg", "q10", "input")


@pytest.mark.integration
def test_a_checkpoint_is_scored_on_the_models_input(report: dict) -> None:
    """An untrained tiny map stays near the identity: its score is near the input's (for SR,
    the bicubic up-sampling it is given, not the small image)."""
    for task, severity in (("jpeg", "q20"), ("sr", "x4")):
        model = _mean(report, task, severity, "model")
        assert abs(model - _mean(report, task, severity, "input")) < 6
        assert "map_for_inference" in report["tasks"][task]["methods"]["model"]


@pytest.mark.integration
def test_a_wrong_ckpt_mapping_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.test_benchmarks import BENCHMARKS

    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "tasks.py"), "--ckpt", "denoise=x.ckpt"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "--ckpt takes TASK=PATH" in done.stderr


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    """A run folder whose checkpoints/ holds one untrained tiny map's last.ckpt; skips without
    the held-out photos (the quality extra)."""
    from rcot_lightning.data.heldout import heldout_path

    try:
        heldout_path("china")
    except Exception as err:  # the quality extra is optional
        pytest.skip(str(err))
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    save_checkpoint(checkpoints / "last.ckpt", tiny_config())
    return tmp_path / "run"


@pytest.mark.integration
def test_the_held_out_curve_of_a_task_run_scores_each_checkpoint_per_severity(
    tiny_run: Path,
) -> None:
    """benchmarks/heldout_curve.py --task: the input's row first, then one row per checkpoint in
    iteration order, each with every severity of the task on tasks.py's inputs."""
    from benchmarks.heldout_curve import task_curve
    from rcot_lightning.data.heldout_tasks import SEVERITIES

    rows = task_curve(tiny_run, "derain", ["china"], tile=0, crop=128)
    assert [row["checkpoint"] for row in rows] == [None, "last.ckpt"]
    for row in rows:
        assert list(row["severities"]) == list(SEVERITIES["derain"])
        mean = sum(row["severities"].values()) / len(row["severities"])
        assert math.isclose(row["psnr"], mean, abs_tol=1e-3)
    # The input's PSNR falls as the rain gets heavier; an untrained map stays near it.
    light, medium, heavy = rows[0]["severities"].values()
    assert light > medium > heavy
    assert abs(rows[1]["psnr"] - rows[0]["psnr"]) < 6


def test_the_all_in_one_curve_scores_every_task_with_each_checkpoint_once(
    tiny_run: Path,
) -> None:
    """heldout_curve.py --task allinone: per row, every task of the all-in-one table with its
    severities (JPEG as libjpeg writes it) and the mean over tasks, each task weighing the same."""
    from benchmarks.heldout_curve import ALLINONE_TASKS, task_curve
    from rcot_lightning.data.heldout_tasks import SEVERITIES

    rows = task_curve(tiny_run, "allinone", ["china"], tile=0, crop=64)
    assert [row["checkpoint"] for row in rows] == [None, "last.ckpt"]
    for row in rows:
        assert list(row["tasks"]) == list(ALLINONE_TASKS)
        jpeg = ["q10_libjpeg", "q20_libjpeg", "q40_libjpeg"]
        assert list(row["tasks"]["jpeg"]["severities"]) == jpeg
        assert list(row["tasks"]["deblur"]["severities"]) == list(SEVERITIES["deblur"])
        means = [task["psnr"] for task in row["tasks"].values()]
        assert math.isclose(row["psnr"], sum(means) / len(means), abs_tol=1e-3)
    # The input's noise row falls with sigma, as the per-task curve's does.
    s15, s25, s50 = rows[0]["tasks"]["denoise"]["severities"].values()
    assert s15 > s25 > s50
