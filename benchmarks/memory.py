"""Peak memory of one training iteration: fp32 vs bf16, activation checkpointing off vs on.

Each configuration runs in a **fresh subprocess** (a peak never goes down, and allocator caches
would leak from one configuration into the next). The subprocess builds the map and potential of
the preset (seeded), their RMSprop optimizers and one training batch, then runs the iteration of
``RCOTModule.training_step`` (``ours`` of ``benchmarks/throughput.py``: ``T(y)`` once, one
potential step with the gradient penalty, one map step):

On ``--device cuda`` the allocator's own counters replace the resident size (``steady`` =
``torch.cuda.memory_allocated``, ``peak`` = ``torch.cuda.max_memory_allocated`` of iteration 2).

1. iteration 1, untimed: gradients and optimizer state now exist, as in a running job;
2. ``malloc_trim`` (glibc returns freed pages) and the resident size is read: ``steady_mib``,
   the memory a job holds between iterations (Python, torch, weights, gradients, RMSprop state,
   the batch);
3. the peak counter is reset (``/proc/self/clear_refs``, Linux) and iteration 2 runs, timed:
   ``peak_mib`` is its ``VmHWM`` and ``activation_mib = peak - steady`` the memory the
   iteration itself needed (activations saved for backward, the penalty's double-backward graph,
   temporaries).

``state_mib`` is the exact byte count of weights + gradients + RMSprop state (``square_avg``) of
both networks, from which the GPU estimate in the JSON (``gpu_estimate_gib``) is
``state + activation`` (+ about 0.5 GiB of CUDA context): an **estimate** for a CUDA card, where
the caching allocator and cuDNN workspaces differ from the CPU allocator.

Run::

    python benchmarks/memory.py                          # paper size, batch 3, patch 128
    python benchmarks/memory.py --preset tiny --batch 2 --patch 32    # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import platform
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
from rcot_lightning.contract import CLEAN, DEGRADATION, DEGRADED
from rcot_lightning.hardware import cpu_line, cpu_summary
from rcot_lightning.nets import Potential, TwoPassMap

#: Configuration -> (autocast dtype or None, checkpointing). ``fp16`` is for CUDA (the loss
#: scaling of a real fp16 job changes no tensor sizes, so it is left out here).
CONFIGS: dict[str, tuple[torch.dtype | None, bool]] = {
    "fp32": (None, False),
    "bf16": (torch.bfloat16, False),
    "fp32_checkpointing": (None, True),
    "bf16_checkpointing": (torch.bfloat16, True),
    "fp16": (torch.float16, False),
    "fp16_checkpointing": (torch.float16, True),
}
CPU_CONFIGS = ("fp32", "bf16", "fp32_checkpointing", "bf16_checkpointing")
#: CUDA context and library handles a GPU process holds besides tensors (order of magnitude).
CUDA_CONTEXT_GIB = 0.5


def proc_status_mib(key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (Linux ``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status (this benchmark needs Linux)")


def release_free_memory() -> None:
    """Give freed heap pages back to the OS so the resident size is what is really held."""
    # Not glibc (OSError): the steady size may then hold free pages, and activation is low.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration in this (fresh) process; returns its measurements."""
    torch.set_num_threads(args.threads)
    dtype, checkpointing = CONFIGS[args.config]
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    # The iteration measured here is the one throughput.py times (imported here: it is heavy).
    from benchmarks import throughput as tp

    torch.manual_seed(args.seed)
    tmap = TwoPassMap(**MAP_PRESETS[args.preset], checkpointing=checkpointing).to(device)
    phi = Potential(**POTENTIAL_PRESETS[args.preset]).to(device)
    setup = tp.build_setup(tmap, phi)
    del tmap, phi  # build_setup keeps its own copies
    batch = {k: v.to(device) for k, v in tp.one_batch(args.batch, args.patch).items()}
    y, x, ids = batch[DEGRADED], batch[CLEAN], batch[DEGRADATION]
    alpha = torch.rand(args.batch, generator=torch.Generator().manual_seed(args.seed)).to(device)

    def iteration() -> None:
        context: AbstractContextManager[Any] = (
            torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
        )
        with context:
            tp.ours_iteration(setup, y, x, ids, alpha)
        if cuda:
            torch.cuda.synchronize(device)

    iteration()
    if cuda:
        steady = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        release_free_memory()
        steady = proc_status_mib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM to the current resident size
    start = time.perf_counter()
    iteration()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else proc_status_mib("VmHWM")

    params = [*setup.transport_map.parameters(), *setup.potential.parameters()]
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    optimizer_bytes = sum(
        t.numel() * t.element_size()
        for opt in (setup.opt_map, setup.opt_potential)
        for state in opt.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor)
    )
    # weights + their gradients + the optimizers' state
    state_mib = (2 * param_bytes + optimizer_bytes) / 2**20
    activation = peak - steady
    result = {
        "autocast": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "checkpointing": checkpointing,
        "s_per_iter": seconds,
        "steady_mib": steady,
        "peak_mib": peak,
        "activation_mib": activation,
        "state_mib": state_mib,
    }
    if cuda:
        result["device_name"] = torch.cuda.get_device_name(device)
    else:
        result["gpu_estimate_gib"] = (state_mib + activation) / 1024 + CUDA_CONTEXT_GIB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(MAP_PRESETS), default="paper")
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument(
        "--configs", nargs="+", choices=sorted(CONFIGS), help=f"default: {' '.join(CPU_CONFIGS)}"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu (peak RSS) or cuda (allocator peak)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.config is not None:  # the subprocess side
        print(json.dumps(worker(args)))
        return

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("memory.py: --device cuda but torch sees no CUDA device")
    results: dict[str, Any] = {}
    for name in args.configs or CPU_CONFIGS:
        command = [sys.executable, __file__, "--config", name]
        command += ["--preset", args.preset, "--batch", str(args.batch)]
        command += ["--patch", str(args.patch), "--threads", str(args.threads)]
        command += ["--seed", str(args.seed), "--device", args.device]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # -9 without a traceback is usually the kernel's OOM killer: the configuration needs
            # more memory than the machine has free.
            raise SystemExit(
                f"memory.py: configuration {name} failed (exit {done.returncode}):\n"
                f"{done.stderr[-3000:]}"
            )
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])

    def saving(name: str, base: str) -> float | None:
        if name not in results or base not in results:
            return None
        return 1 - results[name]["activation_mib"] / results[base]["activation_mib"]

    result = {
        "benchmark": "memory",
        "method": (
            "fresh subprocess per configuration; one untimed iteration, then on CPU: "
            "malloc_trim, steady = VmRSS, VmHWM reset via /proc/self/clear_refs, peak = VmHWM "
            "of iteration 2; on CUDA: steady = memory_allocated, peak = max_memory_allocated "
            "of iteration 2; activation = peak - steady; state = exact bytes of weights + "
            "grads + RMSprop state"
        ),
        "device": args.device,
        "preset": args.preset,
        "batch": args.batch,
        "patch": args.patch,
        "threads": args.threads,
        "results": results,
        "activation_saving": {
            "checkpointing_fp32": saving("fp32_checkpointing", "fp32"),
            "checkpointing_bf16": saving("bf16_checkpointing", "bf16"),
            "bf16_vs_fp32": saving("bf16", "fp32"),
        },
        "gpu_estimate_note": (
            f"state + activation + {CUDA_CONTEXT_GIB} GiB CUDA context: an estimate from CPU "
            "measurements, not a GPU measurement"
        ),
        "machine": platform.machine(),
        "cpu": cpu_summary(),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    print(
        "memory: "
        + ", ".join(
            f"{n} activation {r['activation_mib'] / 1024:.2f} GiB, peak "
            f"{r['peak_mib'] / 1024:.2f} GiB"
            for n, r in results.items()
        )
        + f"; {cpu_line(result['cpu'])}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
