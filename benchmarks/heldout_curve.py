"""Held-out PSNR/SSIM of every checkpoint of a run: the learning curve on images no job sees.

Each ``*.ckpt`` under ``RUN/checkpoints`` (save them along the way with, e.g.,
``callbacks.model_checkpoint.every_n_train_steps=200 callbacks.model_checkpoint.save_top_k=-1``)
restores the held-out photos (:mod:`rcot_lightning.data.heldout`) with the same seeded noise as
``benchmarks/quality.py``; one JSON line per checkpoint, sorted by iteration, then a summary with
the noisy input's scores. The CPU time of training at each checkpoint comes from the checkpoint
itself when the run had a CPU budget (``callbacks.cpu_budget``, which stores the CPU seconds
spent); otherwise ``--cpu-log`` joins a file of ``<unix time> <CPU seconds>`` lines (the
training process's CPU time, sampled while it ran) at each checkpoint's modification time.

``--task`` scores a run of another task instead (``jpeg``, ``derain``, ``dehaze``, ``deblur``,
``lowlight``, ``sr``): every severity of ``benchmarks/tasks.py`` on the same inputs (seed 0),
restored as it restores them (tiles of 512), with the task's metric convention; each line then
holds the PSNR per severity and their mean, and the last checkpoint's figures are the ones
``tasks.py`` reports for it. That is the curve that says whether more CPU would close a gap.
``--task allinone`` scores an all-in-one run on every severity of six tasks (noise, JPEG as
libjpeg writes it, rain, haze, blur, low light) in one pass over its checkpoints.

Run::

    python benchmarks/heldout_curve.py RUN --sigma 25 [--cpu-log cpu.txt]
    python benchmarks/heldout_curve.py RUN --task dehaze
    python benchmarks/heldout_curve.py RUN --task allinone
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quality import noisy_photo
from rcot_lightning.callbacks.cpu_budget import CPUBudget
from rcot_lightning.checkpoints.load import load_module
from rcot_lightning.data.heldout import HELDOUT_PHOTOS
from rcot_lightning.hardware import cpu_summary
from rcot_lightning.metrics import psnr, ssim


def cpu_at(log: list[tuple[float, float]], when: float) -> float | None:
    """The CPU seconds sampled last before ``when`` (``None`` before the first sample).

    Example:
        >>> cpu_at([(10.0, 1.0), (20.0, 5.0)], 15.0)
        1.0
    """
    times = [t for t, _ in log]
    i = bisect.bisect_right(times, when) - 1
    return None if i < 0 else log[i][1]


def budget_cpu_seconds(ckpt: Path) -> float | None:
    """The training CPU seconds a checkpoint's :class:`~rcot_lightning.callbacks.CPUBudget`
    stored, or ``None`` when the run had none."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = checkpoint.get("callbacks", {}).get(CPUBudget.__qualname__)
    return None if state is None else float(state["spent_seconds"])


def checkpoint_curve(
    run: Path,
    photos: dict[str, tuple[torch.Tensor, torch.Tensor]],
    cpu_log: list[tuple[float, float]] | None = None,
    per_image: bool = False,
) -> list[dict[str, Any]]:
    """Held-out PSNR/SSIM (means over ``photos``: name -> (clean, degraded)) of every
    checkpoint in ``run/checkpoints``, sorted by iteration, with the CPU seconds of training
    at each (the checkpoint's CPU budget state, else ``cpu_log`` at its modification time).
    ``per_image``: each row also holds ``per_image_psnr`` (name -> PSNR)."""
    rows: list[dict[str, Any]] = []
    for ckpt in sorted((run / "checkpoints").glob("*.ckpt")):
        module = load_module(ckpt)
        scores: dict[str, list[float]] = {"psnr": [], "ssim": []}
        each = {}
        for name, (clean, degraded) in photos.items():
            restored = module.restore(degraded)
            each[name] = float(psnr(restored, clean)[0])
            scores["psnr"].append(each[name])
            scores["ssim"].append(float(ssim(restored, clean)[0]))
        cpu = budget_cpu_seconds(ckpt)
        if cpu is None and cpu_log:
            cpu = cpu_at(cpu_log, ckpt.stat().st_mtime)
        rows.append(
            {
                "checkpoint": ckpt.name,
                "iteration": module.iteration,
                "cpu_seconds": cpu,
                "psnr": statistics.fmean(scores["psnr"]),
                "ssim": statistics.fmean(scores["ssim"]),
                **({"per_image_psnr": each} if per_image else {}),
            }
        )
    rows.sort(key=lambda r: r["iteration"])
    return rows


ALLINONE_TASKS = ("denoise", "jpeg", "derain", "dehaze", "deblur", "lowlight")


