"""What several benchmark scripts share: the BM3D baseline, Markdown tables, and the confidence
intervals and verdicts over seeds.

The intervals and verdicts are defined in ``claims.py``'s module docstring ("Statistics" and
"Budget knee"); ``data_choices.py`` uses the same intervals. Importing this module imports torch
only: the arithmetic is tested without the trainer, and ``bm3d`` is imported when it is called.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------
# The BM3D baseline.


def bm3d_restore(x: Tensor, sigma: float, threads: int | None = None) -> Tensor:
    """BM3D (``bm3d.bm3d_rgb``, its default profile) told the noise level ``sigma`` (0-255).

    Args:
        x: ``(1, 3, H, W)`` in [0, 1].
        sigma: the noise level BM3D assumes, 0-255 scale (the true one for Gaussian noise).
        threads: its threads; ``None`` keeps the package's default (0: every core).

    Returns:
        ``(1, 3, H, W)`` in [0, 1].
    """
    import bm3d  # optional: pip install "rcot-lightning[quality]"

    profile = bm3d.BM3DProfile()
    if threads is not None:
        profile.num_threads = threads
    array = x[0].permute(1, 2, 0).double().numpy()
    out = bm3d.bm3d_rgb(array, sigma_psd=sigma / 255.0, profile=profile)
    return torch.from_numpy(out.copy()).permute(2, 0, 1)[None].float().clamp(0, 1)


# --------------------------------------------------------------------------------------------
# Reports: the command that reproduces one, Markdown tables.


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """``python benchmarks/<script> ARGS`` with ``argv``, or this process's arguments if None.

    Example:
        >>> command_line("/any/where/quality.py", ["--smoke"])
        'python benchmarks/quality.py --smoke'
    """
    return " ".join([f"python benchmarks/{Path(script).name}", *(argv or sys.argv[1:])])


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table: ``head``, its rule, then one line per row of cells.

    Example:
        >>> print("\\n".join(markdown_table(["run", "PSNR"], [["l1", "30.12"], ["ot", "-"]])))
        | run | PSNR |
        |---|---|
        | l1 | 30.12 |
        | ot | - |
    """
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


# --------------------------------------------------------------------------------------------
# Confidence intervals over seeds and the verdicts of claims.py.

#: Late gain fraction at or under which a curve counts as past its knee.
KNEE_FRACTION = 0.1


@dataclass(frozen=True)
class Target:
    """What a claim says about the difference ``A - B`` (dB): ``at_least`` delta, or equal
    ``within`` a margin."""

    kind: str
    value: float

    def describe(self) -> str:
        if self.kind == "within":
            return f"-{self.value:g} <= A - B <= {self.value:g} dB"
        return f"A - B >= {self.value:g} dB"


def t_quantile(df: int, q: float = 0.975) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom.

    Example:
        >>> round(t_quantile(1), 3), round(t_quantile(2), 3), round(t_quantile(4), 3)
        (12.706, 4.303, 2.776)
    """
    from scipy.stats import t

    return float(t.ppf(q, df))


def interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95 % Student-t confidence interval of ``values`` (``lo``/``hi`` None for n < 2).

    Example:
        >>> row = interval([1.0, 2.0, 3.0])  # s = 1, t(0.975, 2) = 4.303
        >>> row["mean"], round(row["lo"], 3), round(row["hi"], 3), row["n"]
        (2.0, -0.484, 4.484, 3)
        >>> interval([5.0])["lo"] is None
        True
    """
    n = len(values)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "half_width": None, "n": 0}
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "lo": None, "hi": None, "half_width": None, "n": 1}
    half = t_quantile(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "half_width": half, "n": n}


