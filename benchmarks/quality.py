"""Quality: the paper's ablation at CPU scale, on held-out photos, with noisy and BM3D baselines.

Every variant is trained by the project's own training command (``python -m rcot_lightning.train``
in a subprocess, with Hydra overrides), so what is measured is what users run. All variants share
the map size (``--model``, default ``rcot_small``), the training data (the four scikit-image
training photos, ``data=variety``, random 64x64 crops, batch 8), the seed, and the budget: at
most ``--iterations`` training iterations and at most ``--budget`` minutes of wall time each.
The last weights are scored (no checkpoint is chosen on validation data).

Variants (colour Gaussian denoising at each ``--sigmas``)::

    l2               supervised l2 only (no potential, no OT terms)
    l1               supervised l1 only
    frot_unpaired    FROT only: no supervised term, degraded and clean crops from disjoint photos
    frot_l2          FROT + supervised l2, paired
    frot_l2_ref      FROT + l2 with the authors' Fourier strength (reference_fourier)
    frot_l2_onepass  FROT + l2 with the one-pass map (RestormerUNet: no residual conditioning)
    noisy, bm3d      baselines (no training; bm3d needs the ``bm3d`` package)

"FROT" is the project's default objective (transport cost ``rms`` weight 1, Fourier residual cost
weight 1 with the ortho FFT, WGAN-GP potential, lambda_gp 10) with the ``model`` preset's
optimisers, the paper's: RMSprop 5e-5 for the map and 1e-4 for the potential (a run is one epoch,
so the x0.1 steps of their schedules never come).

Scoring: the held-out photos (:mod:`rcot_lightning.data.heldout`: china, flower, grace_hopper;
never trained or validated on) get Gaussian noise seeded by (photo, sigma), identical for every
variant and seed, and are restored whole. PSNR and SSIM are per image (RGB, no border crop, the
denoising task's conventions, :mod:`rcot_lightning.metrics`), then averaged. FID and KID compare
the 64x64 patches (stride 32) of the restored photos with those of the clean photos in the
feature space of a *fixed random network*
(:class:`rcot_lightning.metrics.RandomFeatureDistances`, the same as ``rcot-eval fid=true``:
seeded He-initialised convs, no training, no download). Random-feature distances rank images by
low-level statistics (noise, blur, texture) and are only comparable within this protocol, never
with the paper's Inception FID.

Output (``--out DIR``): ``quality.json`` (every score, per image and per seed), ``quality.md``
(the table: mean +- standard deviation over seeds), and ``figures/<variant>_sigma<s>.png``
(a crop of each held-out photo: noisy | restored | clean). The runs' folders go under
``DIR/runs``.

Run::

    python benchmarks/quality.py --out /tmp/quality --budget 2 --iterations 300 \\
        --sigmas 25 50 --seeds 0 1
    python benchmarks/quality.py --out /tmp/q --smoke      # seconds: tiny model, 2 iterations
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import bm3d_restore, command_line, markdown_table
from rcot_lightning.checkpoints.load import load_module
from rcot_lightning.data.datasets import derive_seed
from rcot_lightning.data.degradations import Degradation, GaussianNoise
from rcot_lightning.data.heldout import HELDOUT_PHOTOS, load_heldout
from rcot_lightning.hardware import cpu_summary
from rcot_lightning.metrics import RandomFeatureDistances, psnr, ssim
from rcot_lightning.visualize import comparison_grid, save_png

# The objective's Hydra keys. `model.objective.potential_weight=0` drops the potential and its
# updates, so the supervised variants are plain supervised training of the same map.
OBJ = "model.objective"

#: The one-pass map of the same size: the two-pass map's U-Net without residual conditioning.
ONE_PASS_MAP = [
    "model.transport_map._target_=rcot_lightning.nets.RestormerUNet",
    "~model.transport_map.conditioning",
    "~model.transport_map.condition_scale",
]

#: Variant -> Hydra overrides on top of the shared settings.
VARIANTS: dict[str, list[str]] = {
    "l2": [
        f"{OBJ}.supervised_loss=l2",
        f"{OBJ}.potential_weight=0",
        f"{OBJ}.transport_weight=0",
        f"{OBJ}.fourier_weight=0",
    ],
    "l1": [
        f"{OBJ}.supervised_loss=l1",
        f"{OBJ}.potential_weight=0",
        f"{OBJ}.transport_weight=0",
        f"{OBJ}.fourier_weight=0",
    ],
    "frot_unpaired": [f"{OBJ}.supervised_weight=0", "data.unpaired=true"],
    "frot_l2": [f"{OBJ}.supervised_loss=l2"],
    "frot_l2_ref": [f"{OBJ}.supervised_loss=l2", f"{OBJ}.reference_fourier=true"],
    "frot_l2_onepass": [f"{OBJ}.supervised_loss=l2", *ONE_PASS_MAP],
}
BASELINES = ("noisy", "bm3d")
#: The tiny model's potential for seconds-long smoke runs (recipes may set a wider one).
TINY_POTENTIAL = "model.potential.channels=[8,8,16,16]"

#: What each variant means, for the table.
DESCRIPTIONS = {
    "noisy": "noisy input",
    "bm3d": "BM3D (bm3d package, sigma known)",
    "l2": "supervised l2 only",
    "l1": "supervised l1 only",
    "frot_unpaired": "FROT only, unpaired (disjoint photos)",
    "frot_l2": "FROT + l2, paired",
    "frot_l2_ref": "FROT + l2, authors' Fourier strength",
    "frot_l2_onepass": "FROT + l2, one-pass map (TRC off)",
}


def degraded_photo(name: str, degradation: Degradation, key: object) -> tuple[Tensor, Tensor]:
    """A held-out photo and its degraded version, the draw seeded by (name, key)."""
    clean = load_heldout(name)[None]
    generator = torch.Generator().manual_seed(derive_seed("quality", name, key))
    degraded, _ = degradation.apply(clean, generator)
    return clean, degraded


def noisy_photo(name: str, sigma: float) -> tuple[Tensor, Tensor]:
    """A held-out photo and its noisy version, the noise seeded by (name, sigma)."""
    return degraded_photo(name, GaussianNoise(sigma=sigma), float(sigma))


def score_last_overrides(folder: Path) -> list[str]:
    """Hydra overrides of a run whose last weights are scored: no validation, no pictures,
    only ``<folder>/checkpoints/last.ckpt`` (nothing is chosen on validation data), CSV logs."""
    return [
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_model_summary=false",
        "~callbacks.image_logger",
        "~callbacks.rich_progress_bar",
        "~callbacks.lr_monitor",
        f"callbacks.model_checkpoint.dirpath={folder}/checkpoints",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.save_top_k=0",
        "callbacks.model_checkpoint.save_on_train_epoch_end=true",
        "logger=csv",
        "test=false",
        f"hydra.run.dir={folder}",
    ]


def train_subprocess(overrides: Sequence[str], log_path: Path, threads: int) -> dict[str, float]:
    """Run ``python -m rcot_lightning.train *overrides`` with ``threads`` OpenMP threads, its
    output into ``log_path``; return its wall and CPU seconds. Exits with the log's tail if the
    training fails."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rcot_lightning.train", *overrides],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        # wait4 gives this child's own CPU time: on a shared machine wall time says little.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"training {log_path.stem} failed:\n{log_path.read_text()[-3000:]}")
    return {
        "train_seconds": time.perf_counter() - start,
        "train_cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def run_training(
    variant: str, sigma: float, seed: int, args: argparse.Namespace, runs: Path
) -> tuple[Path, dict[str, float]]:
    """Train one variant with the project's CLI; return its last checkpoint, wall and CPU s."""
    name = f"{variant}_sigma{sigma:g}_seed{seed}"
    folder = runs / name
    iterations = args.iterations
    minutes = args.budget
    overrides = [
        f"model={args.model}",
        "data=variety",
        f"data.batch_size={args.batch}",
        f"data.crops.patch_size={args.patch}",
        # One epoch of exactly `iterations` batches: the same iteration budget for every variant.
        f"data.samples_per_epoch={iterations * args.batch}",
        "data.loader.num_workers=0",
        f"task.degradation.sigma={sigma:g}",
        f"seed={seed}",
        f"data.seed={seed}",
        "trainer.max_epochs=1",
        f"+trainer.max_time={{minutes: {minutes}}}",
        *score_last_overrides(folder),
        *VARIANTS[variant],
        *args.override,
    ]
    if args.model == "rcot_tiny":
        overrides.append(TINY_POTENTIAL)
    log_path = runs / f"{name}.log"
    timing_path = runs / f"{name}.timing.json"
    last = folder / "checkpoints" / "last.ckpt"
    if args.resume and timing_path.is_file() and last.is_file():
        return last, json.loads(timing_path.read_text())
    timing = train_subprocess(overrides, log_path, args.threads)
    timing_path.write_text(json.dumps(timing))
    return last, timing


