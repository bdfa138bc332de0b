"""Data choices: what each part of the bundled denoiser's training data buys, on held-out photos.

The bundled ``denoise-blind`` map (``experiment=denoise_blind``) trains on three kinds of data:
scikit-image's four colour training photos, the same photos at smaller scales, its six natural
grayscale photos read as RGB, and generated dead-leaves images. This script trains the same
blind supervised-l1 map on the full data and on the full data less one choice at a time, plus
the bare photos, at an equal iteration budget over several seeds, and scores every map on the
held-out photos (:mod:`rcot_lightning.data.heldout`) at several noise levels with the noisy
copies clipped and rounded to 8 bits. Each data setting is one row: held-out PSNR / SSIM mean
over seeds with a 95 % Student-t interval, and the paired difference (same seeds) against the
full data, so a choice's worth is "full minus the row without it".

Every training is the project's own command (``python -m rcot_lightning.train`` in a
subprocess, through ``benchmarks/quality.py``'s runner) with the bundled recipe,
``experiment=denoise_blind`` (supervised l1, potential and OT terms off, Adam 5e-4 with the
gradient norm clipped at 0.5, bf16, batch 8 of 64x64 crops, blind to sigma in [0, 50]), one
thread each, at map width ``--dim`` (8 by default: 0.6x the time of the bundled width 16). The
budget is short (``--iterations``), so the figures rank data choices early in training; they
are not the bundled model's final quality.

Output (``--out DIR``): ``data_choices.json`` (every score per seed and sigma, the table) and
``data_choices.md`` (the table). Trainings go under ``DIR/runs``; ``--resume`` reuses finished
ones.

Run::

    python benchmarks/data_choices.py --out /tmp/data --iterations 1500 --seeds 0 1 --jobs 2
    python benchmarks/data_choices.py --out /tmp/d --smoke   # seconds: tiny model, 2 iterations
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    command_line,
    format_interval,
    interval,
    markdown_table,
    paired_difference,
)
from benchmarks.quality import noisy_photo, run_training, score
from rcot_lightning.checkpoints.load import load_module
from rcot_lightning.data.heldout import HELDOUT_PHOTOS
from rcot_lightning.hardware import cpu_summary

COLOUR = ["astronaut", "rocket", "motorcycle_left", "motorcycle_right"]
GREY = ["camera", "coins", "moon", "brick", "grass", "gravel"]
SCALES = [1.0, 0.75, 0.5]
DEAD_LEAVES = 96


def _data(images: Sequence[str], scales: Sequence[float], dead_leaves: int) -> list[str]:
    return [
        f"data.train_images=[{','.join(images)}]",
        f"data.scales=[{','.join(f'{s:g}' for s in scales)}]",
        f"data.dead_leaves={dead_leaves}",
    ]


#: The data settings: the bundled recipe's data ("full"), the full data less one choice, and
#: the four colour photos alone.
SETTINGS: dict[str, tuple[str, list[str]]] = {
    "full": (
        "colour photos x3 scales + grey photos + 96 dead leaves (experiment=denoise_blind)",
        _data(COLOUR + GREY, SCALES, DEAD_LEAVES),
    ),
    "no_dead_leaves": ("full less the dead-leaves images", _data(COLOUR + GREY, SCALES, 0)),
    "no_grey": ("full less the grayscale photos", _data(COLOUR, SCALES, DEAD_LEAVES)),
    "no_scales": ("full less the smaller scales", _data(COLOUR + GREY, [1.0], DEAD_LEAVES)),
    "photos_only": ("the four colour photos at scale 1 alone", _data(COLOUR, [1.0], 0)),
}
FULL = "full"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="results folder")
    parser.add_argument("--iterations", type=int, default=1500, help="iterations per training")
    parser.add_argument("--budget", type=float, default=120.0, help="wall minutes (cap) per run")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15.0, 25.0, 50.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--photos", nargs="+", default=list(HELDOUT_PHOTOS))
    parser.add_argument("--model", default="rcot_small", help="model config (rcot_small, ...)")
    parser.add_argument(
        "--dim", type=int, default=8, help="map width (the bundled map: 16; 8 costs 0.6x)"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at the same time")
    parser.add_argument("--resume", action="store_true", help="reuse finished trainings")
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides (all)")
    parser.add_argument(
        "--smoke", action="store_true", help="seconds: tiny model, 2 iterations, 2 settings"
    )
    args = parser.parse_args(argv)
    args.threads = 1
    if args.smoke:
        args.model, args.iterations, args.batch, args.patch = "rcot_tiny", 2, 2, 32
        args.dim = 4
        args.photos, args.sigmas, args.seeds = args.photos[:1], args.sigmas[:2], [0, 1]
        args.settings = [FULL, "photos_only"]
        args.crop = 96
    else:
        args.crop = None
    return args


def train(setting: str, seed: int, args: argparse.Namespace) -> tuple[Path, dict[str, float]]:
    """One blind l1 training on ``setting``'s data; its last checkpoint and timing."""
    runs = args.out / "runs" / setting
    runs.mkdir(parents=True, exist_ok=True)
    options = argparse.Namespace(**vars(args))
    # Blind: the map never learns one sigma (the per-sigma override of quality.py comes first).
    options.override = [
        # The bundled recipe (its optimiser, clipping, schedule, bf16) at --dim ...
        "experiment=denoise_blind",
        f"model.transport_map.dim={args.dim}",
        "task.degradation.sigma=[0,50]",
        *SETTINGS[setting][1],
        *args.override,
    ]
    return run_training("l1", 25.0, seed, options, runs)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    photos = {}
    for sigma in args.sigmas:
        for name in args.photos:
            clean, noisy = noisy_photo(name, sigma)
            if args.crop:
                clean, noisy = (
                    clean[..., : args.crop, : args.crop],
                    noisy[..., : args.crop, : args.crop],
                )
            photos[(sigma, name)] = (clean, noisy)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        jobs = {
            (setting, seed): pool.submit(train, setting, seed, args)
            for setting in args.settings
            for seed in args.seeds
        }
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for (setting, seed), job in jobs.items():
            ckpt, timing = job.result()
            module = load_module(ckpt)
            for sigma in args.sigmas:
                restored = {n: module.restore(photos[(sigma, n)][1]) for n in args.photos}
                clean = {n: photos[(sigma, n)][0] for n in args.photos}
                scores = score(restored, clean) | timing | {"iterations": module.iteration}
                results.setdefault(f"sigma{sigma:g}/{setting}", {})[str(seed)] = scores
                print(
                    f"{setting} seed {seed} sigma {sigma:g}: PSNR {scores['psnr']:.2f} "
                    f"SSIM {scores['ssim']:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
    table: dict[str, Any] = {}
    for key, by_seed in results.items():
        sigma_key, setting = key.split("/")
        psnrs = {seed: row["psnr"] for seed, row in by_seed.items()}
        row = {
            "psnr": interval(list(psnrs.values())),
            "ssim": interval([r["ssim"] for r in by_seed.values()]),
        }
        full = results.get(f"{sigma_key}/{FULL}")
        if full is not None and setting != FULL:
            # Negative: the full data is better, i.e. the left-out choice helps.
            row["minus_full"] = paired_difference(psnrs, {s: r["psnr"] for s, r in full.items()})
        table[key] = row
    report = {
        "command": command_line(__file__, argv),
        "model": args.model,
        "iterations": args.iterations,
        "photos": args.photos,
        "seeds": args.seeds,
        "cpu": cpu_summary(),
        "settings": {
            name: {"means": SETTINGS[name][0], "overrides": SETTINGS[name][1]}
            for name in args.settings
        },
        "table": table,
        "results": results,
    }
    (args.out / "data_choices.json").write_text(json.dumps(report, indent=1))
    (args.out / "data_choices.md").write_text(markdown(table, args))
    print(json.dumps({"table": table}, indent=1))
    return report


def markdown(table: dict[str, Any], args: argparse.Namespace) -> str:
    """Held-out PSNR (± 95 % half-width over seeds) per setting and sigma, and row − full."""
    sigmas = [f"sigma{s:g}" for s in args.sigmas]
    head = ["data", *(f"σ{s[5:]} PSNR" for s in sigmas), *(f"σ{s[5:]} row − full" for s in sigmas)]
    rows = []
    for setting in args.settings:
        cells = [SETTINGS[setting][0]]
        cells += [format_interval(table[f"{s}/{setting}"]["psnr"], show_n=False) for s in sigmas]
        cells += [
            format_interval(table[f"{s}/{setting}"]["minus_full"], show_n=False)
            if setting != FULL
            else "0"
            for s in sigmas
        ]
        rows.append(cells)
    return "\n".join(markdown_table(head, rows)) + "\n"


if __name__ == "__main__":
    main()
