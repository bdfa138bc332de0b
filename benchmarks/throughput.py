"""Training iterations/s: RCOT's iteration against a reference-style one, and bf16 against fp32.

Three variants of one training iteration run side by side in one process, on the same networks
(same initial weights), the same batch and the same thread count, with their timed repetitions
interleaved (the order rotates every repetition) and the median over repetitions reported.
Timings on a shared CPU vary by about +-15% run to run, so read the ratios, not the rates:

* ``ours``: the algorithm of ``RCOTModule.training_step`` — ``T(y)`` once; one potential step
  whose loss holds the WGAN loss and ``lambda_gp * GP`` (one backward, one optimizer step); one
  map step that reuses the same ``T(y)`` graph.
* ``reference``: the iteration as the authors' script runs it (RCOT reference notes §2, defect
  2): ``T(y)`` for the potential, one potential step on the WGAN loss, a *second* potential step
  on the penalty alone, then ``T(y)`` computed again for the map step. Its first ``T(y)`` runs
  under ``no_grad`` — cheaper than a script that builds a graph it then detaches, so the
  measured speed-up is a lower bound.
* ``ours_bf16``: ``ours`` under ``torch.autocast(dtype=torch.bfloat16)`` (what Lightning's
  ``bf16-mixed`` does around a manual-optimisation ``training_step``).

Both algorithm variants are driven directly — the objective functions of
:mod:`rcot_lightning.objective` and the optimizers called in the order of ``module.py``, with the
same optimizer toggling — so nothing but the algorithm differs. ``ours_lightning`` (skip with
``--no-lightning``) times the real ``RCOTModule.training_step`` under a ``Trainer`` for a fixed
number of steps, to show what the framework adds to ``ours``.

The JSON also holds the potential's parameter count against the reference's patch-sized one
(from ``benchmarks/param_counts.py``).

Run::

    python benchmarks/throughput.py                      # small preset, batch 8, patch 64
    python benchmarks/throughput.py --preset tiny --repeats 2 --iters 2
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import logging
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from rcot_lightning.contract import CLEAN, DEGRADATION, DEGRADED
from rcot_lightning.data.datamodules import SamplesDataModule
from rcot_lightning.nets import MAP_PRESETS, POTENTIAL_PRESETS, Potential, TwoPassMap
from rcot_lightning.objective import FROTObjective, gradient_penalty

#: (batch, patch) per preset: the paper's recipe (meant for a GPU), the default job, tests.
PRESET_SIZES = {"paper": (3, 128), "small": (8, 64), "tiny": (2, 32)}
#: The module's default objective; both variants compute their losses through it.
OBJECTIVE = FROTObjective()
LAMBDA_GP = OBJECTIVE.lambda_gp


@dataclass
class Setup:
    """One variant's own networks and optimizers (all variants start from the same weights)."""

    transport_map: nn.Module
    potential: nn.Module
    opt_map: torch.optim.Optimizer
    opt_potential: torch.optim.Optimizer


def build_setup(tmap: nn.Module, phi: nn.Module) -> Setup:
    tmap, phi = copy.deepcopy(tmap), copy.deepcopy(phi)
    # RMSprop at the paper's learning rates, as RCOTModule's default optimizers.
    return Setup(
        tmap,
        phi,
        torch.optim.RMSprop(tmap.parameters(), lr=5e-5),
        torch.optim.RMSprop(phi.parameters(), lr=1e-4),
    )


def train_only(active: nn.Module, frozen: nn.Module) -> None:
    """What Lightning's ``toggle_optimizer`` does: the other network gets no weight gradients."""
    frozen.requires_grad_(False)
    active.requires_grad_(True)


def map_step(s: Setup, y: Tensor, restored: Tensor, ids: Tensor) -> None:
    """The map update on a given ``T(y)`` graph; identical in both algorithms."""
    train_only(s.transport_map, s.potential)
    loss, _ = OBJECTIVE.map_loss(y, restored, s.potential(restored), degradation=ids)
    s.opt_map.zero_grad()
    loss.backward()
    s.opt_map.step()