def format_interval(row: dict[str, Any], digits: int = 2, show_n: bool = True) -> str:
    """``row`` (an :func:`interval`) as ``mean ± half-width``, with ``(n=...)`` if ``show_n``.

    Example:
        >>> format_interval(interval([1.0, 2.0, 3.0]))
        '2.00 ± 2.48 (n=3)'
        >>> format_interval(interval([5.0]), show_n=False), format_interval(interval([]))
        ('5.00', '-')
    """
    if row["mean"] is None:
        return "-"
    n = f" (n={row['n']})" if show_n else ""
    if row["lo"] is None:
        return f"{row['mean']:.{digits}f}{n}"
    return f"{row['mean']:.{digits}f} ± {row['half_width']:.{digits}f}{n}"


def paired_difference(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """``interval`` of ``a[s] - b[s]`` over the seeds ``s`` both have, with those seeds.

    Example:
        >>> d = paired_difference({"0": 30.0, "1": 31.0, "2": 29.0}, {"0": 29.0, "1": 30.5})
        >>> d["seeds"], d["mean"], round(d["hi"], 3)
        (['0', '1'], 0.75, 3.927)
    """
    seeds = sorted(set(a) & set(b), key=lambda s: (len(s), s))
    return {**interval([a[s] - b[s] for s in seeds]), "seeds": seeds}


def verdict(lo: float | None, hi: float | None, target: Target) -> str:
    """The claim's verdict from the difference's interval [lo, hi] (module docstring).

    Example:
        >>> at_least = Target("at_least", 0.5)
        >>> verdict(0.6, 1.2, at_least), verdict(-0.2, 0.4, at_least), verdict(0.2, 0.9, at_least)
        ('holds', 'does not hold', 'inconclusive')
        >>> within = Target("within", 1.0)
        >>> verdict(-0.8, 0.3, within), verdict(-3.1, -1.2, within), verdict(-1.5, -0.5, within)
        ('holds', 'does not hold', 'inconclusive')
        >>> verdict(None, None, within)
        'inconclusive'
    """
    if lo is None or hi is None:
        return "inconclusive"
    if target.kind == "within":
        m = target.value
        if -m <= lo and hi <= m:
            return "holds"
        if hi < -m or lo > m:
            return "does not hold"
        return "inconclusive"
    if target.kind == "at_least":
        if lo >= target.value:
            return "holds"
        if hi < target.value:
            return "does not hold"
        return "inconclusive"
    raise ValueError(f"unknown target kind {target.kind!r}")


def late_gain(rows: Sequence[dict[str, Any]], input_psnr: float) -> dict[str, Any] | None:
    """The knee check of one curve (rows with ``cpu_seconds`` and ``psnr``; module docstring).

    Example:
        >>> rows = [{"cpu_seconds": c, "psnr": p} for c, p in [(0, 20), (50, 26), (100, 27)]]
        >>> k = late_gain(rows, 20.0)
        >>> round(k["late_gain_db"], 2), round(k["late_fraction"], 3), k["past_knee"]
        (1.0, 0.143, False)
    """
    points = sorted((r["cpu_seconds"], r["psnr"]) for r in rows if r.get("cpu_seconds") is not None)
    if len(points) < 2:
        return None
    end_cpu, end_psnr = points[-1]
    half = end_cpu / 2
    xs = [c for c, _ in points]
    if half <= xs[0]:
        half_psnr = points[0][1]
    else:
        i = max(j for j, c in enumerate(xs) if c <= half)
        (c0, p0), (c1, p1) = points[i], points[min(i + 1, len(points) - 1)]
        half_psnr = p0 if c1 == c0 else p0 + (p1 - p0) * (half - c0) / (c1 - c0)
    gain = end_psnr - input_psnr
    late = end_psnr - half_psnr
    fraction = late / gain if gain > 0 else None
    return {
        "end_cpu_minutes": end_cpu / 60,
        "end_psnr": end_psnr,
        "half_psnr": half_psnr,
        "late_gain_db": late,
        "late_fraction": fraction,
        "past_knee": fraction is not None and fraction <= KNEE_FRACTION,
    }
