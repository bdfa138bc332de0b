"""The benchmark scripts run with their smallest options and print well-formed, sane JSON.

No absolute time is asserted (timings vary about +-15% on shared machines); only that rates are
positive and the reported ratios exist and are consistent with the rates.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *args: str) -> dict[str, Any]:
    # One thread: the test suite shares the machine; the scripts set torch's threads themselves.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_throughput_reports_rates_and_ratios() -> None:
    report = run_benchmark("throughput.py", "--preset", "tiny", "--repeats", "2", "--iters", "1")
    assert report["preset"] == "tiny" and report["threads"] == 1
    assert report["batch"] == 2 and report["patch"] == 32
    assert "direct" in report["method"]
    rates = report["rates"]
    assert set(rates) == {"ours", "reference", "ours_bf16", "ours_lightning"}
    for rate in rates.values():
        assert rate["iters_per_s"] > 0
        assert len(rate["s_per_iter_all"]) == 2
        assert all(t > 0 for t in rate["s_per_iter_all"])
    ratios = report["ratios"]
    for key in ("ours_over_reference", "bf16_over_fp32", "lightning_over_direct"):
        assert ratios[key] is not None and math.isfinite(ratios[key]) and ratios[key] > 0
    params = report["potential_params"]
    for size in ("64px", "128px", "256px"):
        # The size-agnostic potential is smaller than every patch-sized reference one.
        assert params[size]["reference_over_ours"] > 1
    assert params["64px"]["ours"] == params["256px"]["ours"]


def test_inference_scaling_tiles_match_for_a_local_net() -> None:
    report = run_benchmark(
        "inference_scaling.py",
        *("--preset", "tiny", "--sizes", "64", "--odd-size", "72x53"),
        *("--tile", "32", "--overlap", "16", "--repeats", "1"),
    )
    assert [row["size"] for row in report["results"]] == [[64, 64], [72, 53]]
    for row in report["results"]:
        for mode in ("untiled", "tiled"):
            assert row[mode]["s_per_image"] > 0
            assert row[mode]["peak_rss_mib"] > 0
            assert row[mode]["inference_rss_mib"] >= 0
        assert row["tiles"] > 1
        # The tiling is exact for a net whose receptive field fits in the overlap ...
        assert row["max_abs_diff_local_net"] < 1e-4
        # ... while the Restormer map's channel attention is global: tiling changes it a little.
        assert 0 <= row["max_abs_diff"] < 1


# Two trainings in subprocesses: about 30 s on an idle 2-core CPU.
@pytest.mark.slow
def test_quality_smoke_trains_scores_and_writes_table_json_and_figures(tmp_path: Path) -> None:
    # Two trainings through the real CLI (the tiny model, 2 iterations) and the noisy baseline.
    out = tmp_path / "quality"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            *(sys.executable, str(BENCHMARKS / "quality.py"), "--out", str(out), "--smoke"),
            *("--variants", "noisy", "frot_l2_onepass", "--seeds", "0", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "quality.json").read_text())
    table = report["table"]
    assert set(table) == {"sigma25/noisy", "sigma25/frot_l2_onepass"}
    noisy = report["results"]["sigma25/noisy"]["-"]
    # Seeded sigma-25 noise on [0, 1] photos (clipped) sits near 20.5 dB, whatever the run.
    assert 19.5 < noisy["psnr"] < 21.5 and 0 < noisy["ssim"] < 0.5
    assert set(noisy["per_image"]) == {"china", "flower"}
    trained = report["results"]["sigma25/frot_l2_onepass"]
    assert set(trained) == {"0", "1"} and all(r["iterations"] == 2 for r in trained.values())
    row = table["sigma25/frot_l2_onepass"]
    assert math.isfinite(row["psnr"]) and row["psnr_std"] >= 0 and math.isfinite(row["fid"])
    # FID of the noisy input against the clean photos is clearly above zero.
    assert noisy["fid"] > 0
    markdown = (out / "quality.md").read_text()
    assert "FROT + l2, one-pass map (TRC off)" in markdown and "noisy input" in markdown
    for name in ("noisy_sigma25.png", "frot_l2_onepass_sigma25.png"):
        assert (out / "figures" / name).stat().st_size > 0
