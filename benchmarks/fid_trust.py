"""How far the random-feature FID can be trusted (issue 31, item 4), printed as JSON.

The claims study gives every claim a second verdict on the random-feature FID
(:class:`rcot_lightning.metrics.RandomFeatureDistances`: a fixed random conv net on 64x64
patches; no pretrained weights, so its values compare runs of this protocol only). Before that
verdict counts, three checks:

1. **Agreement with PSNR and SSIM over trained runs.** For every task of each ``--claims``
   JSON (``benchmarks/claims.py``'s output: every run's held-out PSNR, SSIM and FID), the
   Spearman rank correlation of FID with PSNR and with SSIM over the runs (variant x seed), and
   the share of run pairs the two order the same way (concordance; 1 - concordance is the share
   a verdict could flip on). A trustworthy distance correlates negatively with PSNR overall but
   may disagree on pairs close in PSNR: that is the perception-distortion trade-off, not noise.
   Also each claim's FID verdict: B − A of FID over shared seeds (positive: A lower), with its
   95 % interval.
2. **Ordering of known severities on held-out photos.** For each family with ordered severities
   (Gaussian noise sigma 5 to 50; saved JPEG files at quality 40, 20, 10; rain, haze and low light
   light to heavy; Gaussian and motion blur, each mild then strong), the FID of the degraded
   photos against the clean ones at each severity (the held-out inputs of
   ``benchmarks/tasks.py``), for ``--feature-seeds`` random networks: does it rise with the
   severity (Kendall tau of severity against FID, 1 = always), for every network?
3. **Restored against degraded.** For the bundled models (denoise-blind at sigma 25 and 50,
   derain-blind on medium rain, lowlight-blind on medium darkness), FID of the restored and of the
   degraded photos: a distance that can be trusted puts the restored ones closer, as PSNR does.

The spread over the random network's seed (coefficient of variation of each FID over
``--feature-seeds``) says how much of a difference is the metric's own noise.

Run::

    python benchmarks/fid_trust.py --claims docs/claims/claims.json --out docs/claims/fid_trust.json
    python benchmarks/fid_trust.py --claims docs/claims/claims.json --feature-seeds 0 \
        --photos china --skip-restored                                          # quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Target, paired_difference, verdict
from rcot_lightning import hardware
from rcot_lightning.metrics import psnr
from rcot_lightning.metrics.distribution import RandomFeatureDistances


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank.

    Example:
        >>> ranks([3.0, 1.0, 3.0, 2.0])
        [3.5, 1.0, 3.5, 2.0]
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson of the ranks); None for fewer than 3 points.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3, 4], [4, 3, 2, 1])
        (1.0, -1.0)
    """
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else None


def kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-a: (concordant - discordant pairs) / all pairs; None for fewer than 2.

    Example:
        >>> kendall([1, 2, 3], [1, 3, 2])
        0.3333333333333333
    """
    pairs = list(combinations(range(len(x)), 2))
    if not pairs:
        return None
    sign = [((x[i] > x[j]) - (x[i] < x[j])) * ((y[i] > y[j]) - (y[i] < y[j])) for i, j in pairs]
    return sum(sign) / len(pairs)


def agreement(path: Path) -> dict[str, Any]:
    """Check 1 for one claims JSON: FID against PSNR/SSIM per task, and every claim's FID
    verdict."""
    report = json.loads(path.read_text())
    runs: dict[str, list[dict[str, Any]]] = {}
    for by_seed in report["results"].values():
        for r in by_seed.values():
            if r.get("fid") is not None:
                runs.setdefault(r["task"], []).append(r)
    tasks = {}
    for task, rows in runs.items():
        fid = [r["fid"] for r in rows]
        # PSNR higher is better, FID lower: agreement is a negative rank correlation, so the
        # concordance counts pairs where the higher PSNR has the lower FID.
        tau = kendall([-f for f in fid], [r["psnr"] for r in rows])
        means: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            means.setdefault(r["key"], []).append(r)
        variant_fid = [statistics.fmean(x["fid"] for x in v) for v in means.values()]
        variant_psnr = [statistics.fmean(x["psnr"] for x in v) for v in means.values()]
        tasks[task] = {
            "runs": len(rows),
            "spearman_fid_psnr": spearman(fid, [r["psnr"] for r in rows]),
            "spearman_fid_ssim": spearman(fid, [r["ssim"] for r in rows]),
            "concordance_with_psnr": None if tau is None else (1 + tau) / 2,
            "variants": len(means),
            "spearman_fid_psnr_variant_means": spearman(variant_fid, variant_psnr),
        }
    target = Target("at_least", 0.0)
    claims = []
    for row in report.get("claims", []):
        a, b = report["results"].get(row["a"], {}), report["results"].get(row["b"], {})
        gain = paired_difference(
            {s: r["fid"] for s, r in b.items() if r.get("fid") is not None},
            {s: r["fid"] for s, r in a.items() if r.get("fid") is not None},
        )
        psnr_diff = row["psnr_diff"]
        claims.append(
            {
                "id": row["id"],
                "a": row["a"],
                "b": row["b"],
                "psnr_diff": {k: psnr_diff.get(k) for k in ("mean", "lo", "hi", "n")},
                "psnr_verdict": row["verdict"],
                "fid_gain": {k: gain.get(k) for k in ("mean", "lo", "hi", "n")},
                "fid_verdict": "not run"
                if gain["n"] == 0
                else verdict(gain["lo"], gain["hi"], target),
            }
        )
    return {"file": str(path), "tasks": tasks, "claims": claims}


def fid(restored: dict[str, Tensor], clean: dict[str, Tensor], seed: int) -> float:
    distances = RandomFeatureDistances(seed=seed)
    for name in restored:
        distances.update(restored[name].clamp(0, 1), clean[name])
    return float(distances.compute()["fid"])


#: Check 2's families: (task of heldout_tasks.SEVERITIES, its severities mildest first).
ORDERED = {
    "jpeg (saved files)": ("jpeg", ("q40_libjpeg", "q20_libjpeg", "q10_libjpeg")),
    "rain": ("derain", ("light", "medium", "heavy")),
    "haze": ("dehaze", ("light", "medium", "heavy")),
    "low light": ("lowlight", ("mild", "medium", "severe")),
    "gaussian blur": ("deblur", ("gauss1_n1", "gauss2.5_n2")),
    "motion blur": ("deblur", ("motion9_n1", "motion15_n2")),
}
NOISE_SIGMAS = (5.0, 10.0, 15.0, 25.0, 50.0)


def severity_order(photos: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Check 2: FID of degraded against clean per severity, per feature seed."""
    from rcot_lightning.data.degradations import GaussianNoise
    from rcot_lightning.data.heldout import load_heldout
    from rcot_lightning.data.heldout_tasks import heldout_case, noise_seed

    clean = {n: load_heldout(n)[None] for n in photos}
    families: dict[str, dict[str, dict[str, Tensor]]] = {"gaussian noise": {}}
    for sigma in NOISE_SIGMAS:
        noise = GaussianNoise(sigma=sigma)
        families["gaussian noise"][f"sigma{sigma:g}"] = {
            n: noise(c, torch.Generator().manual_seed(noise_seed(0, sigma, i)))
            for i, (n, c) in enumerate(clean.items())
        }
    for family, (task, severities) in ORDERED.items():
        families[family] = {}
        for severity in severities:
            families[family][severity] = {
                n: heldout_case(task, severity, c, i).degraded
                for i, (n, c) in enumerate(clean.items())
            }
    out = {}
    for family, levels in families.items():
        table = {level: [fid(images, clean, s) for s in seeds] for level, images in levels.items()}
        taus = [
            kendall(list(range(len(table))), [v[k] for v in table.values()])
            for k in range(len(seeds))
        ]
        out[family] = {
            "fid_per_seed": table,
            "psnr": {
                level: statistics.fmean(float(psnr(images[n], clean[n])[0]) for n in photos)
                for level, images in levels.items()
            },
            "kendall_per_seed": taus,
            "rises_for_every_seed": all(t == 1.0 for t in taus),
            "cv": {level: _cv(v) for level, v in table.items()},
        }
    return out


