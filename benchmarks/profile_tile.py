"""Where the time of one tile goes: a ``torch.profiler`` table of a bundled map, by operator and by
kind of layer, and its FLOP rate against the matmul peak measured in the same run (issue 28).

Loads ``--model`` (default ``denoise-blind``, a :class:`~rcot_lightning.nets.TwoPassMap`) and,
for each of ``--precisions`` (``32``: fp32; ``bf16``: ``torch.autocast("cpu", bfloat16)``), under
``torch.inference_mode`` at ``--threads`` torch threads:

1. one warm-up pass of a ``--size`` square tile (a seeded random image: the content does not
   change the work), then one unprofiled timed pass;
2. the FLOPs of one pass, counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions
   and matmuls, depth-wise convolutions by their real ``groups``) on an fp32 pass of the same
   tile: autocast changes dtypes, not shapes, so the count is the same;
3. this machine's matmul peak for the precision's dtype (``benchmarks.throughput.matmul_peak``:
   best-of-5 square ``torch.mm`` grown from 256 while one product takes under 0.25 s);
4. ``--repeats`` passes under ``torch.profiler.profile(activities=[CPU], record_shapes=True,
   with_flops=True)``, each timed.

On a CPU without native bf16 (``hardware.native_bf16()`` False) bf16 is emulated, about 12x
slower than fp32: there its tile is ``--bf16-size`` (default 256), and ``size`` in the JSON says
which side each precision ran.

Attribution by kind of layer: while profiling, forward pre/post hooks open and close a
``torch.profiler.record_function`` range named ``layer: <kind>`` around every module of the map
(see :func:`layer_kind`); each profiled event's *self* CPU time goes to the innermost range that
holds it, so a ``TransposedAttention`` range keeps only what its child convolutions do not (the
attention core: normalisation of Q and K, the two batched matmuls, softmax, reshapes), a
``GatedDconvFeedForward`` range keeps the gating (chunk, GELU, product), a ``TransformerBlock``
range its two residual additions, and the map's own range everything between modules
(padding, concatenations, conditioning, global residuals). The kinds' times add up to the
profiled passes' total. Each kind's GFLOP/s comes from the profiler's FLOPs of ``aten::conv2d``
and ``aten::bmm``/``mm`` events in it (they add up to the FlopCounterMode total; autocast records
an ``aten::conv2d`` inside another, and only the outer one is counted). Where the self time is
in no operator (Python of the forward methods, the hooks), the operator table says so.

The JSON has, per precision: ``wall_s_per_pass`` (median of the profiled passes),
``unprofiled_wall_s`` (one pass: the profiler's cost is in ``profiled_over_unprofiled``, with
the noise of one pass), ``cpu_s_per_pass``, ``flop_per_pass``, ``kflop_per_pixel``,
``achieved_gflop_per_s`` (FLOPs over the profiled median wall), ``matmul_peak_gflop_per_s``,
``fraction_of_peak``, ``kinds`` (share of the profiled time per kind of layer) and ``top_ops``
(operators by self CPU time). On a loaded machine (1-minute load average over 0.5) ``note`` says
so: wall seconds then include waits for a core, the shares much less so.

Run::

    python benchmarks/profile_tile.py --threads 1              # 512 fp32, bf16 (256 if emulated)
    python benchmarks/profile_tile.py --size 32 --bf16-size 16 --repeats 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.throughput import matmul_peak
from rcot_lightning.hardware import cpu_line, cpu_summary, native_bf16
from rcot_lightning.nets.restormer import (
    ChannelLayerNorm,
    GatedDconvFeedForward,
    TransformerBlock,
    TransposedAttention,
)
from rcot_lightning.pretrained import DEFAULT_MODEL, load

#: Prefix of the profiler ranges that mark a kind of layer.
LABEL = "layer: "
#: The range around one whole pass.
PASS = "profile_tile: pass"
#: Kind of the map's own code between modules (and anything not in a labelled module).
OTHER = "other (padding, concat, conditioning, global residuals)"
#: Operators whose profiler FLOPs are counted (those FlopCounterMode counts: convs and matmuls).
FLOP_OPS = ("aten::conv2d", "aten::bmm", "aten::mm", "aten::addmm", "aten::baddbmm")
#: Above this 1-minute load average the JSON notes that the machine was shared.
LOADED = 0.5
ATTRIBUTION = (
    "module hooks: forward pre/post hooks open a torch.profiler.record_function range per module "
    "(kind by class: ChannelLayerNorm; Conv2d depth-wise (groups == in_channels) / 1x1 / dense "
    "kxk; TransposedAttention without its convs = attention core; GatedDconvFeedForward without "
    "its convs = gating; TransformerBlock without its children = residual adds; PixelShuffle/"
    "PixelUnshuffle; the map's own code = other); each event's self CPU time goes to the "
    "innermost range around it"
)


def layer_kind(module: nn.Module) -> str | None:
    """The kind of layer a module's own work is counted as, or None for a mere container.

    Example:
        >>> layer_kind(nn.Conv2d(8, 8, 3, padding=1, groups=8)), layer_kind(nn.Conv2d(8, 4, 1))
        ('depth-wise conv 3x3', 'point-wise conv 1x1')
        >>> layer_kind(ChannelLayerNorm(4)), layer_kind(nn.Sequential()) is None
        ('layer norm', True)
    """
    if isinstance(module, ChannelLayerNorm):
        return "layer norm"
    if isinstance(module, nn.Conv2d):
        k = "x".join(str(s) for s in module.kernel_size)
        if module.groups > 1 and module.groups == module.in_channels:
            return f"depth-wise conv {k}"
        if module.kernel_size == (1, 1):
            return "point-wise conv 1x1"
        return f"dense conv {k}"
    if isinstance(module, TransposedAttention):
        return "attention core (normalize, q k^T, softmax, attn v)"
    if isinstance(module, GatedDconvFeedForward):
        return "gating (chunk, GELU, product)"
    if isinstance(module, TransformerBlock):
        return "residual adds in blocks"
    if isinstance(module, nn.PixelShuffle | nn.PixelUnshuffle):
        return "pixel (un)shuffle"
    return None


def label_modules(net: nn.Module) -> list[Any]:
    """Put a ``record_function`` range around every module of ``net`` that has a kind; the map
    itself is :data:`OTHER`. Returns the hook handles (``.remove()`` them)."""
    stack: list[Any] = []

    def opener(kind: str) -> Any:
        def pre(module: nn.Module, args: Any) -> None:
            scope = record_function(LABEL + kind)
            scope.__enter__()
            stack.append(scope)

        return pre

    def close(module: nn.Module, args: Any, output: Any) -> None:
        stack.pop().__exit__(None, None, None)

    handles = []
    for module in net.modules():
        kind = OTHER if module is net else layer_kind(module)
        if kind is not None:
            handles.append(module.register_forward_pre_hook(opener(kind)))
            handles.append(module.register_forward_hook(close))
    return handles


def _kind_of(event: Any) -> str:
    """The kind of the innermost labelled range holding ``event`` (itself included)."""
    while event is not None:
        if event.name.startswith(LABEL):
            return str(event.name[len(LABEL) :])
        event = event.cpu_parent
    return OTHER


def _nested_in_itself(event: Any) -> bool:
    """Whether an enclosing event has the same name: autocast records ``aten::conv2d`` once at
    its own dispatch and again for the cast call inside, and only one holds the work."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == event.name:
            return True
        parent = parent.cpu_parent
    return False


