"""The map's attention as shipped against Restormer's F.normalize formulation, on one tile.

:class:`~rcot_lightning.nets.restormer.TransposedAttention` divides the small ``q k^T`` by the
outer product of the row norms of Q and K (read off the diagonals of ``q q^T`` and ``k k^T``)
instead of normalising the full-size Q and K first (``F.normalize``, as Restormer and the
authors' script do). Both give the same numbers; this times a whole bundled map (``--model``,
default ``denoise-blind``) on one seeded ``--size`` square tile with each formulation, in
``--rounds`` alternating rounds (A B, B A, ...) in this process, at ``--threads`` torch threads,
fp32, under ``torch.inference_mode``. Prints one JSON object: CPU seconds per pass of each
(median of the rounds, and every round), ``speedup`` (normalising over shipped, medians), the
largest absolute difference of the two outputs, and the CPU.

Run::

    OMP_NUM_THREADS=1 python benchmarks/attention_speed.py --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rcot_lightning.hardware import cpu_summary
from rcot_lightning.nets.restormer import TransposedAttention
from rcot_lightning.pretrained import DEFAULT_MODEL, load


def normalising_forward(self: TransposedAttention, x: Tensor) -> Tensor:
    """Restormer's MDTA: F.normalize Q and K over the pixels, then q k^T (the reference)."""
    b, c, h, w = x.shape
    qkv = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
    q, k, v = qkv.unbind(1)
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
    return self.project_out((attn @ v).reshape(b, c, h, w))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = load(args.model)
    tile = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    shipped = TransposedAttention.forward
    variants: dict[str, Callable[..., Tensor]] = {
        "shipped": shipped,
        "normalising": normalising_forward,
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, Tensor] = {}
    order = list(variants)
    try:
        with torch.inference_mode():
            for round_ in range(max(args.rounds, 1)):
                for name in order if round_ % 2 == 0 else order[::-1]:
                    TransposedAttention.forward = variants[name]  # type: ignore[method-assign]
                    net(tile)  # warm-up
                    start = time.process_time()
                    outputs[name] = net(tile)
                    seconds[name].append(time.process_time() - start)
    finally:
        TransposedAttention.forward = shipped  # type: ignore[method-assign]
    median = {name: statistics.median(values) for name, values in seconds.items()}
    report = {
        "benchmark": "attention_speed",
        "model": args.model,
        "size": args.size,
        "threads": args.threads,
        "rounds": args.rounds,
        "cpu_s_per_pass": {name: round(value, 4) for name, value in median.items()},
        "cpu_s_each_round": {n: [round(v, 4) for v in vs] for n, vs in seconds.items()},
        "speedup": round(median["normalising"] / median["shipped"], 3),
        "max_abs_difference": float((outputs["shipped"] - outputs["normalising"]).abs().max()),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "cpu": cpu_summary(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
