"""The benchmark scripts run with their smallest options and print well-formed, sane JSON.

No absolute time is asserted (timings vary about +-15% on shared machines); only that rates are
positive and the reported ratios exist and are consistent with the rates.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

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


def assert_names_its_cpu(report: dict[str, Any]) -> None:
    """The report says which CPU it ran on and whether it has native bf16."""
    cpu = report["cpu"]
    assert isinstance(cpu["model"], str) and cpu["model"]
    assert "native_bf16" in cpu


@pytest.mark.integration
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
    assert_names_its_cpu(report)


@pytest.mark.integration
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
    assert_names_its_cpu(report)


# Two trainings in subprocesses: about 30 s on an idle 2-core CPU.
@pytest.mark.slow
@pytest.mark.integration
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
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_throughput_times_the_authors_loop_and_each_cpu_setting() -> None:
    variants = ["ours", "authors", "ours_foreach", "ours_channels_last", "ours_checkpointing"]
    variants += ["ours_best", "ours_lightning", "ours_lightning_best"]
    report = run_benchmark(
        "throughput.py",
        *("--preset", "tiny", "--repeats", "1", "--iters", "1", "--warmup", "0", "--flops"),
        *("--variants", *variants, "--best", "bf16", "foreach"),
    )
    assert set(report["rates"]) == set(variants)
    assert report["best_settings"] == ["bf16", "foreach"]
    ratios = report["ratios"]
    for key in ("ours_over_authors", "ours_best_over_authors", "ours_lightning_over_authors"):
        assert math.isfinite(ratios[key]) and ratios[key] > 0
    assert ratios["lightning_best_over_direct_best"] > 0
    flops = report["flops"]
    # The authors' loop does everything ours does plus a second map forward and a bigger head.
    assert flops["per_iteration"]["authors"] > flops["per_iteration"]["ours"] > 0
    peaks = flops["matmul_peak_flop_per_s"]
    assert peaks["fp32"] > 0 and peaks["bf16"] > 0
    for name, achieved in flops["achieved"].items():
        assert 0 < achieved["fraction_of_peak"] < 1.5, name  # a 2048 matmul is near the peak
    assert len(report["load_average"]) == 3
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_memory_reports_each_configuration_from_its_own_process() -> None:
    report = run_benchmark(
        "memory.py",
        *("--preset", "tiny", "--batch", "2", "--patch", "32"),
        *("--configs", "fp32", "bf16_checkpointing"),
    )
    assert report["device"] == "cpu"
    results = report["results"]
    assert set(results) == {"fp32", "bf16_checkpointing"}
    for row in results.values():
        assert row["peak_mib"] >= row["steady_mib"] > 0
        assert row["activation_mib"] == row["peak_mib"] - row["steady_mib"]
        assert row["state_mib"] > 0 and row["s_per_iter"] > 0
        assert row["gpu_estimate_gib"] > row["state_mib"] / 1024
    assert results["bf16_checkpointing"]["autocast"] == "bfloat16"
    assert results["fp32"]["autocast"] is None and results["fp32"]["checkpointing"] is False
    assert results["bf16_checkpointing"]["checkpointing"] is True
    assert report["activation_saving"]["checkpointing_fp32"] is None  # not measured here
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_inference_scaling_extrapolates_large_images_from_a_few_tile_batches() -> None:
    report = run_benchmark(
        "inference_scaling.py",
        *("--preset", "tiny", "--megapixels", "0.01", "--sizes", "48x80", "--tiled-only"),
        *("--tile", "32", "--overlap", "16", "--max-tile-batches", "1", "--repeats", "1"),
    )
    rows = report["results"]
    assert [row["size"] for row in rows] == [[104, 104], [48, 80]]
    for row in rows:
        assert "untiled" not in row
        tiled = row["tiled"]
        assert tiled["tiles_run"] == 4 < tiled["tiles_total"]  # one batch of 4 tiles ran
        assert tiled["extrapolated"] is True
        assert tiled["s_per_mp"] == tiled["s_per_image"] / row["megapixels"] > 0
        assert tiled["peak_rss_mib"] > 0
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_tiling_quality_reports_the_psnr_cost_of_tiles() -> None:
    pytest.importorskip("sklearn")  # the held-out photo ships with scikit-learn
    report = run_benchmark(
        "tiling_quality.py",
        *("--preset", "tiny", "--photos", "china", "--crop", "192"),
        *("--tiles", "96", "128", "--overlaps", "16", "--repeats", "1"),
    )
    assert report["photos"] == {"china": [192, 192]}
    assert "untrained" in report["map"]
    assert [(g["tile"], g["overlap"]) for g in report["grid"]] == [(96, 16), (128, 16)]
    for g in report["grid"]:
        assert math.isfinite(g["psnr_cost_db"]) and g["pixel_overhead"] > 1
    assert report["grid"][0]["pixel_overhead"] > report["grid"][1]["pixel_overhead"]
    assert math.isfinite(report["bf16"]["psnr_diff_db"]) and report["bf16"]["speedup_over_fp32"] > 0
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_gpu_script_fails_clearly_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run the benchmarks")
    done = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu.sh"), "/tmp/rcot-gpu-benchmarks-test"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr


def _benchmark_module(name: str) -> Any:
    return importlib.import_module(f"benchmarks.{name}")


SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_imports_as_a_module_of_the_package(script: str) -> None:
    # Imported (tests, other scripts), a script only defines things: no path edits, no run.
    path = list(sys.path)
    module = _benchmark_module(script)
    assert sys.path == path
    assert module.__name__ == f"benchmarks.{script}" and module.__doc__


@pytest.mark.integration
def test_a_script_run_as_a_file_imports_the_shared_modules() -> None:
    # ``python benchmarks/claims.py`` puts benchmarks/ on the path, not the checkout; claims.py
    # imports benchmarks.common, benchmarks.quality and benchmarks.heldout_curve all the same.
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "claims.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent / "docs",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--probes" in done.stdout


def test_claims_intervals_paired_differences_and_verdicts_on_fixed_numbers() -> None:
    claims = _benchmark_module("common")
    # Student t quantiles t(0.975, df) from the tables.
    for df, quantile in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262)]:
        assert claims.t_quantile(df) == pytest.approx(quantile, abs=1e-3)
    # Three seeds 28, 29, 30: mean 29, s = 1, half-width 4.3027 / sqrt(3) = 2.4841.
    row = claims.interval([28.0, 29.0, 30.0])
    assert row["mean"] == 29.0 and row["n"] == 3
    assert row["half_width"] == pytest.approx(2.4841, abs=1e-4)
    assert row["lo"] == pytest.approx(29 - 2.4841, abs=1e-4)
    assert claims.interval([5.0])["lo"] is None and claims.interval([])["mean"] is None
    # Paired over the shared seeds only: differences 1.0, 1.2, 0.8 (seed 3 has no partner).
    a = {"0": 30.0, "1": 30.2, "2": 29.8, "3": 35.0}
    b = {"0": 29.0, "1": 29.0, "2": 29.0}
    diff = claims.paired_difference(a, b)
    assert diff["seeds"] == ["0", "1", "2"] and diff["mean"] == pytest.approx(1.0)
    # s = 0.2: half-width 4.3027 * 0.2 / sqrt(3) = 0.4968, so [0.5032, 1.4968].
    assert diff["lo"] == pytest.approx(0.5032, abs=1e-4)
    assert diff["hi"] == pytest.approx(1.4968, abs=1e-4)
    at_least, within = claims.Target("at_least", 0.5), claims.Target("within", 1.0)
    assert claims.verdict(diff["lo"], diff["hi"], at_least) == "holds"
    assert claims.verdict(diff["lo"], diff["hi"], claims.Target("at_least", 0.6)) == (
        "inconclusive"
    )
    assert claims.verdict(diff["lo"], diff["hi"], claims.Target("at_least", 1.5)) == (
        "does not hold"
    )
    assert claims.verdict(diff["lo"], diff["hi"], within) == "inconclusive"
    assert claims.verdict(-0.9, 0.9, within) == "holds"
    assert claims.verdict(1.01, 3.0, within) == "does not hold"
    assert claims.verdict(None, None, at_least) == "inconclusive"
    # The knee: the second half of the budget added 1 of 7 dB.
    rows = [{"cpu_seconds": c, "psnr": p} for c, p in [(60, 25.0), (300, 26.0), (600, 27.0)]]
    knee = claims.late_gain(rows, 20.0)
    assert knee["late_gain_db"] == pytest.approx(1.0) and not knee["past_knee"]
    assert knee["late_fraction"] == pytest.approx(1 / 7)


def test_band_split_puts_each_error_in_its_frequency_band_and_adds_up_to_the_mse() -> None:
    bands = _benchmark_module("claims_bands")
    assert bands.band_labels() == ["0-1/32", "1/32-1/16", "1/16-1/8", "1/8-1/4", "1/4-max"]
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    clean = 0.5 + 0.2 * torch.cos(2 * torch.pi * x / 64)  # energy at 1/64 c/px: band 0
    fine = 0.05 * torch.cos(2 * torch.pi * 0.375 * (x + y))  # 0.53 c/px: the last band
    coarse = 0.05 * torch.cos(2 * torch.pi * 3 * y / 64)  # 3/64 = 0.047 c/px: band 1
    restored = (clean + fine + coarse).expand(3, 64, 64)
    split = bands.band_split(restored, clean.expand(3, 64, 64))
    mse = float((fine + coarse).pow(2).mean())
    assert sum(split["error"]) == pytest.approx(mse, rel=1e-6)  # float32 images
    assert split["error"][1] == pytest.approx(0.05**2 / 2, rel=1e-6)  # the coarse wave
    assert split["error"][4] == pytest.approx(0.05**2 / 2, rel=1e-6)  # the fine wave
    assert max(split["error"][0], split["error"][2], split["error"][3]) < 1e-12
    assert split["power"][0] == pytest.approx(1.0)  # the clean image's own band is kept
    with pytest.raises(ValueError, match="one shape"):
        bands.band_split(restored, clean)


def test_a_probe_is_read_as_the_claim_with_the_change_over_shared_seeds() -> None:
    claims = _benchmark_module("claims")
    probes = {p.id: p for p in claims.PROBES}
    (c1,) = [c for c in claims.CLAIMS if c.id == "C1"]
    # P3 replaces both sides, P1 only A.
    selected, chosen, keys = claims.selected([], ["P1", "P2", "P3"])
    assert selected == [c1] and chosen == [probes["P1"], probes["P2"], probes["P3"]]
    assert keys == [c1.a, c1.b, probes["P1"].a, probes["P2"].a, probes["P3"].a, probes["P3"].b]
    assert claims.VARIANTS[probes["P3"].a].budget_factor == 3.0
    psnr = {  # per seed; seed 2 of P1's run is missing, so its differences use seeds 0 and 1
        c1.a: {"0": 26.0, "1": 26.2, "2": 26.1},
        c1.b: {"0": 29.5, "1": 29.4, "2": 29.6},
        probes["P1"].a: {"0": 27.0, "1": 27.4},
        probes["P3"].a: {"0": 27.0, "1": 27.1, "2": 27.2},
        probes["P3"].b: {"0": 29.9, "1": 29.9, "2": 30.1},
    }
    results = {
        key: {
            seed: {"psnr": v, "ssim": 0.7, "iterations": 100, "budget_cpu_seconds": 600}
            for seed, v in by_seed.items()
        }
        for key, by_seed in psnr.items()
    }
    summary = claims.summarise(selected, keys, results, {"sigma25": {"psnr": 21.0}}, chosen)
    p1, p2, p3 = summary["probes"]
    # P2 has no finished run: nothing measured, so no verdict to read.
    assert p2["claim_with_change"]["n"] == 0 and p2["claim_verdict"] == "not run"
    assert list(p1["changes"]) == ["A' - A"] and p1["b"] == c1.b
    change = p1["changes"]["A' - A"]["diff"]
    assert change["seeds"] == ["0", "1"] and change["mean"] == pytest.approx(1.1)
    assert p1["claim_with_change"]["mean"] == pytest.approx(-2.25)  # (-2.5 - 2.0) / 2
    # [-2.25 -+ 3.18] (t(0.975, 1) = 12.7): reaches both below -1 and inside the margin.
    assert p1["claim_verdict"] == "inconclusive"
    assert list(p3["changes"]) == ["A' - A", "B' - B"]
    assert p3["changes"]["B' - B"]["diff"]["mean"] == pytest.approx(0.4667, abs=1e-4)
    # A' - B' = -2.9, -2.8, -2.9: the whole interval lies below -1.
    assert p3["claim_with_change"]["mean"] == pytest.approx(-2.8667, abs=1e-4)
    assert p3["claim_verdict"] == "does not hold"
    report = {
        "budget_minutes": 10,
        "model": "rcot_small",
        "seeds": [0, 1, 2],
        "inputs": {"sigma25": {"psnr": 21.0}},
        "command": "python benchmarks/claims.py",
    }
    table = claims.markdown(summary, report)
    assert "| P3 | C1 |" in table and "`sigma25/l1_3x`" in table


# Ten Hydra compositions with experiments: about 30 s on an idle 2-core CPU.
@pytest.mark.slow
def test_every_claim_run_composes_with_the_training_configs(tmp_path: Path) -> None:
    # A typo in a variant's overrides would otherwise surface hours into a study.
    from hydra import compose, initialize_config_module

    claims = _benchmark_module("claims")
    args = claims.parse_args(["--out", str(tmp_path), "--curve", "100"])
    assert args.budget == 10 and args.seeds == [0, 1, 2] and args.model == "rcot_small"
    with initialize_config_module("rcot_lightning.conf", version_base="1.3"):
        for key, variant in claims.VARIANTS.items():
            overrides = claims.run_overrides(key, 0, tmp_path / "run", args)
            # Hydra-only keys are not part of the composed job config.
            cfg = compose("train", overrides=[o for o in overrides if "hydra." not in o])
            assert cfg.callbacks.cpu_budget.minutes == 10 * variant.budget_factor, key
            assert cfg.trainer.max_time is None and cfg.trainer.max_steps == -1, key
            assert cfg.data.crops.patch_size == 48 and cfg.data.dead_leaves == 256, key
            names = {"sigma25": "denoise", "rain": "derain", "allinone": "allinone"}
            assert cfg.task.name == names[variant.task], key
            # One checkpoint cadence: Lightning refuses every N steps beside every N epochs.
            assert cfg.callbacks.model_checkpoint.get("every_n_epochs") is None, key
            assert cfg.callbacks.model_checkpoint.save_top_k == -1  # the first seed's curve
            objective = cfg.model.objective
            if "ot" in key.split("/")[1] or "frot" in key:
                assert objective.potential_weight > 0, key
            else:
                assert objective.potential_weight == 0, key
            # A run called Fourier-free has its Fourier weight at 0, and FROT has it on.
            assert (objective.fourier_weight > 0) == ("frot" in key), key
            # Only the probe named for it uses the authors' (unnormalised, batch-sum) term.
            assert objective.reference_fourier == key.endswith("_ref"), key
    claimed = {k for c in claims.CLAIMS for k in (c.a, c.b)}
    probed = {k for p in claims.PROBES for k in p.variants()}
    assert claimed | probed == set(claims.VARIANTS)


# Four tiny trainings and a resumed pass: about 3 minutes on a loaded 2-core CPU.
@pytest.mark.slow
@pytest.mark.integration
def test_claims_smoke_trains_scores_resumes_and_writes_table_json_and_figures(
    tmp_path: Path,
) -> None:
    out = tmp_path / "claims"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        *(sys.executable, str(BENCHMARKS / "claims.py"), "--out", str(out), "--smoke"),
        *("--claims", "C1", "--seeds", "0", "1", "--curve", "4"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "claims.json").read_text())
    assert report["model"] == "rcot_tiny" and report["seeds"] == [0, 1]
    assert_names_its_cpu(report)
    assert set(report["variants"]) == {"sigma25/ot_unpaired", "sigma25/l1"}
    for key, row in report["variants"].items():
        assert row["seeds"] == ["0", "1"], key
        psnr = row["psnr"]
        assert psnr["n"] == 2 and psnr["lo"] <= psnr["mean"] <= psnr["hi"]
        # The budget stopped every run (a few iterations past it at most).
        assert row["budget_cpu_minutes"]["mean"] >= report["budget_minutes"]
    (claim,) = report["claims"]
    assert claim["id"] == "C1" and claim["target"] == "-1 <= A - B <= 1 dB"
    assert claim["verdict"] in {"holds", "does not hold", "inconclusive"}
    diff = claim["psnr_diff"]
    results = report["results"]
    expected = statistics.fmean(
        results["sigma25/ot_unpaired"][s]["psnr"] - results["sigma25/l1"][s]["psnr"]
        for s in ("0", "1")
    )
    assert diff["seeds"] == ["0", "1"] and diff["mean"] == pytest.approx(expected)
    for run in results["sigma25/l1"].values():
        assert set(run["per_image"]) == {"china", "flower"} and run["iterations"] > 0
    # The first seed's curve: PSNR against the CPU time stored in each checkpoint.
    curve = report["curves"]["sigma25/l1"]
    assert curve["seed"] == 0 and len(curve["rows"]) >= 2
    cpu = [row["cpu_seconds"] for row in curve["rows"]]
    assert cpu == sorted(cpu) and cpu[0] > 0
    markdown = (out / "claims.md").read_text()
    assert "| C1: unpaired OT reaches supervised l1" in markdown and "--smoke" in markdown
    for name in ("claims.png", "curve.png"):
        assert (out / "figures" / name).stat().st_size > 0
    # --resume skips the finished runs: nothing trains again, the same numbers come back.
    logs = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.log")}
    again = subprocess.run(
        [*command, "--resume"], capture_output=True, text=True, timeout=600, env=env
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 runs, 0 not finished" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.log")} == logs
    resumed = json.loads((out / "claims.json").read_text())
    assert resumed["claims"][0]["psnr_diff"] == claim["psnr_diff"]
    # --report-only on a study in progress: C5's one-pass runs are missing; nothing trains.
    partial = subprocess.run(
        [*command[:-7], "--claims", "C1", "C5", "--seeds", "0", "1", "--report-only"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert partial.returncode == 0, partial.stderr[-3000:]
    assert "6 runs, 2 not finished: reporting the others" in partial.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.log")} == logs
    report = json.loads((out / "claims.json").read_text())
    assert report["missing"] == ["sigma25__l1_onepass__seed0", "sigma25__l1_onepass__seed1"]
    assert [c["verdict"] for c in report["claims"]][1] == "not run"  # C5: no one-pass run
    assert (
        "Not finished yet (not in the table): sigma25__l1_onepass__seed0"
        in (out / "claims.md").read_text()
    )


def test_data_choices_full_setting_is_the_bundled_recipes_data(
    compose_train: Callable[..., Any],
) -> None:
    """The data ablation's "full" row trains on exactly ``experiment=denoise_blind``'s data, the
    other rows leave out one choice each, and no row trains on a held-out photo."""
    choices = _benchmark_module("data_choices")
    from rcot_lightning.data.heldout import HELDOUT_PHOTOS

    data = compose_train("experiment=denoise_blind", tiny=False).data
    full = compose_train("experiment=denoise_blind", *choices.SETTINGS["full"][1], tiny=False).data
    for key in ("train_images", "scales", "dead_leaves"):
        assert full[key] == data[key], key
    settings = {
        name: compose_train("experiment=denoise_blind", *overrides, tiny=False).data
        for name, (_, overrides) in choices.SETTINGS.items()
    }
    assert settings["no_dead_leaves"].dead_leaves == 0 < data.dead_leaves
    assert set(settings["no_grey"].train_images) < set(data.train_images)
    assert list(settings["no_scales"].scales) == [1.0] != list(data.scales)
    for name, cfg in settings.items():
        assert not set(cfg.train_images) & set(HELDOUT_PHOTOS), name


def test_a_resumed_claims_run_drops_the_checkpoints_of_its_abandoned_attempt(
    tmp_path: Path,
) -> None:
    claims = _benchmark_module("claims")
    torch.save({"global_step": 40}, tmp_path / "last.ckpt")
    for step in (20, 40, 60):
        (tmp_path / f"step{step:07d}.ckpt").write_text("curve checkpoint")
    dropped = claims.drop_abandoned_checkpoints(tmp_path / "last.ckpt")
    assert [p.name for p in dropped] == ["step0000060.ckpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.ckpt",
        "step0000020.ckpt",
        "step0000040.ckpt",
    ]


def test_claims_refuses_to_report_finished_runs_of_another_budget(tmp_path: Path) -> None:
    claims = _benchmark_module("claims")
    runs = tmp_path / "runs"
    runs.mkdir()
    for key in ("allinone/l1", "allinone/l1_onepass"):
        result = {"key": key, "budget_cpu_seconds": 1800.3}
        (runs / f"{claims.run_name(key, 0)}.json").write_text(json.dumps(result))
    command = ["--out", str(tmp_path), "--report-only", "--seeds", "0", "--claims", "C6"]
    # Without --budget (10 minutes) the 30-minute runs are refused before any scoring.
    with pytest.raises(SystemExit, match=r"allinone__l1__seed0\.json \(30\.0 CPU minutes\)"):
        claims.main(command)
    claims.check_finished_budgets(
        runs, ["allinone/l1"], claims.parse_args([*command, "--budget", "30"])
    )


@pytest.mark.integration
def test_contention_measures_each_thread_setting_idle_and_busy() -> None:
    report = run_benchmark(
        "contention.py",
        *("--settings", "1", "--short", "1", "--long", "2", "--neighbours", "1"),
        *("--overrides", "model=rcot_tiny", "data.batch_size=2", "data.crops.patch_size=32"),
    )
    assert report["neighbours"] == 1 and report["settings"]["1"]["OMP_NUM_THREADS"] == 1
    figures = report["results"]["1"]
    for load in ("idle", "busy"):
        # One iteration's difference is within start-up noise here: only the runs are checked.
        assert math.isfinite(figures[load]["cpu_s_per_iteration"])
        for cpu_s, wall_s in figures[load]["runs"].values():
            assert cpu_s > 0 and wall_s > 0
    assert math.isfinite(figures["cpu_ratio_to_idle"])
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_profile_tile_splits_a_tile_by_kind_of_layer_and_rates_it_against_the_peak() -> None:
    from rcot_lightning.hardware import native_bf16

    report = run_benchmark(
        "profile_tile.py", *("--size", "32", "--bf16-size", "16", "--repeats", "1")
    )
    assert report["model"] == "denoise-blind" and report["threads"] == 1
    assert report["attribution"] and isinstance(report["load_average_1min"], float)
    assert set(report["results"]) == {"fp32", "bf16"}
    assert report["results"]["fp32"]["size"] == 32
    assert report["results"]["bf16"]["size"] == (32 if native_bf16() else 16)
    for result in report["results"].values():
        size = result["size"]
        # The map's FLOPs per pixel do not depend on the tile (245.0 k at any multiple of 8;
        # 227.6 k before the attention read its norms off q q^T and k k^T).
        assert result["flop_per_pass"] == pytest.approx(245.0e3 * size**2, rel=0.01)
        assert result["profiler_flop_per_pass"] == result["flop_per_pass"]
        assert result["wall_s_per_pass"] > 0 and result["achieved_gflop_per_s"] > 0
        assert result["matmul_peak_gflop_per_s"] > 0 and result["fraction_of_peak"] > 0
        kinds = {k["kind"]: k for k in result["kinds"]}
        assert {"layer norm", "depth-wise conv 3x3", "point-wise conv 1x1"} <= set(kinds)
        assert sum(k["share_pct"] for k in kinds.values()) == pytest.approx(100, abs=0.5)
        assert kinds["depth-wise conv 3x3"]["gflop_per_s"] > 0
        top = result["top_ops"]
        assert top and all(
            op["self_cpu_ms_per_pass"] >= 0 and op["calls_per_pass"] > 0 for op in top
        )
        assert sum(op["share_pct"] for op in top) <= 100.5
    assert_names_its_cpu(report)


def test_allinone_table_joins_the_committed_anchor_and_specialist_runs(tmp_path: Path) -> None:
    table = _benchmark_module("allinone_table")
    # An all-in-one run of tasks.py --skip-anchors: rain light 1 dB under derain-blind's 35.87,
    # JPEG q20 (saved file) 0.1 dB over the input, the kornia q20 left out (not trained on).
    allinone = {
        "tasks": {
            "derain": {
                "severities": {
                    "light": {
                        "methods": {
                            "input": {"mean": {"psnr": 25.3, "ssim": 0.8}},
                            "model": {"mean": {"psnr": 34.87, "ssim": 0.95}},
                        }
                    }
                }
            },
            "jpeg": {
                "severities": {
                    s: {
                        "methods": {
                            "input": {"mean": {"psnr": 28.16, "ssim": 0.8}},
                            "model": {"mean": {"psnr": 28.26, "ssim": 0.81}},
                        }
                    }
                    for s in ("q20", "q20_libjpeg")
                }
            },
        }
    }
    sigma15 = {"noisy": 25.2, "bm3d": 33.5, "denoise-blind": 33.6, "ai": 33.35}
    noise = {
        "results": {"sigma15": {m: {"mean": {"psnr": p, "ssim": 0.9}} for m, p in sigma15.items()}}
    }
    (tmp_path / "a.json").write_text(json.dumps(allinone))
    (tmp_path / "n.json").write_text(json.dumps(noise))
    report = table.main(
        [
            *("--allinone", str(tmp_path / "a.json"), "--noise", str(tmp_path / "n.json")),
            *("--noise-model", "ai"),
        ]
    )
    rows = {(r["task"], r["severity"]): r for r in report["rows"]}
    assert set(rows) == {("denoise", "sigma15"), ("derain", "light"), ("jpeg", "q20_libjpeg")}
    rain = rows["derain", "light"]
    assert rain["anchor_name"] == "median" and rain["anchor"]["psnr"] == 28.07
    assert rain["minus_specialist"] == -1.0 and not rain["specialist_target_met"]
    assert rain["anchor_target_met"]
    jpeg = rows["jpeg", "q20_libjpeg"]  # BM3D 28.91 on the saved files: missed by 0.65
    assert jpeg["minus_anchor"] == -0.65 and not jpeg["anchor_target_met"]
    noise_row = rows["denoise", "sigma15"]  # 0.15 under BM3D at sigma 15: inside its 0.2
    assert noise_row["minus_anchor"] == -0.15 and noise_row["anchor_target_met"]
    assert report["met"] == {"anchor": 2, "specialist": 1, "rows": 3}


@pytest.mark.integration
def test_attention_speed_times_both_formulations_and_finds_them_equal() -> None:
    report = run_benchmark("attention_speed.py", "--size", "64", "--rounds", "2")
    assert set(report["cpu_s_per_pass"]) == {"shipped", "normalising"}
    assert all(len(v) == 2 for v in report["cpu_s_each_round"].values())
    shipped, normalising = (
        report["cpu_s_per_pass"]["shipped"],
        report["cpu_s_per_pass"]["normalising"],
    )
    assert report["speedup"] == pytest.approx(normalising / shipped, rel=0.01, abs=0.01)
    assert report["max_abs_difference"] < 1e-4
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_attention_speed_times_training_iterations_of_both_formulations() -> None:
    """--train: the same map trained from the same weights with each attention; both learn
    the same (equal formulations), and the report's rates are its per-iteration seconds."""
    report = run_benchmark(
        "attention_speed.py",
        "--train",
        "--rounds",
        "2",
        "--steps",
        "2",
        "--batch",
        "2",
        "--patch",
        "32",
    )
    assert report["mode"] == "train"
    per_iteration = report["cpu_s_per_iteration"]
    assert set(per_iteration) == {"shipped", "normalising"}
    assert all(len(v) == 2 for v in report["cpu_s_each_round"].values())
    for name, seconds in per_iteration.items():
        assert report["iterations_per_cpu_second"][name] == pytest.approx(1 / seconds, rel=0.01)
    losses = report["last_loss"]
    assert losses["shipped"] == pytest.approx(losses["normalising"], rel=1e-3)
    assert_names_its_cpu(report)


@pytest.mark.integration
def test_onnx_speed_times_both_backends_on_the_same_tiles() -> None:
    pytest.importorskip("onnxruntime", reason='the ONNX anchor: pip install ".[export]"')
    report = run_benchmark("onnx_speed.py", "--megapixels", "0.02", "--rounds", "2", "--bf16")
    backends = report["backends"]
    assert set(backends) == {"torch", "onnxruntime", "torch_bf16"}
    bf16_ratio = backends["onnxruntime"]["wall_s"] / backends["torch_bf16"]["wall_s"]
    assert report["onnxruntime_over_torch_bf16"] == pytest.approx(bf16_ratio, rel=0.01, abs=0.01)
    assert 0 < report["bf16_max_abs_difference"] < 0.1  # bf16 rounds, but restores the same
    assert all(len(b["wall_s_each_round"]) == 2 for b in backends.values())
    ratio = backends["onnxruntime"]["wall_s"] / backends["torch"]["wall_s"]
    assert report["onnxruntime_over_torch"] == pytest.approx(ratio, rel=0.01, abs=0.01)
    assert report["max_abs_difference"] < 1e-4  # the same map, the same tiles
    assert report["export_s"] > 0
    assert_names_its_cpu(report)
