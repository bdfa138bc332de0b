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

``--train`` times training instead: ``--steps`` iterations of ``experiment=denoise_blind``'s map
step (forward, l1 loss, backward, gradient clipping at 0.5, Adam; that experiment's loss is l1
alone, so this is its whole iteration but the data loading) on a seeded batch of ``--batch``
patches of ``--patch`` px (its 8 and 64), under ``--precision`` (``bf16``: its
``hardware=cpu_fast``), after one untimed iteration; reported per iteration and as iterations
per CPU-second. Each variant trains its own copy of the map from the same weights.

Run::

    OMP_NUM_THREADS=1 python benchmarks/attention_speed.py --rounds 6
    OMP_NUM_THREADS=1 python benchmarks/attention_speed.py --train --rounds 4 --precision bf16
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


#: The two formulations timed against each other.
VARIANTS: dict[str, Callable[..., Tensor]] = {
    "shipped": TransposedAttention.forward,
    "normalising": normalising_forward,
}


def alternate(rounds: int, measure: Callable[[str], float]) -> dict[str, list[float]]:
    """``measure(name)`` (CPU seconds) with each of :data:`VARIANTS` installed as the attention's
    forward, in ``rounds`` alternating rounds (A B, B A, ...); the shipped forward is put back."""
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    order = list(VARIANTS)
    try:
        for round_ in range(max(rounds, 1)):
            for name in order if round_ % 2 == 0 else order[::-1]:
                TransposedAttention.forward = VARIANTS[name]  # type: ignore[method-assign]
                seconds[name].append(measure(name))
    finally:
        TransposedAttention.forward = VARIANTS["shipped"]  # type: ignore[method-assign]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--train", action="store_true", help="time training iterations")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed iterations per round")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.train:
        print(json.dumps(train_report(args), indent=1))
        return
    net = load(args.model)
    tile = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    outputs: dict[str, Tensor] = {}

    def one_pass(name: str) -> float:
        with torch.inference_mode():
            net(tile)  # warm-up
            start = time.process_time()
            outputs[name] = net(tile)
            return time.process_time() - start

    seconds = alternate(args.rounds, one_pass)
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


def train_report(args: argparse.Namespace) -> dict[str, object]:
    """CPU seconds per training iteration of the map with each attention (``--train``)."""
    import copy

    source = load(args.model)
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(args.batch, 3, args.patch, args.patch, generator=gen)
    noisy = (clean + 25 / 255 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
    nets = {name: copy.deepcopy(source).train().requires_grad_(True) for name in VARIANTS}
    optimizers = {name: torch.optim.Adam(nets[name].parameters(), lr=5e-4) for name in VARIANTS}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def iteration(name: str) -> float:
        net, optimizer = nets[name], optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = (net(noisy).float() - clean).abs().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        optimizer.step()
        return float(loss.detach())

    losses: dict[str, float] = {}

    def iterations(name: str) -> float:
        iteration(name)  # warm-up
        start = time.process_time()
        for _ in range(args.steps):
            losses[name] = iteration(name)
        return (time.process_time() - start) / args.steps

    seconds = alternate(args.rounds, iterations)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "benchmark": "attention_speed",
        "mode": "train",
        "model": args.model,
        "batch": args.batch,
        "patch": args.patch,
        "precision": args.precision,
        "steps": args.steps,
        "threads": args.threads,
        "rounds": args.rounds,
        "cpu_s_per_iteration": {name: round(value, 4) for name, value in median.items()},
        "iterations_per_cpu_second": {name: round(1 / v, 3) for name, v in median.items()},
        "cpu_s_each_round": {n: [round(v, 4) for v in vs] for n, vs in seconds.items()},
        "speedup": round(median["normalising"] / median["shipped"], 3),
        "last_loss": {name: round(v, 5) for name, v in losses.items()},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "cpu": cpu_summary(),
    }


if __name__ == "__main__":
    main()
