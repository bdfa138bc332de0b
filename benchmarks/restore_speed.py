"""How long a bundled model takes to restore a large photo on the CPU, tiled as rcot-restore does.

Restores one seeded random image of ``--megapixels`` (4:3, default 12 MP = 4000x3000) with
:func:`rcot_lightning.inference.restore_image` (``--tile`` 512, overlap 32, the rcot-restore
defaults) under ``torch.inference_mode``, once for each ``--model`` (several: side by side),
each ``--precision`` (float32 and bf16 autocast by default) and each ``--ensemble`` size, one
after the other in this process so the figures are side by side, after a warm-up on one tile of
each setting. ``--rounds N`` repeats the whole list N times, every other round in reverse order
(A B, B A, ...), so a neighbour's load falls on every setting alike; each setting reports the
median of its rounds. Reports per setting:

* ``wall_s``: elapsed seconds;
* ``cpu_s``: CPU seconds of this process (``time.process_time``). On a shared machine the wall
  time also counts the waits for a core; the CPU time is the work itself, so
  ``cpu_s / threads`` is what the restore takes on that many free cores of this CPU;
* both per megapixel and scaled to 12 MP (tiling makes the work linear in the area: the tile
  count grows with it, each tile costs the same);
* ``cpu_ratio_to_first``: its CPU seconds over the first setting's (the first model, fp32, no
  ensemble);
* ``rounds``: the CPU seconds of each round.

The top-level figures (``wall_s``, ``cpu_s``, ...) repeat the first setting's. The content of
the image does not change the work, so a random image stands in for a photo. Prints one JSON
object.

Run::

    python benchmarks/restore_speed.py --threads 2            # 12 MP, fp32 and bf16
    python benchmarks/restore_speed.py --threads 2 --precision bf16 --ensemble 1 8
    python benchmarks/restore_speed.py --threads 2 --precision 32 \
        --model denoise-blind allinone-blind --rounds 2                # two models, one run
    python benchmarks/restore_speed.py --megapixels 0.1       # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import torch

from rcot_lightning.hardware import cpu_summary
from rcot_lightning.inference import restore_image
from rcot_lightning.pretrained import DEFAULT_MODEL, load

TARGET_MEGAPIXELS = 12.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", default=[DEFAULT_MODEL])
    parser.add_argument("--megapixels", type=float, default=TARGET_MEGAPIXELS)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", nargs="+", choices=["32", "bf16"], default=["32", "bf16"])
    parser.add_argument("--ensemble", nargs="+", type=int, default=[1])
    parser.add_argument("--rounds", type=int, default=1, help="repeats, alternating the order")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    width = round(math.sqrt(args.megapixels * 1e6 * 4 / 3))
    height = round(width * 3 / 4)
    megapixels = width * height / 1e6
    scale = TARGET_MEGAPIXELS / megapixels
    nets = {name: load(name) for name in args.model}
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    settings = [
        (name, precision, ensemble)
        for name in args.model
        for precision in args.precision
        for ensemble in args.ensemble
    ]
    timings: dict[tuple[str, str, int], list[tuple[float, float]]] = {s: [] for s in settings}
    for round_ in range(max(args.rounds, 1)):
        for name, precision, ensemble in settings if round_ % 2 == 0 else settings[::-1]:
            net = nets[name]
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
            with torch.inference_mode(), autocast:
                tile = image[..., : args.tile, : args.tile]
                restore_image(net, tile, tile=args.tile, ensemble=ensemble)
                wall, cpu = time.perf_counter(), time.process_time()
                restored = restore_image(
                    net, image, tile=args.tile, overlap=args.overlap, ensemble=ensemble
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert restored.shape == image.shape
            timings[(name, precision, ensemble)].append((wall, cpu))
    runs = []
    for (name, precision, ensemble), measured in timings.items():
        wall = statistics.median(w for w, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        runs.append(
            {
                "model": name,
                "parameters": sum(p.numel() for p in nets[name].parameters()),
                "precision": precision,
                "ensemble": ensemble,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "wall_s_per_megapixel": round(wall / megapixels, 3),
                "cpu_s_per_megapixel": round(cpu / megapixels, 3),
                "wall_s_12mp": round(wall * scale, 1),
                "cpu_s_12mp": round(cpu * scale, 1),
                "rounds": [round(c, 3) for _, c in measured],
            }
        )
    for run in runs:
        run["cpu_ratio_to_first"] = round(run["cpu_s"] / max(runs[0]["cpu_s"], 1e-9), 3)
    first = {
        k: v for k, v in runs[0].items() if k not in ("precision", "ensemble", "model", "rounds")
    }
    report = {
        "benchmark": "restore_speed",
        "model": args.model[0],
        "models": args.model,
        "size": [height, width],
        "megapixels": round(megapixels, 3),
        "tile": args.tile,
        "overlap": args.overlap,
        "threads": args.threads,
        "precision": runs[0]["precision"],
        **first,
        "runs": runs,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu": cpu_summary(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
