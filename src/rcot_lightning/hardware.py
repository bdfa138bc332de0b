"""What this CPU can do, for choices that depend on it (torch and the standard library only).

bfloat16 autocast pays on CPUs with native bf16 arithmetic (AVX-512 BF16, AMX): bf16 autocast of
the training loop ran 1.79x fp32 on such a machine. Without it (AVX2 only, as on AMD EPYC of
Zen 3) every bf16 operation is emulated and a restoration ran 12.6x *slower* than fp32, so the
entry points fall back to fp32 there and say so in one line (:func:`bf16_fallback_note`).

On a machine other jobs keep busy, torch's intra-op threads wait for one another: the default
job's training iteration on 2 cores beside 2 busy processes cost 3.2x the CPU of an idle one
with 2 threads (2.13 against 0.66 CPU-s) and the same as idle with 1 thread (0.60), which was
also 2.2x faster in wall time there (``benchmarks/contention.py``, AMD EPYC). The
commands therefore take fewer threads when the load average says cores are taken, and say so
(:func:`busy_machine_threads`); ``OMP_NUM_THREADS`` set by the user always wins.

Example:
    >>> isinstance(native_bf16(), bool)
    True
    >>> set(cpu_summary()) == {"model", "capability", "native_bf16", "flags"}
    True
    >>> cpu_line({"model": "AMD EPYC", "native_bf16": False})
    'AMD EPYC, native bf16: no'
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BF16_FLAGS",
    "bf16_fallback_note",
    "busy_machine_threads",
    "cpu_flags",
    "cpu_line",
    "cpu_model",
    "cpu_summary",
    "native_bf16",
]

#: CPU flags (``/proc/cpuinfo``) that mean native bfloat16 arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

#: What the library measured bf16 autocast to cost on a CPU without native bf16 (restoring a
#: folder: 445.6 s against 35.3 s in fp32 on a 2-core AMD EPYC with AVX2 only).
EMULATED_BF16_SLOWDOWN = 12.6


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX).

    ``RCOT_NATIVE_BF16=1`` / ``0`` overrides the detection (for a CPU the flags misreport).
    """
    forced = os.environ.get("RCOT_NATIVE_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    flags = cpu_flags()
    if flags:
        return any(flag in flags for flag in BF16_FLAGS)
    # No /proc/cpuinfo (macOS, Windows): Apple silicon has bf16; x86 needs the flags above.
    return platform.machine().lower() in ("arm64", "aarch64") and platform.system() == "Darwin"


def cpu_summary() -> dict[str, Any]:
    """The CPU model, torch's vector capability, native bf16 and its bf16/AMX flags, for the
    JSON of every benchmark."""
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx")) or f == "avx2")
    return {
        "model": cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16(),
        "flags": flags,
    }


def cpu_line(summary: dict[str, Any] | None = None) -> str:
    """The CPU model and whether it has native bf16, for a benchmark's one-line summary
    (``summary``: a :func:`cpu_summary`, measured now when left out)."""
    summary = cpu_summary() if summary is None else summary
    return f"{summary['model']}, native bf16: {'yes' if summary['native_bf16'] else 'no'}"


def bf16_fallback_note(key: str) -> str | None:
    """One line for a bf16 request on this CPU when it lacks native bf16, else None.

    Args:
        key: the config key the user set (``precision``, ``trainer.precision``).
    """
    if native_bf16():
        return None
    return (
        f"{key}: this CPU ({cpu_model()}) has no native bf16 arithmetic (no AVX-512 BF16 or "
        f"AMX), where bf16 measured about {EMULATED_BF16_SLOWDOWN:g}x slower than fp32: running "
        "in fp32 instead (set RCOT_NATIVE_BF16=1 to force bf16)"
    )


def busy_machine_threads(
    cores: int | None = None, load: float | None = None, environ: Any = None
) -> tuple[int, str] | None:
    """Fewer intra-op threads on a busy machine: ``(threads, why)``, or None to keep torch's.

    With ``OMP_NUM_THREADS`` unset, a command would run one thread per core; when the 1-minute
    load average says other jobs hold cores, ``round(cores - load)`` threads (at least 1) are
    what is free. Nothing changes when the variable is set (the user chose) or the machine is
    idle enough for every core.

    Args:
        cores: the cores this process may use (default: its CPU affinity).
        load: the 1-minute load average (default: ``os.getloadavg()``).
        environ: the environment (default: ``os.environ``).

    Example:
        >>> busy_machine_threads(cores=2, load=0.1, environ={}) is None
        True
        >>> busy_machine_threads(cores=2, load=1.9, environ={})[0]
        1
        >>> busy_machine_threads(cores=16, load=3.2, environ={})[0]
        13
        >>> busy_machine_threads(cores=2, load=9.0, environ={"OMP_NUM_THREADS": "2"}) is None
        True
    """
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS"):
        return None
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return None
    threads = max(1, min(cores, round(cores - load)))
    if threads >= cores:
        return None
    why = (
        f"threads: {threads} of {cores} cores (load average {load:.1f}: other jobs hold the "
        f"rest, and threads that wait on each other cost up to 3x the CPU); set "
        f"OMP_NUM_THREADS={cores} to use every core"
    )
    return threads, why
