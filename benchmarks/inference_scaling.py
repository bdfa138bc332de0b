"""Full-image inference: seconds per image and peak memory, untiled against tiled, by image size.

For each image size and each mode (the whole padded image at once, or ``tile x tile`` tiles
overlapping by ``overlap`` pixels, blended by :func:`rcot_lightning.inference.restore_image`),
a fresh subprocess builds the map (seeded, so every subprocess has the same weights), restores a
seeded random image once at a small size to warm up, then ``--repeats`` times at the full size
under ``torch.inference_mode``:

* ``s_per_image``: the median over the repeats;
* ``peak_rss_mib``: the subprocess's peak resident memory (a fresh process per configuration,
  because a peak never goes down; Linux ``VmHWM``, see :func:`rss_mib` for why not
  ``ru_maxrss``), and ``inference_rss_mib`` = that peak minus the peak before inference (Python,
  torch, the weights and the input). On a GPU ``peak_cuda_mib`` is
  ``torch.cuda.max_memory_allocated`` as well.

``max_abs_diff`` compares tiled with untiled outputs. The Restormer map is not local — its
channel attention pools over the whole input and its U-Net's receptive field exceeds the overlap
— so tiling changes its output by a measurable amount. ``max_abs_diff_local_net`` is the same
comparison for a local control network (three 3x3 convs, receptive-field radius 3 < overlap / 4),
which tiling must reproduce to float rounding: it checks the tiling, not the model.

Large images with a large map (``--preset paper`` at 12-16 MP takes tens of minutes per image on
one CPU thread): ``--tiled-only`` skips the untiled run (and the comparisons that need it), and
``--max-tile-batches N`` runs only the first ``N`` tile batches through the map and the rest
through an identity stand-in. The whole tiling and blending still runs over the full image, so
the memory peak is the real one (full-size input, output and weight buffers, plus one batch of
tiles in the map); the time is **extrapolated**: ``s_per_image`` = measured wall time - time in
the ``N`` real map calls + (seconds per tile in those calls) x (number of tiles). ``s_per_mp``
divides by the image's megapixels. ``--bf16`` runs the map under bf16 autocast.

Prints one JSON object (and a one-line summary on stderr). Timings vary about +-15% run to run on
a shared CPU; compare ratios.

Run::

    python benchmarks/inference_scaling.py                  # small map, 256 / 512 / 1024 / 333x517
    python benchmarks/inference_scaling.py --preset tiny --sizes 64 72x53 --tile 32 --overlap 16
    python benchmarks/inference_scaling.py --preset paper --megapixels 1 4 16 --sizes 3000x4000 \
        --tiled-only --max-tile-batches 1 --repeats 1      # paper map, 1-16 MP, extrapolated
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rcot_lightning.conf import MAP_PRESETS
from rcot_lightning.hardware import cpu_line, cpu_summary
from rcot_lightning.inference import restore_image, tile_starts
from rcot_lightning.nets import TwoPassMap

#: Sizes of the untiled-vs-tiled comparison when neither --sizes nor --megapixels is given.
DEFAULT_SIZES = [(256, 256), (512, 512), (1024, 1024)]


def parse_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"333x517"`` -> (333, 517) (height x width)."""
    parts = text.lower().split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    if len(parts) == 2:
        return int(parts[0]), int(parts[1])
    raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}")


def seeded_image(h: int, w: int, seed: int) -> Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def square_side(megapixels: float) -> int:
    """The side of a square image of about ``megapixels`` MP, a multiple of 8 (1 -> 1024)."""
    return max(8, round(math.sqrt(megapixels) * 1024 / 8) * 8)


