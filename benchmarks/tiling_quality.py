"""What tiled inference costs in quality, on real photos: PSNR whole vs tiled, and bf16 vs fp32.

The Restormer map is not local (its channel attention pools over its whole input), so restoring
an image in tiles (:func:`rcot_lightning.inference.restore_image`) gives a different result than
restoring it whole. This measures by how much, where it matters: on the held-out photos
(:mod:`rcot_lightning.data.heldout`, never trained on) degraded by seeded Gaussian noise
(sigma 25, clipped and quantised as the ``denoise`` task does), for every ``--tiles`` x
``--overlaps`` pair:

* ``psnr_cost_db``: PSNR(whole output, clean) - PSNR(tiled output, clean), mean over photos
  (positive: tiling loses quality);
* ``psnr_tiled_vs_whole_db``: PSNR of the tiled output against the whole-image output (how far
  tiling moves the result; 100 dB, the metric's cap, when equal);
* ``pixel_overhead``: pixels the network processes tiled / pixels of the padded image (the
  time cost of the overlaps).

It also restores each photo whole under bf16 autocast: ``bf16.psnr_diff_db`` (bf16 - fp32,
against clean) and the bf16 / fp32 speed ratio (interleaved, median of ``--repeats``).

A meaningful answer needs a **trained** map (an untrained one is close to the identity, so its
tiles hardly differ): pass ``--checkpoint`` (a checkpoint written by ``rcot_lightning.cli.train``);
without it the seeded, untrained map of ``--preset`` is used and the JSON says so.

Run::

    python benchmarks/tiling_quality.py --checkpoint path/to/denoise.ckpt
    python benchmarks/tiling_quality.py --preset tiny --photos china --tiles 128 --overlaps 32 \
        --repeats 1 --crop 192     # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from rcot_lightning.conf import MAP_PRESETS
from rcot_lightning.data.degradations import GaussianNoise
from rcot_lightning.data.heldout import HELDOUT_PHOTOS, load_heldout
from rcot_lightning.hardware import cpu_line, cpu_summary
from rcot_lightning.inference import restore_image, tile_starts
from rcot_lightning.metrics import psnr
from rcot_lightning.nets import TwoPassMap


def load_map(checkpoint: str | None, preset: str, seed: int) -> tuple[nn.Module, str]:
    """The map to measure and a description of it for the JSON."""
    if checkpoint is not None:
        from rcot_lightning.checkpoints.load import load_module

        module = load_module(checkpoint)
        return module.map_for_inference.eval(), f"trained: {checkpoint}"
    torch.manual_seed(seed)
    return TwoPassMap(**MAP_PRESETS[preset]).eval(), f"untrained seeded {preset} map"


def restore(net: nn.Module, y: Tensor, tile: int | None, overlap: int, bf16: bool) -> Tensor:
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.inference_mode(), context:
        return restore_image(net, y, tile=tile, overlap=overlap).float().clamp(0, 1)


def db(a: Tensor, b: Tensor) -> float:
    return float(psnr(a, b).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained checkpoint (rcot_lightning.cli.train)")
    parser.add_argument("--preset", choices=sorted(MAP_PRESETS), default="paper")
    parser.add_argument("--photos", nargs="+", choices=sorted(HELDOUT_PHOTOS), default=None)
    parser.add_argument("--crop", type=int, help="centre crop of each photo (default: whole)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs for the bf16 ratio")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    net, description = load_map(args.checkpoint, args.preset, args.seed)
    noise = GaussianNoise(sigma=25)
    photos: dict[str, tuple[Tensor, Tensor]] = {}
    for k, name in enumerate(args.photos or sorted(HELDOUT_PHOTOS)):
        clean = load_heldout(name).unsqueeze(0)
        if args.crop:
            h, w = clean.shape[-2:]
            top, left = max(0, (h - args.crop) // 2), max(0, (w - args.crop) // 2)
            clean = clean[..., top : top + args.crop, left : left + args.crop]
        degraded = noise(clean, torch.Generator().manual_seed(args.seed + k))
        photos[name] = (clean, degraded)

    whole = {name: restore(net, y, None, 0, False) for name, (_, y) in photos.items()}
    whole_db = {name: db(whole[name], x) for name, (x, _) in photos.items()}
    grid = []
    for tile in args.tiles:
        for overlap in args.overlaps:
            if overlap >= tile:
                continue
            costs, moves, processed, padded_px = [], [], 0, 0
            for name, (x, y) in photos.items():
                out = restore(net, y, tile, overlap, False)
                costs.append(whole_db[name] - db(out, x))
                moves.append(db(out, whole[name]))
                hp, wp = (-(-s // 8) * 8 for s in y.shape[-2:])
                th, tw = min(tile, hp), min(tile, wp)
                tiles = len(tile_starts(hp, th, overlap)) * len(tile_starts(wp, tw, overlap))
                processed += tiles * th * tw
                padded_px += hp * wp
            grid.append(
                {
                    "tile": tile,
                    "overlap": overlap,
                    "psnr_cost_db": statistics.mean(costs),
                    "psnr_cost_db_max": max(costs),
                    "psnr_tiled_vs_whole_db": statistics.mean(moves),
                    "pixel_overhead": processed / padded_px,
                }
            )

    # bf16 against fp32, whole images, timed interleaved.
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    bf16_out: dict[str, Tensor] = {}
    for _ in range(args.repeats):
        for mode in ("fp32", "bf16"):
            start = time.perf_counter()
            for name, (_, y) in photos.items():
                bf16_out[name] = restore(net, y, None, 0, mode == "bf16")
            times[mode].append(time.perf_counter() - start)
    bf16_diff = statistics.mean(db(bf16_out[n], x) - whole_db[n] for n, (x, _) in photos.items())
    speedup = statistics.median(f / b for f, b in zip(times["fp32"], times["bf16"], strict=True))

    within = [g for g in grid if g["psnr_cost_db"] <= 0.05]
    choice = min(within, key=lambda g: g["pixel_overhead"]) if within else None
    result = {
        "benchmark": "tiling_quality",
        "map": description,
        "photos": {n: list(x.shape[-2:]) for n, (x, _) in photos.items()},
        "degradation": "GaussianNoise(sigma=25), clipped and quantised, seeded per photo",
        "psnr_whole_db": whole_db,
        "grid": grid,
        "cheapest_within_0_05_db": choice,
        "bf16": {
            "psnr_diff_db": bf16_diff,
            "speedup_over_fp32": speedup,
            "s_all": times,
        },
        "threads": args.threads,
        "load_average": list(os.getloadavg()),
        "machine": platform.machine(),
        "cpu": cpu_summary(),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    best = (
        f"cheapest tiling within 0.05 dB: tile {choice['tile']} overlap {choice['overlap']} "
        f"({choice['psnr_cost_db']:+.3f} dB, {choice['pixel_overhead']:.2f}x pixels)"
        if choice
        else "no tiling within 0.05 dB"
    )
    print(
        f"tiling_quality ({description}): {best}; bf16 {speedup:.2f}x, {bf16_diff:+.3f} dB; "
        + cpu_line(result["cpu"]),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