def ours_iteration(s: Setup, y: Tensor, x: Tensor, ids: Tensor, alpha: Tensor) -> None:
    """RCOTModule.training_step with n_critic = 1: T(y) once, the penalty in the one phi step."""
    restored = s.transport_map(y)
    train_only(s.potential, s.transport_map)
    loss, _ = OBJECTIVE.potential_loss(s.potential, x, restored.detach(), alpha)
    s.opt_potential.zero_grad()
    loss.backward()
    s.opt_potential.step()
    map_step(s, y, restored, ids)


def reference_iteration(s: Setup, y: Tensor, x: Tensor, ids: Tensor, alpha: Tensor) -> None:
    """The reference script's order: two phi steps (loss, then penalty), T(y) computed twice."""
    with torch.no_grad():
        fake = s.transport_map(y)
    train_only(s.potential, s.transport_map)
    wgan = s.potential(fake).mean() - s.potential(x).mean()
    s.opt_potential.zero_grad()
    wgan.backward()
    s.opt_potential.step()
    penalty = LAMBDA_GP * gradient_penalty(s.potential, x, fake, alpha)
    s.opt_potential.zero_grad()
    penalty.backward()
    s.opt_potential.step()
    train_only(s.transport_map, s.potential)
    restored = s.transport_map(y)  # recomputed for the map step
    map_step(s, y, restored, ids)


def one_batch(batch: int, patch: int) -> dict[str, Tensor]:
    """One training batch of the default data (noisy crops of the sample photos)."""
    dm = SamplesDataModule(batch_size=batch, patch_size=patch, samples_per_epoch=batch)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def direct_timer(
    step: Callable[..., None],
    s: Setup,
    batch: dict[str, Tensor],
    autocast: bool,
    device: torch.device,
) -> Callable[[int], float]:
    """A function running ``n`` iterations and returning their seconds per iteration."""
    y, x = batch[DEGRADED], batch[CLEAN]
    ids = batch[DEGRADATION].to(device)
    OBJECTIVE.to(device)
    generator = torch.Generator().manual_seed(0)

    def run(n: int) -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(n):
            alpha = torch.rand(y.shape[0], generator=generator).to(device)
            context: AbstractContextManager[Any] = (
                torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext()
            )
            with context:
                step(s, y, x, ids, alpha)
        _sync(device)
        return (time.perf_counter() - start) / n

    return run


def lightning_timer(
    tmap: nn.Module, phi: nn.Module, batch: dict[str, Tensor], device: torch.device
) -> Callable[[int], float]:
    """Seconds per iteration of the real RCOTModule.training_step under a Trainer.

    Each call fits a fresh Trainer for one warm-up iteration plus ``n`` timed ones on the same
    module; the clock runs from the start of the first timed batch to the end of the last, so
    the Trainer's set-up and tear-down are excluded.
    """
    import lightning as L

    from rcot_lightning.module import RCOTModule

    # The Trainer's start-up banners would bury the JSON in the terminal.
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")

    module = RCOTModule(copy.deepcopy(tmap), copy.deepcopy(phi))

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.end = 0.0

        def on_train_batch_start(self, *args: Any) -> None:
            _sync(device)
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, *args: Any) -> None:
            _sync(device)
            self.end = time.perf_counter()

    def batches(n: int) -> DataLoader[Any]:
        # The same ready batch n times (batch_size=None: no collation), so the loader costs
        # nothing, as in the direct variants. A list is a valid map-style dataset.
        return DataLoader([batch] * n, batch_size=None)  # type: ignore[arg-type]

    def run(n: int) -> float:
        clock = Clock()
        trainer = L.Trainer(
            accelerator=device.type,
            devices=1,
            max_steps=2 * (n + 1),  # two optimizer steps per iteration
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[clock],
        )
        trainer.fit(module, train_dataloaders=batches(n + 1))
        return (clock.end - clock.starts[1]) / n

    return run


