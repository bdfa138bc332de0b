"""Where in frequency a claims run loses PSNR: its error and its output's energy per band.

A diagnostic for ``claims.py`` (item 3 of the study: test a reason a claim does not hold). It
loads the last weights of finished runs (those with a result JSON), restores the task's held-out
photos exactly as ``claims.py`` scores them, and splits each restored photo's squared error by
radial spatial frequency (orthonormal 2-D FFT per channel, so the bands' errors add up to the
MSE, Parseval). Per band it reports:

* ``error``: the band's share of the MSE, in units of 1e-4 (an MSE of 1e-4 is 40 dB PSNR);
* ``power``: the restored photo's energy in the band over the clean photo's (1: the band's
  energy is kept; under 1: smoothed away; over 1: added, noise or invented texture).

The question it answers for C1 (unpaired OT against supervised l1): is the OT map's extra error
in the fine bands with their energy kept near the clean photo's (a distribution-matching map that
invents plausible texture: the perception-distortion trade-off, which no training setting
removes), or in the coarse bands (colour, shading, repainted content: a map that has not
converged or is pulled by its critic, which settings can fix)?

Run::

    python benchmarks/claims_bands.py --out /work/claims_study \\
        --variants sigma25/l1 sigma25/ot_unpaired --json docs/claims/bands.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import markdown_table

#: Edges of the radial frequency bands, in cycles per pixel (0.5 is Nyquist on an axis; the
#: corners of the spectrum reach 0.71). Octaves, from shading to single-pixel detail.
EDGES = (0.0, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 0.75)


def band_labels(edges: Sequence[float] = EDGES) -> list[str]:
    """``"0-1/32"``-style names of the bands between ``edges``.

    Example:
        >>> band_labels((0.0, 1 / 32, 0.25, 0.75))
        ['0-1/32', '1/32-1/4', '1/4-max']
    """

    def name(f: float) -> str:
        return "0" if f == 0 else f"1/{round(1 / f)}"

    last = len(edges) - 2
    return [
        f"{name(lo)}-{'max' if i == last else name(hi)}"
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]


def radial_bands(height: int, width: int, edges: Sequence[float] = EDGES) -> Tensor:
    """``(len(edges) - 1, H, W)`` boolean masks of the FFT bins in each radial band."""
    fy = torch.fft.fftfreq(height).abs()[:, None]
    fx = torch.fft.fftfreq(width).abs()[None, :]
    radius = torch.sqrt(fy**2 + fx**2)
    masks = [(radius >= lo) & (radius < hi) for lo, hi in itertools.pairwise(edges)]
    return torch.stack(masks)


def band_split(restored: Tensor, clean: Tensor, edges: Sequence[float] = EDGES) -> dict[str, Any]:
    """The squared error of ``restored`` against ``clean`` per radial band, and each band's energy
    of ``restored`` over that of ``clean``. Images ``(C, H, W)`` or ``(1, C, H, W)`` in [0, 1].

    The bands' ``error`` values add up to the MSE of the two images (orthonormal FFT).

    Example:
        >>> clean = torch.rand(3, 32, 32)
        >>> noisy = clean + 0.1 * torch.randn(3, 32, 32)
        >>> split = band_split(noisy, clean)
        >>> abs(sum(split["error"]) - float((noisy - clean).pow(2).mean())) < 1e-6
        True
        >>> band_split(clean, clean)["power"] == [1.0] * (len(EDGES) - 1)
        True
    """
    restored, clean = restored.squeeze(0).double(), clean.squeeze(0).double()
    if restored.shape != clean.shape or restored.dim() != 3:
        raise ValueError(
            f"need two (C, H, W) images of one shape, got {restored.shape} and {clean.shape}"
        )
    masks = radial_bands(*clean.shape[-2:], edges).to(torch.float64)
    error = torch.fft.fft2(restored - clean, norm="ortho").abs().pow(2).sum(0)
    out_power = torch.fft.fft2(restored, norm="ortho").abs().pow(2).sum(0)
    clean_power = torch.fft.fft2(clean, norm="ortho").abs().pow(2).sum(0)
    n = clean.numel()
    return {
        "error": [float((error * m).sum()) / n for m in masks],
        "power": [float((out_power * m).sum() / (clean_power * m).sum()) for m in masks],
    }


def band_means(splits: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Band by band, the mean ``error`` and ``power`` of several :func:`band_split` results.

    Example:
        >>> band_means([{"error": [1.0, 2.0], "power": [1.0, 1.0]},
        ...             {"error": [3.0, 4.0], "power": [0.5, 1.5]}])
        {'error': [2.0, 3.0], 'power': [0.75, 1.25]}
    """
    return {
        field: [statistics.fmean(band) for band in zip(*(s[field] for s in splits), strict=True)]
        for field in ("error", "power")
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="a claims.py --out folder")
    parser.add_argument("--variants", nargs="+", required=True, help="claims.py variant keys")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from benchmarks.claims import VARIANTS, heldout, run_name
    from benchmarks.claims import parse_args as claims_args
    from rcot_lightning.checkpoints.load import load_module
    from rcot_lightning.hardware import cpu_summary

    args = parse_args(argv)
    torch.set_num_threads(1)
    unknown = [k for k in args.variants if k not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; claims.py has {sorted(VARIANTS)}")
    tasks = {VARIANTS[k].task for k in args.variants}
    scoring = claims_args(["--out", str(args.out)])  # claims.py's photos, no crop
    photos = {task: heldout(task, scoring) for task in tasks}
    labels = band_labels()
    report: dict[str, Any] = {"bands": labels, "edges": list(EDGES), "variants": {}}
    report["cpu"] = cpu_summary()
    report["inputs"] = {
        task: band_means([band_split(d.clamp(0, 1), c) for c, d in photos[task].values()])
        for task in sorted(tasks)
    }
    for key in args.variants:
        per_seed = {}
        for seed in args.seeds:
            name = run_name(key, seed)
            last = args.out / "runs" / name / "checkpoints" / "last.ckpt"
            # A run still training has a last.ckpt too: only finished runs (their JSON) count.
            if not (args.out / "runs" / f"{name}.json").is_file() or not last.is_file():
                print(f"{key} seed {seed}: not finished in {args.out}, skipped", file=sys.stderr)
                continue
            module = load_module(last)
            per_seed[str(seed)] = band_means(
                [
                    band_split(module.restore(degraded), clean)
                    for clean, degraded in photos[VARIANTS[key].task].values()
                ]
            )
        if not per_seed:
            continue
        report["variants"][key] = {
            "task": VARIANTS[key].task,
            "seeds": sorted(per_seed, key=int),
            "per_seed": per_seed,
            **band_means(list(per_seed.values())),
        }
        print(f"{key}: {len(per_seed)} seeds", file=sys.stderr, flush=True)
    report["markdown"] = markdown(report)
    print(report["markdown"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return report


def markdown(report: dict[str, Any]) -> str:
    """Two tables: the error per band (1e-4 MSE units) and the energy kept per band."""
    bands = [f"{b} c/px" for b in report["bands"]]
    rows = [(f"`{k}` input", v) for k, v in report.get("inputs", {}).items()]
    rows += [(f"`{k}` ({len(v['seeds'])} seeds)", v) for k, v in report["variants"].items()]
    lines = ["Error per band (MSE share, 1e-4; the total is the MSE):", ""]
    lines += markdown_table(
        ["run", *bands, "total"],
        (
            [name, *(f"{1e4 * e:.2f}" for e in row["error"]), f"{1e4 * sum(row['error']):.2f}"]
            for name, row in rows
        ),
    )
    lines += ["", "Energy per band, restored over clean (1 = kept):", ""]
    lines += markdown_table(
        ["run", *bands], ([name, *(f"{p:.2f}" for p in row["power"])] for name, row in rows)
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