class BudgetedNet(nn.Module):
    """Runs ``net`` for the first ``budget`` calls and returns its input unchanged afterwards.

    It records the seconds and the tiles of each real call, from which the time of the whole
    image is extrapolated (see the module docstring).
    """

    def __init__(self, net: nn.Module, budget: int | None) -> None:
        super().__init__()
        self.net = net
        self.budget = budget
        self.calls = 0
        self.real_seconds = 0.0
        self.real_tiles = 0
        self.tiles = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.tiles += x.shape[0]
        if self.budget is not None and self.calls > self.budget:
            return x
        start = time.perf_counter()
        out = self.net(x)
        self.real_seconds += time.perf_counter() - start
        self.real_tiles += x.shape[0]
        return out

    def reset(self) -> None:
        self.calls = self.real_tiles = self.tiles = 0
        self.real_seconds = 0.0


def rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: the peak of this process's own address
    space. ``getrusage``'s ``ru_maxrss`` is no good in a subprocess there: the kernel carries the
    parent's peak across fork and exec into the child's ``ru_maxrss``, so every worker would
    report at least the driver's peak. Elsewhere ``ru_maxrss`` is the fallback (KiB on Linux,
    bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def worker(config: dict[str, Any]) -> dict[str, Any]:
    """One configuration in this (fresh) process; the output is saved for the comparison."""
    torch.set_num_threads(config["threads"])
    device = torch.device(config["device"])
    torch.manual_seed(config["seed"])
    net = BudgetedNet(TwoPassMap(**MAP_PRESETS[config["preset"]]).to(device).eval(), None)
    h, w = config["size"]
    y = seeded_image(h, w, config["seed"]).to(device)
    tile, overlap = config["tile"], config["overlap"]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config["bf16"])

    def restore(images: Tensor) -> Tensor:
        with autocast:
            out = restore_image(net, images, tile=tile, overlap=overlap).float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    with torch.inference_mode():
        # A small warm-up: thread pools and kernels, without raising the memory peak.
        restore(seeded_image(64, 64, config["seed"]).to(device))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rss_before = rss_mib()
        net.budget = config["max_tile_batches"]
        times = []
        for _ in range(config["repeats"]):
            net.reset()
            start = time.perf_counter()
            out = restore(y)
            wall = time.perf_counter() - start
            # Extrapolated when some tiles went through the identity stand-in (exact otherwise).
            per_tile = net.real_seconds / net.real_tiles
            times.append(wall - net.real_seconds + per_tile * net.tiles)
    if config["output"]:
        torch.save(out.cpu(), config["output"])
    peak = rss_mib()
    result: dict[str, Any] = {
        "s_per_image": statistics.median(times),
        "s_all": times,
        "s_per_mp": statistics.median(times) / (h * w / 1e6),
        "tiles_run": net.real_tiles,
        "tiles_total": net.tiles,
        "extrapolated": net.real_tiles < net.tiles,
        "peak_rss_mib": peak,
        # The kernel's RSS counters are batched per thread, so two readings of a peak that did
        # not rise can differ by a few pages either way: a tiny negative rise is a zero rise.
        "inference_rss_mib": max(0.0, peak - rss_before),
    }
    if device.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def run_worker(config: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(config)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


class LocalNet(nn.Module):
    """Three 3x3 convs: a receptive-field radius of 3 pixels, a control for the tiling."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(8, 3, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def local_net_difference(size: tuple[int, int], tile: int, overlap: int, seed: int) -> float:
    torch.manual_seed(seed)
    net = LocalNet().eval()
    y = seeded_image(*size, seed)
    with torch.inference_mode():
        whole = restore_image(net, y)
        tiled = restore_image(net, y, tile=tile, overlap=overlap)
    return float((whole - tiled).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(MAP_PRESETS), default="small")
    parser.add_argument(
        "--sizes", type=parse_size, nargs="+", help="default: 256 512 1024 (no --megapixels)"
    )
    parser.add_argument(
        "--odd-size", type=parse_size, help="one size not a multiple of 8 (default: 333x517)"
    )
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--megapixels", type=float, nargs="+", default=[], help="square sizes, e.g. 1 4 16"
    )
    parser.add_argument("--tiled-only", action="store_true", help="skip the untiled runs")
    parser.add_argument(
        "--max-tile-batches", type=int, help="real map calls per image (the rest: identity)"
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    if args.megapixels:
        # Sizes given explicitly: the defaults (and the odd size) only where asked for.
        squares = [(square_side(mp), square_side(mp)) for mp in args.megapixels]
        sizes = [*squares, *(args.sizes or []), *([args.odd_size] if args.odd_size else [])]
    else:
        sizes = [*(args.sizes or DEFAULT_SIZES), args.odd_size or (333, 517)]
    modes: tuple[tuple[str, int | None], ...] = (("tiled", args.tile),)
    if not args.tiled_only:
        modes = (("untiled", None), *modes)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for h, w in sizes:
            row: dict[str, Any] = {"size": [h, w], "megapixels": h * w / 1e6}
            outputs = {}
            for mode, tile in modes:
                outputs[mode] = Path(tmp) / f"{h}x{w}_{mode}.pt"
                row[mode] = run_worker(
                    {
                        "bf16": args.bf16,
                        "max_tile_batches": args.max_tile_batches,
                        "preset": args.preset,
                        "size": [h, w],
                        "tile": tile,
                        "overlap": args.overlap,
                        "repeats": args.repeats,
                        "threads": args.threads,
                        "device": args.device,
                        "seed": args.seed,
                        # A 16 MP output is 200 MB: saved only where it is compared.
                        "output": "" if args.tiled_only else str(outputs[mode]),
                    }
                )
            if args.tiled_only:
                results.append(row)
                continue
            whole, tiled = (torch.load(outputs[m]) for m in ("untiled", "tiled"))
            hp, wp = -(-h // 8) * 8, -(-w // 8) * 8  # the padded size that is tiled
            row["tiles"] = len(tile_starts(hp, args.tile, args.overlap)) * len(
                tile_starts(wp, args.tile, args.overlap)
            )
            row["tiled_over_untiled_time"] = (
                row["tiled"]["s_per_image"] / (row["untiled"]["s_per_image"])
            )
            row["max_abs_diff"] = float((whole - tiled).abs().max())
            row["mean_abs_diff"] = float((whole - tiled).abs().mean())
            row["max_abs_diff_local_net"] = local_net_difference(
                (h, w), args.tile, args.overlap, args.seed
            )
            results.append(row)

    result = {
        "benchmark": "inference_scaling",
        "method": (
            "one fresh subprocess per size and mode; s_per_image: median of repeats after a "
            "64x64 warm-up; peak_rss_mib: peak resident memory (Linux VmHWM) of that subprocess; "
            "inference_rss_mib: its rise during inference"
        ),
        "preset": args.preset,
        "tile": args.tile,
        "overlap": args.overlap,
        "bf16": args.bf16,
        "max_tile_batches": args.max_tile_batches,
        "repeats": args.repeats,
        "threads": args.threads,
        "device": args.device,
        "input": "seeded uniform noise, (1, 3, H, W)",
        "results": results,
        "load_average": list(os.getloadavg()),
        "machine": platform.machine(),
        "cpu": cpu_summary(),
        "torch": torch.__version__,
        "note": "timings vary about +-15% run to run on a shared CPU; compare the ratios",
    }
    print(json.dumps(result, indent=2))
    tiled_rows = [r for r in results if "tiled" in r]
    spmp = [r["tiled"]["s_per_mp"] for r in tiled_rows]
    print(
        "inference_scaling (tiled): "
        + ", ".join(
            f"{r['megapixels']:.1f} MP {r['tiled']['s_per_mp']:.1f} s/MP "
            f"{r['tiled']['peak_rss_mib'] / 1024:.2f} GiB"
            for r in tiled_rows
        )
        + f"; s/MP max/min {max(spmp) / min(spmp):.2f}; {cpu_line(result['cpu'])}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