def measure(
    timers: dict[str, Callable[[int], float]], repeats: int, iters: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """Interleaved repetitions; the order rotates so no variant always runs first."""
    for run in timers.values():
        run(warmup)
    names = list(timers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(timers[name](iters))
    return {
        name: {
            "iters_per_s": 1.0 / statistics.median(times),
            "s_per_iter_median": statistics.median(times),
            "s_per_iter_all": times,
        }
        for name, times in samples.items()
    }


def potential_params() -> dict[str, Any]:
    """Our size-agnostic potential's parameter count against the reference's patch-sized one."""
    with torch.device("meta"):
        phi = Potential(**POTENTIAL_PRESETS["paper"])
    ours = sum(p.numel() for p in phi.parameters())
    path = Path(__file__).with_name("param_counts.py")
    spec = importlib.util.spec_from_file_location("param_counts", path)
    assert spec is not None and spec.loader is not None
    param_counts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(param_counts)
    reference = param_counts.REFERENCE["potential"]
    last = POTENTIAL_PRESETS["paper"]["channels"][-1]
    rows = {}
    for size in (64, 128, 256):
        # A Linear head on flattened features has in_features = C * (size / 2**n_down)**2: it
        # grows with the patch area, and the reference's hidden Linear layers on top of it.
        side = size // 2**phi.num_downsamplings
        rows[f"{size}px"] = {
            "reference": reference[f"{size}px"],
            "ours": ours,
            "reference_over_ours": reference[f"{size}px"] / ours,
            "flattened_features_of_a_patch_sized_head": last * side * side,
        }
    return {"preset": "paper", "source": "benchmarks/param_counts.py (reference)", **rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESET_SIZES), default="small")
    parser.add_argument("--batch", type=int, help="default: per preset (paper 3, small 8)")
    parser.add_argument("--patch", type=int, help="default: per preset (paper 128, small 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--iters", type=int, default=3, help="iterations per repetition")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-lightning", action="store_true", help="skip the Trainer variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    default_batch, default_patch = PRESET_SIZES[args.preset]
    batch_size = args.batch or default_batch
    patch = args.patch or default_patch
    device = torch.device(args.device)

    torch.manual_seed(args.seed)
    tmap = TwoPassMap(**MAP_PRESETS[args.preset]).to(device)
    phi = Potential(**POTENTIAL_PRESETS[args.preset]).to(device)
    batch = {k: v.to(device) for k, v in one_batch(batch_size, patch).items()}

    timers = {
        "ours": direct_timer(ours_iteration, build_setup(tmap, phi), batch, False, device),
        "reference": direct_timer(
            reference_iteration, build_setup(tmap, phi), batch, False, device
        ),
        "ours_bf16": direct_timer(ours_iteration, build_setup(tmap, phi), batch, True, device),
    }
    if not args.no_lightning:
        timers["ours_lightning"] = lightning_timer(tmap, phi, batch, device)
    rates = measure(timers, args.repeats, args.iters, args.warmup)

    def ratio(a: str, b: str) -> float | None:
        """Median over repetitions of the rate ratio a / b within each repetition.

        The two variants of a repetition ran back to back, so a change of machine load between
        repetitions cancels out of each repetition's ratio.
        """
        if a not in rates or b not in rates:
            return None
        pairs = zip(rates[b]["s_per_iter_all"], rates[a]["s_per_iter_all"], strict=True)
        return statistics.median(tb / ta for tb, ta in pairs)

    result: dict[str, Any] = {
        "benchmark": "throughput",
        "method": (
            "direct: objective functions and optimizers called as in RCOTModule.training_step "
            "(no Trainer) for ours, reference and ours_bf16; ours_lightning: the real "
            "training_step under a Trainer, timed between batch hooks"
        ),
        "preset": args.preset,
        "batch": batch_size,
        "patch": patch,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "repeats": args.repeats,
        "iters_per_repeat": args.iters,
        "statistic": (
            "rates: median over interleaved repetitions; ratios: median of per-repetition ratios"
        ),
        "rates": rates,
        "ratios": {
            "ours_over_reference": ratio("ours", "reference"),
            "bf16_over_fp32": ratio("ours_bf16", "ours"),
            "lightning_over_direct": ratio("ours_lightning", "ours"),
        },
        "potential_params": potential_params(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "note": "timings vary about +-15% run to run on a shared CPU; compare the ratios",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