def _cv(values: Sequence[float]) -> float | None:
    if len(values) < 2 or not statistics.fmean(values):
        return None
    return statistics.stdev(values) / statistics.fmean(values)


def restored_against_degraded(photos: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Check 3: the bundled maps' outputs against their inputs, FID and PSNR."""
    from rcot_lightning.data.heldout import load_heldout
    from rcot_lightning.data.heldout_tasks import heldout_case
    from rcot_lightning.inference import restore_image
    from rcot_lightning.pretrained import load

    clean = {n: load_heldout(n)[None] for n in photos}
    cases = {  # label -> (bundled model, the benchmarks' held-out inputs)
        label: (
            model,
            {
                n: heldout_case(task, severity, c, i).degraded
                for i, (n, c) in enumerate(clean.items())
            },
        )
        for label, model, task, severity in (
            ("denoise-blind, sigma 25", "denoise-blind", "denoise", "sigma25"),
            ("denoise-blind, sigma 50", "denoise-blind", "denoise", "sigma50"),
            ("derain-blind, derain medium", "derain-blind", "derain", "medium"),
            ("lowlight-blind, lowlight medium", "lowlight-blind", "lowlight", "medium"),
        )
    }
    out = {}
    nets: dict[str, Any] = {}
    for label, (model, degraded) in cases.items():
        net = nets.setdefault(model, load(model))
        with torch.no_grad():
            restored = {n: restore_image(net, d, tile=512).clamp(0, 1) for n, d in degraded.items()}
        fids = {
            side: [fid(images, clean, s) for s in seeds]
            for side, images in (("degraded", degraded), ("restored", restored))
        }
        row: dict[str, Any] = {
            side: {
                "fid_per_seed": fids[side],
                "psnr": statistics.fmean(float(psnr(images[n], clean[n])[0]) for n in photos),
            }
            for side, images in (("degraded", degraded), ("restored", restored))
        }
        row["restored_closer_for_every_seed"] = all(
            r < d for r, d in zip(fids["restored"], fids["degraded"], strict=True)
        )
        out[label] = row
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from rcot_lightning.data.heldout import HELDOUT_PHOTOS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", type=Path, nargs="*", default=[], help="claims.py JSONs")
    parser.add_argument("--feature-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--photos", nargs="+", default=list(HELDOUT_PHOTOS))
    parser.add_argument("--skip-restored", action="store_true", help="no check 3")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "fid_trust",
        "metric": "RandomFeatureDistances (64x64 patches, stride 32; the claims study's FID)",
        "photos": args.photos,
        "feature_seeds": args.feature_seeds,
        "agreement": [agreement(p) for p in args.claims],
        "severity_order": severity_order(args.photos, args.feature_seeds),
    }
    if not args.skip_restored:
        report["restored"] = restored_against_degraded(args.photos, args.feature_seeds)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["cpu"] = hardware.cpu_summary()
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
