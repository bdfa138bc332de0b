"""Is the training loader the bottleneck? Loader items/s next to the small model's iteration rate.

Measures, in one process run (timings vary +-15% between runs, so compare the ratio):

* items/s of the default training loader (the embedded photos, GaussianNoise(25) unless
  ``--degradation`` names another registered degradation; patch 128, batch 8) with 0 and 2
  workers, after a warm-up batch (worker start-up is reported separately);
* iterations/s of one forward + backward of the ``small`` TwoPassMap and Potential on a batch of
  the same shape (a potential step and a map step, without the gradient penalty's double
  backward, so this is an upper bound on the model's rate and the ratio is conservative);
* ``loader_margin`` = loader items/s / (model iterations/s x batch): above 1 the loader keeps up.

Prints one JSON object. Example::

    python benchmarks/loader_throughput.py --batches 20
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

from rcot_lightning.data.datamodules import SamplesDataModule
from rcot_lightning.data.degradations import build_degradation
from rcot_lightning.hardware import cpu_summary


def loader_rate(
    workers: int, patch: int, batch: int, batches: int, degradation: str
) -> dict[str, float]:
    dm = SamplesDataModule(
        degradation=build_degradation(degradation),
        batch_size=batch,
        samples_per_epoch=batch * (batches + 1),
        crops={"patch_size": patch},
        loader={"num_workers": workers},
    )
    dm.setup("fit")
    start = time.perf_counter()
    iterator = iter(dm.train_dataloader())
    next(iterator)  # warm-up: photos decoded, workers started
    first = time.perf_counter()
    count = sum(b["degraded"].shape[0] for b in iterator)
    end = time.perf_counter()
    return {
        "items_per_s": count / (end - first),
        "first_batch_s": first - start,
        "items": count,
    }


def model_rate(patch: int, batch: int, iters: int, device: str) -> dict[str, Any] | None:
    try:
        from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
        from rcot_lightning.nets import Potential, TwoPassMap
    except ImportError as err:  # nets is built by another part of the project
        return {"skipped": f"rcot_lightning.nets unavailable: {err}"}
    transport_map = TwoPassMap(**MAP_PRESETS["small"]).to(device)
    potential = Potential(**POTENTIAL_PRESETS["small"]).to(device)
    params = list(transport_map.parameters()) + list(potential.parameters())
    y = torch.rand(batch, 3, patch, patch, device=device)
    x = torch.rand(batch, 3, patch, patch, device=device)

    def step() -> None:
        out = transport_map(y)
        loss = potential(x).mean() - potential(out).mean() + (out - y).pow(2).mean()
        for p in params:
            p.grad = None
        loss.backward()

    step()  # warm-up (allocator, kernels)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {"iters_per_s": iters / elapsed, "iters": iters, "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per loader")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--model-iters", type=int, default=5)
    parser.add_argument("--degradation", default="noise", help="a registry name, e.g. rain, jpeg")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    result: dict[str, Any] = {
        "benchmark": "loader_throughput",
        "patch": args.patch,
        "batch": args.batch,
        "degradation": args.degradation,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "cpu": cpu_summary(),
        "torch": torch.__version__,
        "loader": {
            f"workers_{w}": loader_rate(w, args.patch, args.batch, args.batches, args.degradation)
            for w in args.workers
        },
    }
    model = model_rate(args.patch, args.batch, args.model_iters, args.device)
    result["model_small"] = model
    if model and "iters_per_s" in model:
        needed = model["iters_per_s"] * args.batch
        result["model_items_per_s"] = needed
        result["loader_margin"] = {
            name: rate["items_per_s"] / needed for name, rate in result["loader"].items()
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
