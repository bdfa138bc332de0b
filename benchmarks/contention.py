"""What a training iteration costs beside busy neighbours, per thread setting (issue 28, item 6).

A user's run shares the machine: on 2 cores with other jobs, torch's intra-op threads can spin
waiting for a partner that is descheduled, and the run's CPU time per iteration grows many
times over. This script measures it as a user meets it: ``python -m rcot_lightning.train`` of
the README's default job (``--overrides`` appended), run twice per setting (``--short`` and
``--long`` iterations) so that start-up cancels out:

* ``cpu_s_per_iteration``: the difference of the two runs' CPU seconds (user + system of the
  command and its children) over the difference of their iterations;
* ``wall_s_per_iteration``: the same for elapsed seconds.

Each setting runs with no neighbour and beside ``--neighbours`` busy processes (pure-Python
loops, one per core by default: every core oversubscribed), with ``OMP_NUM_THREADS`` 1 or 2 and
``OMP_WAIT_POLICY`` unset (libgomp's default: spin a while, then sleep) or ``PASSIVE`` (sleep at
once). ``cpu_ratio_to_idle`` divides each busy figure by the same setting's idle one: the
issue's target is at most 1.5. Prints one JSON object with the CPU model and its flags.

Run::

    python benchmarks/contention.py                        # the full matrix (minutes)
    python benchmarks/contention.py --short 4 --long 8 --settings 1 2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rcot_lightning.hardware import cpu_summary

#: name -> (OMP_NUM_THREADS, OMP_WAIT_POLICY or None)
SETTINGS: dict[str, tuple[int, str | None]] = {
    "1": (1, None),
    "2": (2, None),
    "2_passive": (2, "PASSIVE"),
    "1_passive": (1, "PASSIVE"),
}

#: The README's default job, made quiet; the iterations come from --short/--long.
DEFAULT_JOB = ("callbacks.rich_progress_bar=null", "test=false", "trainer.val_check_interval=1.0")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_once(
    steps: int, threads: int, policy: str | None, overrides: list[str], root: Path
) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``rcot-train`` of ``steps`` global steps."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_WAIT_POLICY", None)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    env["WANDB_MODE"] = "offline"
    command = [
        sys.executable,
        "-m",
        "rcot_lightning.train",
        *DEFAULT_JOB,
        f"trainer.max_steps={steps}",
        f"paths.log_dir={root}",
        *overrides,
    ]
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rcot-train failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return _children_cpu() - cpu, wall


def neighbours(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` processes that each keep one core busy until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--short", type=int, default=10, help="iterations of the short run")
    parser.add_argument("--long", type=int, default=40, help="iterations of the long run")
    parser.add_argument(
        "--neighbours", type=int, default=os.cpu_count() or 2, help="busy processes beside"
    )
    parser.add_argument(
        "--steps-per-iteration",
        type=int,
        default=2,
        help="global steps per iteration: n_critic + 1 (the default job: 2), 1 without potential",
    )
    parser.add_argument("--overrides", nargs="*", default=[], help="more rcot-train overrides")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.long <= args.short:
        parser.error("--long must be larger than --short")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for load in ("idle", "busy"):
            crowd = neighbours(args.neighbours) if load == "busy" else []
            try:
                time.sleep(1.0 if crowd else 0.0)
                for name in args.settings:
                    threads, policy = SETTINGS[name]
                    k = args.steps_per_iteration
                    short = train_once(k * args.short, threads, policy, args.overrides, root)
                    long = train_once(k * args.long, threads, policy, args.overrides, root)
                    n = args.long - args.short
                    results.setdefault(name, {})[load] = {
                        "cpu_s_per_iteration": (long[0] - short[0]) / n,
                        "wall_s_per_iteration": (long[1] - short[1]) / n,
                        "runs": {"short": short, "long": long},
                    }
                    print(f"{name} {load}: {results[name][load]}", file=sys.stderr)
            finally:
                for process in crowd:
                    process.kill()
                    process.wait()
    for figures in results.values():
        idle, busy = figures["idle"], figures["busy"]
        figures["cpu_ratio_to_idle"] = busy["cpu_s_per_iteration"] / idle["cpu_s_per_iteration"]
        figures["wall_ratio_to_idle"] = busy["wall_s_per_iteration"] / idle["wall_s_per_iteration"]
    report = {
        "benchmark": "contention",
        "job": "the README's default job, " + " ".join([*DEFAULT_JOB, *args.overrides]),
        "iterations": {"short": args.short, "long": args.long},
        "neighbours": args.neighbours,
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "cpu": cpu_summary(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "settings": {k: {"OMP_NUM_THREADS": SETTINGS[k][0], "OMP_WAIT_POLICY": SETTINGS[k][1]}
                     for k in args.settings},
        "results": results,
    }  # fmt: skip
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
