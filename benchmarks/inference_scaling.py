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

Prints one JSON object. Timings vary about +-15% run to run on a shared CPU; compare ratios.

Run::

    python benchmarks/inference_scaling.py                  # small map, 256 / 512 / 1024 / 333x517
    python benchmarks/inference_scaling.py --preset tiny --sizes 64 72x53 --tile 32 --overlap 16
"""

from __future__ import annotations

import argparse
import json
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

from rcot_lightning.inference import restore_image, tile_starts
from rcot_lightning.nets import MAP_PRESETS, TwoPassMap


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
    net = TwoPassMap(**MAP_PRESETS[config["preset"]]).to(device).eval()
    h, w = config["size"]
    y = seeded_image(h, w, config["seed"]).to(device)
    tile, overlap = config["tile"], config["overlap"]

    def restore(images: Tensor) -> Tensor:
        out = restore_image(net, images, tile=tile, overlap=overlap)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    with torch.inference_mode():
        # A small warm-up: thread pools and kernels, without raising the memory peak.
        restore(seeded_image(64, 64, config["seed"]).to(device))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rss_before = rss_mib()
        times = []
        for _ in range(config["repeats"]):
            start = time.perf_counter()
            out = restore(y)
            times.append(time.perf_counter() - start)
    torch.save(out.cpu(), config["output"])
    peak = rss_mib()
    result: dict[str, Any] = {
        "s_per_image": statistics.median(times),
        "s_all": times,
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
        "--sizes", type=parse_size, nargs="+", default=[(256, 256), (512, 512), (1024, 1024)]
    )
    parser.add_argument(
        "--odd-size", type=parse_size, default=(333, 517), help="one size not a multiple of 8"
    )
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    sizes = [*args.sizes, args.odd_size]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for h, w in sizes:
            row: dict[str, Any] = {"size": [h, w]}
            outputs = {}
            for mode, tile in (("untiled", None), ("tiled", args.tile)):
                outputs[mode] = Path(tmp) / f"{h}x{w}_{mode}.pt"
                row[mode] = run_worker(
                    {
                        "preset": args.preset,
                        "size": [h, w],
                        "tile": tile,
                        "overlap": args.overlap,
                        "repeats": args.repeats,
                        "threads": args.threads,
                        "device": args.device,
                        "seed": args.seed,
                        "output": str(outputs[mode]),
                    }
                )
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
        "repeats": args.repeats,
        "threads": args.threads,
        "device": args.device,
        "input": "seeded uniform noise, (1, 3, H, W)",
        "results": results,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "note": "timings vary about +-15% run to run on a shared CPU; compare the ratios",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