def score(restored: dict[str, Tensor], clean: dict[str, Tensor]) -> dict[str, Any]:
    """PSNR/SSIM per image and their means; FID/KID of the patches against the clean ones."""
    per_image = {
        name: {
            "psnr": float(psnr(restored[name], clean[name])[0]),
            "ssim": float(ssim(restored[name], clean[name])[0]),
        }
        for name in restored
    }
    distances = RandomFeatureDistances()
    for name in restored:
        distances.update(restored[name], clean[name])
    return {
        "per_image": per_image,
        "psnr": statistics.fmean(v["psnr"] for v in per_image.values()),
        "ssim": statistics.fmean(v["ssim"] for v in per_image.values()),
        **distances.compute(),
    }


def figure(
    noisy: dict[str, Tensor], restored: dict[str, Tensor], clean: dict[str, Tensor], path: Path
) -> None:
    """noisy | restored | clean, one row per photo, a 128x128 centre crop each."""

    def crop(t: Tensor) -> Tensor:
        h, w = t.shape[-2:]
        top, left = (h - 128) // 2, (w - 128) // 2
        return t[:, :, top : top + 128, left : left + 128]

    names = list(restored)
    columns = [torch.cat([crop(d[n]) for n in names]) for d in (noisy, restored, clean)]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(comparison_grid(columns), path)


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of each (sigma, variant)."""
    table: dict[str, Any] = {}
    for key, by_seed in results.items():
        row: dict[str, Any] = {}
        for metric in ("psnr", "ssim", "fid", "kid", "train_cpu_seconds", "iterations"):
            values = [r[metric] for r in by_seed.values() if r.get(metric) is not None]
            if values:
                row[metric] = statistics.fmean(values)
                row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        table[key] = row
    return table


def markdown(table: dict[str, Any], sigmas: Sequence[float], names: Sequence[str]) -> str:
    """The table: each variant's mean ± standard deviation over seeds, per sigma."""

    def cell(row: dict[str, Any], metric: str, digits: int, scale: float = 1.0) -> str:
        if metric not in row:
            return "-"
        mean, std = row[metric] * scale, row[f"{metric}_std"] * scale
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    rows = []
    for sigma in sigmas:
        for name in names:
            row = table.get(f"sigma{sigma:g}/{name}")
            if row:
                rows.append(
                    [
                        f"{sigma:g}",
                        DESCRIPTIONS[name],
                        cell(row, "psnr", 2),
                        cell(row, "ssim", 3),
                        cell(row, "fid", 2),
                        cell(row, "kid", 2, 1e3),
                        cell(row, "train_cpu_seconds", 0),
                        cell(row, "iterations", 0),
                    ]
                )
    head = ["sigma", "variant", "PSNR (dB)", "SSIM", "FID (random feat.)", "KID x1e3"]
    return "\n".join(markdown_table([*head, "train CPU s", "iters"], rows)) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="results folder")
    parser.add_argument("--budget", type=float, default=2.0, help="minutes per variant (cap)")
    parser.add_argument("--iterations", type=int, default=100_000, help="iterations (cap)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[25.0, 50.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--variants", nargs="+", default=[*BASELINES, *VARIANTS], choices=[*BASELINES, *VARIANTS]
    )
    parser.add_argument("--photos", nargs="+", default=list(HELDOUT_PHOTOS))
    parser.add_argument("--model", default="rcot_small", help="model config (rcot_small, ...)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads of each training")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at the same time")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the trainings already finished in --out (same options assumed)",
    )
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="seconds: tiny model, 2 iterations, the first sigma, a 128x128 crop of 2 photos",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.model, args.iterations, args.batch, args.patch = "rcot_tiny", 2, 2, 32
        args.photos, args.sigmas = args.photos[:2], args.sigmas[:1]
        args.crop = 128
    else:
        args.crop = None
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out: Path = args.out
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    # Trainings run in the background, --jobs at a time; scoring waits for each in turn.
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    trainings = {
        (variant, sigma, seed): pool.submit(run_training, variant, sigma, seed, args, runs)
        for sigma in args.sigmas
        for variant in args.variants
        if variant not in BASELINES
        for seed in args.seeds
    }
    for sigma in args.sigmas:
        clean, noisy = {}, {}
        for name in args.photos:
            clean[name], noisy[name] = noisy_photo(name, sigma)
            if args.crop:
                clean[name] = clean[name][..., : args.crop, : args.crop]
                noisy[name] = noisy[name][..., : args.crop, : args.crop]
        for variant in args.variants:
            by_seed: dict[str, Any] = {}
            seeds = [None] if variant in BASELINES else args.seeds
            for seed in seeds:
                extra: dict[str, Any] = {}
                if variant == "noisy":
                    restored = {n: noisy[n].clamp(0, 1) for n in noisy}
                elif variant == "bm3d":
                    start = time.perf_counter()
                    restored = {n: bm3d_restore(noisy[n], sigma) for n in noisy}
                    extra["restore_seconds"] = time.perf_counter() - start
                else:
                    assert seed is not None
                    ckpt, timing = trainings[(variant, sigma, seed)].result()
                    module = load_module(ckpt)
                    restored = {n: module.restore(noisy[n]) for n in noisy}
                    extra = {**timing, "iterations": module.iteration}
                scores = score(restored, clean) | extra
                by_seed["-" if seed is None else str(seed)] = scores
                if seed in (None, args.seeds[0]):
                    figure(
                        noisy, restored, clean, out / "figures" / f"{variant}_sigma{sigma:g}.png"
                    )
                print(
                    f"sigma {sigma:g} {variant} seed {seed}: PSNR {scores['psnr']:.2f} "
                    f"SSIM {scores['ssim']:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
            results[f"sigma{sigma:g}/{variant}"] = by_seed
    pool.shutdown()
    table = summarise(results)
    report = {
        "command": command_line(__file__, argv),
        "photos": args.photos,
        "model": args.model,
        "batch": args.batch,
        "patch": args.patch,
        "budget_minutes": args.budget,
        "iterations_cap": args.iterations,
        "threads": args.threads,
        "cpu": cpu_summary(),
        "features": "rcot_lightning.metrics.RandomFeatureDistances(): RandomFeatures(seed=0), "
        "fixed random convs, 256 pooled features, 64x64 patches at stride 32; not comparable "
        "with Inception FID",
        "table": table,
        "results": results,
    }
    (out / "quality.json").write_text(json.dumps(report, indent=1))
    (out / "quality.md").write_text(markdown(table, args.sigmas, args.variants))
    print(json.dumps({"table": table}, indent=1))
    return report


if __name__ == "__main__":
    main()