def task_severities(task: str) -> list[tuple[str, str]]:
    """``(task, severity)`` pairs that ``task`` scores: its own severities, or for ``allinone``
    every severity of :data:`ALLINONE_TASKS` (JPEG as libjpeg writes it, as the all-in-one
    table and the claims study score it)."""
    from rcot_lightning.data.heldout_tasks import SEVERITIES

    if task != "allinone":
        return [(task, severity) for severity in SEVERITIES[task]]
    return [
        (name, severity)
        for name in ALLINONE_TASKS
        for severity in SEVERITIES[name]
        if name != "jpeg" or severity.endswith("_libjpeg")
    ]


def task_curve(
    run: Path, task: str, photos: Sequence[str], tile: int = 512, crop: int | None = None
) -> list[dict[str, Any]]:
    """Held-out PSNR per severity of ``task`` (``benchmarks/tasks.py``'s inputs and metric) and
    its mean over severities, for every checkpoint in ``run/checkpoints``, sorted by iteration;
    the first row (``checkpoint: null``) is the input's. ``crop``: a centre crop (tests).

    ``task="allinone"`` scores every severity of :data:`ALLINONE_TASKS` with each checkpoint
    loaded once: a row's ``tasks`` holds each task's ``psnr`` and ``severities``, and its
    ``psnr`` is the mean over tasks (each task weighing the same)."""
    from benchmarks.tasks import run_model, score
    from rcot_lightning.data.heldout import load_heldout
    from rcot_lightning.data.heldout_tasks import centre_crop, heldout_case, task_metric

    images = [centre_crop(load_heldout(n)[None], crop) for n in photos]
    cases = {
        (name, severity): [heldout_case(name, severity, image, i) for i, image in enumerate(images)]
        for name, severity in task_severities(task)
    }

    def one_task(by_severity: dict[str, float]) -> dict[str, Any]:
        return {
            "psnr": round(statistics.fmean(by_severity.values()), 3),
            "severities": {k: round(v, 3) for k, v in by_severity.items()},
        }

    def row(restore: Any) -> dict[str, Any]:
        per_task: dict[str, dict[str, float]] = {}
        for (name, severity), group in cases.items():
            metric = task_metric(name)
            per_task.setdefault(name, {})[severity] = statistics.fmean(
                score(restore(case.model_input), case.clean, metric)["psnr"] for case in group
            )
        if task != "allinone":
            return one_task(per_task[task])
        tasks = {name: one_task(values) for name, values in per_task.items()}
        mean = statistics.fmean(t["psnr"] for t in tasks.values())
        return {"psnr": round(mean, 3), "tasks": tasks}

    rows = [{"checkpoint": None, "iteration": 0, "cpu_seconds": 0.0, **row(lambda x: x)}]
    for ckpt in sorted((run / "checkpoints").glob("*.ckpt")):
        module = load_module(ckpt)
        net = module.map_for_inference.eval()
        info = {"checkpoint": ckpt.name, "iteration": module.iteration}
        restored = row(lambda x, net=net: run_model(net, x, tile))
        rows.append({**info, "cpu_seconds": budget_cpu_seconds(ckpt), **restored})
    rows[1:] = sorted(rows[1:], key=lambda r: r["iteration"])
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (holds checkpoints/)")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--photos", nargs="+", default=list(HELDOUT_PHOTOS))
    parser.add_argument("--cpu-log", type=Path, default=None)
    parser.add_argument(
        "--task",
        default="denoise",
        choices=["denoise", "jpeg", "derain", "dehaze", "deblur", "lowlight", "sr", "allinone"],
        help="denoise: --sigma's noise; another task: every severity of benchmarks/tasks.py; "
        "allinone: every severity of six tasks, each checkpoint loaded once",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.task != "denoise":
        rows = task_curve(args.run, args.task, args.photos)
        for row in rows:
            print(json.dumps(row))
        summary = {"task": args.task, "photos": args.photos, "seed": 0}
        print(json.dumps({**summary, "cpu": cpu_summary()}))
        return rows
    photos = {name: noisy_photo(name, args.sigma) for name in args.photos}
    cpu_log: list[tuple[float, float]] = []
    if args.cpu_log is not None:
        for line in args.cpu_log.read_text().split("\n"):
            if line.strip():
                t, c = line.split()[:2]
                cpu_log.append((float(t), float(c)))
    rows = checkpoint_curve(args.run, photos, cpu_log)
    noisy_psnr = statistics.fmean(
        float(psnr(noisy.clamp(0, 1), clean)[0]) for clean, noisy in photos.values()
    )
    for row in rows:
        row["gain_db"] = row["psnr"] - noisy_psnr
        print(json.dumps(row))
    summary = {"sigma": args.sigma, "photos": args.photos, "noisy_psnr": noisy_psnr}
    print(json.dumps({**summary, "cpu": cpu_summary()}))
    return rows


if __name__ == "__main__":
    main()
