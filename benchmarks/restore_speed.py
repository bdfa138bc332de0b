"""How long a bundled model takes to restore a large photo on the CPU, tiled as rcot-restore does.

Restores one seeded random image of ``--megapixels`` (4:3, default 12 MP = 4000x3000) with
:func:`rcot_lightning.inference.restore_image` (``--tile`` 512, overlap 32, the rcot-restore
defaults) under ``torch.inference_mode``, after a warm-up on one tile. Reports:

* ``wall_s``: elapsed seconds;
* ``cpu_s``: CPU seconds of this process (``time.process_time``). On a shared machine the wall
  time also counts the waits for a core; the CPU time is the work itself, so
  ``cpu_s / threads`` is what the restore takes on that many free cores of this CPU;
* both per megapixel and scaled to 12 MP (tiling makes the work linear in the area: the tile
  count grows with it, each tile costs the same).

The content of the image does not change the work, so a random image stands in for a photo.
Prints one JSON object.

Run::

    python benchmarks/restore_speed.py                       # 12 MP, 1 thread
    python benchmarks/restore_speed.py --megapixels 2 --threads 2
    python benchmarks/restore_speed.py --megapixels 0.1      # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import torch

from rcot_lightning.inference import restore_image
from rcot_lightning.pretrained import DEFAULT_MODEL, load

TARGET_MEGAPIXELS = 12.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--megapixels", type=float, default=TARGET_MEGAPIXELS)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    width = round(math.sqrt(args.megapixels * 1e6 * 4 / 3))
    height = round(width * 3 / 4)
    megapixels = width * height / 1e6
    net = load(args.model)
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    with torch.inference_mode(), autocast:
        restore_image(net, image[..., : args.tile, : args.tile], tile=args.tile)
        wall, cpu = time.perf_counter(), time.process_time()
        restored = restore_image(net, image, tile=args.tile, overlap=args.overlap)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert restored.shape == image.shape
    scale = TARGET_MEGAPIXELS / megapixels
    report = {
        "benchmark": "restore_speed",
        "model": args.model,
        "parameters": sum(p.numel() for p in net.parameters()),
        "size": [height, width],
        "megapixels": round(megapixels, 3),
        "tile": args.tile,
        "overlap": args.overlap,
        "threads": args.threads,
        "precision": args.precision,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "wall_s_per_megapixel": round(wall / megapixels, 3),
        "cpu_s_per_megapixel": round(cpu / megapixels, 3),
        "wall_s_12mp": round(wall * scale, 1),
        "cpu_s_12mp": round(cpu * scale, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
