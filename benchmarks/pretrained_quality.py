"""Held-out quality of a bundled pretrained denoiser next to BM3D, at several noise levels.

For each held-out photo (:func:`rcot_lightning.data.heldout.load_heldout`: photos no job
trains or validates on) and each sigma, one noisy copy is drawn with a seed fixed by (seed,
sigma, photo), the same way the model was trained (``GaussianNoise``: clipped to [0, 1] and
rounded to 8 bits). Then:

* each bundled map of ``--model`` (one column per map, and per ``--ensemble`` size above 1,
  named ``<model>+ens<n>``), blind (it is not told sigma), in overlapping ``--tile`` tiles as
  ``rcot-restore`` runs it, clamped to [0, 1]. The noisy input is exactly what ``rcot-restore``
  reads from an 8-bit PNG of it (clipped, rounded to 1/255);
* ``bm3d``: ``bm3d.bm3d_rgb`` of the ``bm3d`` package, *told* the true sigma (its usual,
  non-blind use), clipped to [0, 1];
* ``noisy``: the input itself.

PSNR and SSIM (RGB, no border crop: :mod:`rcot_lightning.metrics`) per photo and their mean per
sigma. Prints one JSON object. Needs the quality extra (held-out photos, bm3d):
``pip install "rcot-lightning[quality]"``.

Run::

    python benchmarks/pretrained_quality.py                      # 3 photos x sigma 15/25/50
    python benchmarks/pretrained_quality.py --methods pretrained --crop 64 --sigmas 25  # smoke
    python benchmarks/pretrained_quality.py --methods pretrained --precision bf16  # bf16 autocast
    python benchmarks/pretrained_quality.py --model denoise-blind denoise-blind-fast --ensemble 1 8
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import bm3d_restore
from rcot_lightning.data.degradations import GaussianNoise
from rcot_lightning.data.heldout import HELDOUT_PHOTOS, load_heldout
from rcot_lightning.data.heldout_tasks import centre_crop, noise_seed  # shared with rcot-eval
from rcot_lightning.hardware import cpu_summary
from rcot_lightning.inference import restore_image
from rcot_lightning.metrics import psnr, ssim
from rcot_lightning.pretrained import DEFAULT_MODEL, available, load

METHODS = ("pretrained", "bm3d")


def noisy_copy(clean: Tensor, sigma: float, seed: int) -> Tensor:
    """``clean`` ``(1, 3, H, W)`` with seeded Gaussian noise, clipped and 8-bit as in training."""
    return GaussianNoise(sigma=sigma)(clean, torch.Generator().manual_seed(seed))


def _scores(restored: Tensor, clean: Tensor) -> dict[str, float]:
    return {
        "psnr": round(float(psnr(restored, clean)[0]), 3),
        "ssim": round(float(ssim(restored, clean)[0]), 4),
    }


def _mean(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        key: round(sum(r[key] for r in rows.values()) / len(rows), 4 if key == "ssim" else 3)
        for key in ("psnr", "ssim")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", nargs="+", default=[DEFAULT_MODEL], help="bundled entries, side by side"
    )
    parser.add_argument(
        "--ensemble", type=int, nargs="+", default=[1], help="self-ensemble sizes (1: off)"
    )
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15.0, 25.0, 50.0])
    parser.add_argument("--images", nargs="+", default=list(HELDOUT_PHOTOS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--tile", type=int, default=512, help="as rcot-restore (0: whole)")
    parser.add_argument("--crop", type=int, default=None, help="centre crop (smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--precision", choices=["32", "bf16"], default="32", help="as rcot-restore precision="
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clean = {n: centre_crop(load_heldout(n)[None], args.crop) for n in args.images}
    # One column per (bundled model, ensemble size): "denoise-blind", "denoise-blind+ens8", ...
    nets = {
        (name if size == 1 else f"{name}+ens{size}"): (load(name), size)
        for name in (args.model if "pretrained" in args.methods else [])
        for size in args.ensemble
    }
    results: dict[str, Any] = {}
    seconds = {m: 0.0 for m in ("noisy", *nets, *(m for m in args.methods if m == "bm3d"))}
    for sigma in args.sigmas:
        per_method: dict[str, dict[str, dict[str, float]]] = {m: {} for m in seconds}
        for index, (name, image) in enumerate(clean.items()):
            noisy = noisy_copy(image, sigma, seed=noise_seed(args.seed, sigma, index))
            outputs = {"noisy": noisy}
            for column, (net, size) in nets.items():
                start = time.perf_counter()
                bf16 = args.precision == "bf16"
                with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    tile = args.tile or None
                    restored = restore_image(net, noisy, tile=tile, ensemble=size)
                    outputs[column] = restored.float().clamp(0, 1)
                seconds[column] += time.perf_counter() - start
            if "bm3d" in args.methods:
                start = time.perf_counter()
                outputs["bm3d"] = bm3d_restore(noisy, sigma)
                seconds["bm3d"] += time.perf_counter() - start
            for method, restored in outputs.items():
                per_method[method][name] = _scores(restored, image)
        results[f"sigma{sigma:g}"] = {
            method: {"mean": _mean(rows), "per_image": rows} for method, rows in per_method.items()
        }
    entries = available()
    report = {
        "benchmark": "pretrained_quality",
        "models": {
            name: {"iterations": entries[name].info.get("iterations")} for name in args.model
        },
        "ensemble": args.ensemble,
        "images": {n: list(image.shape[-2:]) for n, image in clean.items()},
        "noise": "GaussianNoise(sigma): clipped to [0, 1], 8-bit; seed per (seed, sigma, photo)",
        "bm3d": "bm3d.bm3d_rgb(noisy, sigma_psd=sigma/255): told the true sigma",
        "models_run": f"blind; restore_image(tile={args.tile or None}, overlap=32), clamped",
        "metrics": "RGB PSNR (dB) / SSIM, no border crop, mean over photos",
        "seed": args.seed,
        "threads": args.threads,
        "precision": args.precision,
        "seconds_total": {m: round(s, 2) for m, s in seconds.items() if m != "noisy"},
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": cpu_summary(),
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
