"""The deployment anchor: ONNX Runtime's CPU provider against PyTorch on the same map and tiles.

Builds what ``rcot-restore backend=onnxruntime`` runs
(:class:`rcot_lightning.cli.export.OnnxRuntimeMap`: ``--model``, default ``denoise-blind``,
exported as ``rcot-export`` exports it, opset 17 with dynamic batch, height and width, opened by
``onnxruntime.InferenceSession`` on the ``CPUExecutionProvider`` with ``--threads`` intra-op
threads, one inter-op thread, every graph optimisation on), and restores one seeded random
image of ``--megapixels`` (4:3) with :func:`rcot_lightning.inference.restore_image` (tiles of
``--tile``, overlap ``--overlap``, padded to the map's multiple, as ``rcot-restore`` does) once
through PyTorch (fp32, ``torch.inference_mode``, ``--threads`` torch threads) and once through
the session, in ``--rounds`` alternating rounds (A B, B A, ...) after a warm-up tile of each.
``--bf16`` adds PyTorch under bf16 autocast (what ``precision=auto`` runs on a CPU with native
bf16) as a third backend in the same rounds. The image's content does not change the work.

Prints one JSON object: wall and CPU seconds per backend (median of the rounds, and each round),
scaled to 12 MP (tiling makes the work linear in the area), ``onnxruntime_over_torch`` (ratio of
the median wall times: above 1, PyTorch is faster), the largest absolute difference between the
two restored images, the export time, and the CPU.

Run::

    OMP_NUM_THREADS=1 python benchmarks/onnx_speed.py --megapixels 1 --threads 1 --rounds 4
    python benchmarks/onnx_speed.py --megapixels 3 --threads 2 --rounds 2 --bf16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from rcot_lightning.hardware import cpu_summary
from rcot_lightning.inference import restore_image
from rcot_lightning.pretrained import DEFAULT_MODEL, load
from rcot_lightning.shapes import size_multiple


def main() -> None:
    from rcot_lightning.cli.export import OnnxRuntimeMap

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also PyTorch under bf16 autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    width = round(math.sqrt(args.megapixels * 1e6 * 4 / 3))
    height = round(width * 3 / 4)
    megapixels = width * height / 1e6
    net = load(args.model)
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    session = OnnxRuntimeMap(net, threads=args.threads)  # rcot-restore backend=onnxruntime's
    export_s = time.perf_counter() - start
    backends: dict[str, Callable[[Tensor], Tensor]] = {"torch": net, "onnxruntime": session}
    if args.bf16:
        backends["torch_bf16"] = _bf16(net)
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
    outputs: dict[str, Tensor] = {}
    order = list(backends)
    multiple = size_multiple(net)  # both tiled alike
    with torch.inference_mode():
        for fn in backends.values():
            fn(image[..., : args.tile, : args.tile])  # warm-up (ORT plans its shapes)
        for round_ in range(max(args.rounds, 1)):
            for name in order if round_ % 2 == 0 else order[::-1]:
                wall, cpu = time.perf_counter(), time.process_time()
                outputs[name] = restore_image(
                    backends[name],
                    image,
                    tile=args.tile,
                    overlap=args.overlap,
                    multiple=multiple,
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                timings[name].append((wall, cpu))
    scale = 12.0 / megapixels
    results = {}
    for name, measured in timings.items():
        wall = statistics.median(w for w, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        results[name] = {
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "wall_s_12mp": round(wall * scale, 1),
            "cpu_s_12mp": round(cpu * scale, 1),
            "wall_s_each_round": [round(w, 3) for w, _ in measured],
        }
    report = {
        "benchmark": "onnx_speed",
        "model": args.model,
        "size": [height, width],
        "megapixels": round(megapixels, 3),
        "tile": args.tile,
        "overlap": args.overlap,
        "threads": args.threads,
        "rounds": args.rounds,
        "export_s": round(export_s, 1),
        "backends": results,
        "onnxruntime_over_torch": round(
            results["onnxruntime"]["wall_s"] / max(results["torch"]["wall_s"], 1e-9), 3
        ),
        "max_abs_difference": float((outputs["torch"] - outputs["onnxruntime"]).abs().max()),
        **(
            {
                "onnxruntime_over_torch_bf16": round(
                    results["onnxruntime"]["wall_s"] / max(results["torch_bf16"]["wall_s"], 1e-9),
                    3,
                ),
                "bf16_max_abs_difference": float(
                    (outputs["torch"] - outputs["torch_bf16"]).abs().max()
                ),
            }
            if args.bf16
            else {}
        ),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "cpu": cpu_summary(),
    }
    print(json.dumps(report, indent=1))


def _bf16(net: torch.nn.Module) -> Callable[[Tensor], Tensor]:
    """``net`` under CPU bf16 autocast, returning float32 as ``rcot-restore precision=bf16``."""

    def run(y: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out: Tensor = net(y)
        return out.float()

    return run


if __name__ == "__main__":
    main()