def attribute(events: Any, passes: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Per-kind and per-operator time (and FLOPs) of profiled ``events``, per pass.

    Returns:
        ``(kinds, ops, flops)``: kinds sorted by time, with their share of the total, GFLOP/s
        and top operators; operators (not the ranges) sorted by self CPU time; the profiler's
        FLOPs of :data:`FLOP_OPS` per pass.
    """
    in_pass = []
    for event in events:
        parent = event
        while parent is not None and parent.name != PASS:
            parent = parent.cpu_parent
        if parent is not None:
            in_pass.append(event)
    kind_us: dict[str, float] = defaultdict(float)
    kind_flops: dict[str, int] = defaultdict(int)
    kind_ops: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    op_us: dict[str, float] = defaultdict(float)
    op_calls: dict[str, int] = defaultdict(int)
    op_kinds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in in_pass:
        kind = _kind_of(event)
        us = float(event.self_cpu_time_total)
        kind_us[kind] += us
        if event.name in FLOP_OPS and event.flops and not _nested_in_itself(event):
            kind_flops[kind] += int(event.flops)
        if event.name.startswith(LABEL) or event.name == PASS:
            name = "(outside any operator: Python, hooks, freeing tensors)"
        else:
            name = event.name
            op_calls[name] += 1
            op_us[name] += us
            op_kinds[name][kind] += us
        kind_ops[kind][name] += us
    total = sum(kind_us.values()) or 1.0
    kinds = []
    for kind, us in sorted(kind_us.items(), key=lambda kv: -kv[1]):
        seconds = us / 1e6
        ops = sorted(kind_ops[kind].items(), key=lambda kv: -kv[1])[:4]
        kinds.append(
            {
                "kind": kind,
                "ms_per_pass": round(us / 1e3 / passes, 3),
                "share_pct": round(100 * us / total, 2),
                "gflop_per_pass": round(kind_flops[kind] / 1e9 / passes, 4),
                "gflop_per_s": (
                    round(kind_flops[kind] / seconds / 1e9, 3)
                    if seconds and kind_flops[kind]
                    else None
                ),
                "top_ops": [{"name": n, "ms_per_pass": round(t / 1e3 / passes, 3)} for n, t in ops],
            }
        )
    ops_out = [
        {
            "name": name,
            "calls_per_pass": op_calls[name] / passes,
            "self_cpu_ms_per_pass": round(us / 1e3 / passes, 3),
            "share_pct": round(100 * us / total, 2),
            "by_kind_pct": {
                k: round(100 * t / us, 1)
                for k, t in sorted(op_kinds[name].items(), key=lambda kv: -kv[1])
                if us and t / us >= 0.005
            },
        }
        for name, us in sorted(op_us.items(), key=lambda kv: -kv[1])
    ]
    return kinds, ops_out, sum(kind_flops.values()) // passes


def count_flops(net: nn.Module, tile: torch.Tensor) -> int:
    """FLOPs of one fp32 pass (FlopCounterMode: convolutions and matmuls)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(tile)
    return int(counter.get_total_flops())


def profile_precision(
    net: nn.Module, precision: str, size: int, repeats: int, top: int, flops: int
) -> dict[str, Any]:
    """Time, profile and attribute ``repeats`` passes of one ``size`` tile at ``precision``."""
    tile = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    bf16 = precision == "bf16"
    dtype = torch.bfloat16 if bf16 else torch.float32

    def autocast() -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    with torch.inference_mode(), autocast():
        net(tile)  # warm-up
        start = time.perf_counter()
        net(tile)
        unprofiled = time.perf_counter() - start
    peak, peak_size = matmul_peak(torch.device("cpu"), dtype)
    handles = label_modules(net)
    walls, cpus = [], []
    try:
        with (
            torch.inference_mode(),
            autocast(),
            profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof,
        ):
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                with record_function(PASS):
                    net(tile)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
    finally:
        for handle in handles:
            handle.remove()
    kinds, ops, profiler_flops = attribute(prof.events(), repeats)
    wall = statistics.median(walls)
    achieved = flops / wall
    profiled_ms = sum(k["ms_per_pass"] for k in kinds)
    return {
        "precision": "fp32" if not bf16 else "bf16 autocast",
        "size": size,
        "wall_s_per_pass": round(wall, 4),
        "wall_s_all": [round(w, 4) for w in walls],
        "cpu_s_per_pass": round(statistics.median(cpus), 4),
        "unprofiled_wall_s": round(unprofiled, 4),
        "profiled_over_unprofiled": round(wall / unprofiled, 3),
        "profiled_ms_per_pass": round(profiled_ms, 2),
        "flop_per_pass": flops,
        "kflop_per_pixel": round(flops / size**2 / 1e3, 2),
        "profiler_flop_per_pass": profiler_flops,
        "achieved_gflop_per_s": round(achieved / 1e9, 3),
        "achieved_gflop_per_s_unprofiled": round(flops / unprofiled / 1e9, 3),
        "matmul_peak_gflop_per_s": round(peak / 1e9, 3),
        "matmul_peak_size": peak_size,
        "matmul_peak_dtype": str(dtype).removeprefix("torch."),
        "fraction_of_peak": round(achieved / peak, 4),
        "kinds": kinds,
        "top_ops": ops[:top],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--size", type=int, default=512, help="side of the square tile")
    parser.add_argument(
        "--bf16-size",
        type=int,
        default=256,
        help="side of the bf16 tile where bf16 is emulated (no native bf16)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="profiled passes per precision")
    parser.add_argument("--precisions", nargs="+", choices=["32", "bf16"], default=["32", "bf16"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--top", type=int, default=15, help="operators listed per precision")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)
    summary = cpu_summary()
    load_start = os.getloadavg()[0]

    net = load(args.model).eval()
    counted: dict[int, int] = {}
    results: dict[str, Any] = {}
    for precision in args.precisions:
        emulated = precision == "bf16" and not native_bf16()
        size = args.bf16_size if emulated else args.size
        if size not in counted:
            counted[size] = count_flops(
                net, torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            )
        key = "fp32" if precision == "32" else "bf16"
        results[key] = profile_precision(
            net, precision, size, args.repeats, args.top, counted[size]
        )
        results[key]["size_reason"] = (
            "--bf16-size: this CPU has no native bf16 (emulated, about 12x slower than fp32)"
            if emulated
            else "--size"
        )
        print(f"{key}: {results[key]['wall_s_per_pass']} s/pass at {size}px", file=sys.stderr)

    load_end = os.getloadavg()[0]
    report: dict[str, Any] = {
        "benchmark": "profile_tile",
        "model": args.model,
        "map": type(net).__name__,
        "parameters": sum(p.numel() for p in net.parameters()),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "flop_counter": "torch.utils.flop_counter.FlopCounterMode, one fp32 pass of the tile",
        "attribution": ATTRIBUTION,
        "results": results,
        "load_average_1min": round(load_end, 2),
        "load_average_1min_at_start": round(load_start, 2),
        "cpu_count": os.cpu_count(),
        "cpu": summary,
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    if max(load_start, load_end) > LOADED:
        report["note"] = (
            f"the machine was shared: 1-minute load average {load_start:.2f} at the start and "
            f"{load_end:.2f} at the end on {os.cpu_count()} cores; wall seconds include waits "
            "for a core (compare cpu_s_per_pass), the shares and the ratio to the peak measured "
            "in the same run are the figures to read"
        )
    print(json.dumps(report, indent=1))
    parts = []
    for key, r in results.items():
        first = r["kinds"][0]
        parts.append(
            f"{key} {r['size']}px {r['wall_s_per_pass']:.2f} s/pass, "
            f"{r['achieved_gflop_per_s']:.1f} GFLOP/s = {100 * r['fraction_of_peak']:.0f}% of "
            f"the {r['matmul_peak_gflop_per_s']:.1f} GFLOP/s matmul peak, "
            f"{first['kind']} {first['share_pct']:.0f}%"
        )
    print(
        f"profile_tile ({args.model}, {args.threads} thread(s), load {load_end:.1f}): "
        + "; ".join(parts)
        + f"; {cpu_line(summary)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
