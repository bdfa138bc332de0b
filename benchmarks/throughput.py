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
* ``authors``: ``reference`` with the authors' potential head as well: the same convolutional
  trunk, then a Linear head on the *flattened* features sized by the training patch
  (``512 * (patch / 32)**2 -> 2048 -> 64 -> 1`` at paper size), which is what their loop trains.
* ``ours_bf16``: ``ours`` under ``torch.autocast(dtype=torch.bfloat16)`` (what Lightning's
  ``bf16-mixed`` does around a manual-optimisation ``training_step``).
* CPU settings, each on top of ``ours`` alone so that each is measured by itself:
  ``ours_foreach`` (RMSprop with ``foreach=True``: one multi-tensor kernel per step instead of a
  Python loop over ~400 parameters), ``ours_channels_last`` (networks and batch in
  ``torch.channels_last``), ``ours_compile`` (``torch.compile`` of ``T``, as
  ``model.compile_map``), ``ours_checkpointing`` (``TwoPassMap(checkpointing=True)``: what
  activation checkpointing costs in time), and ``ours_best``: the settings of ``--best`` together.

Both algorithm variants are driven directly — the objective functions of
:mod:`rcot_lightning.objective` and the optimizers called in the order of ``module.py``, with the
same optimizer toggling — so nothing but the algorithm differs. ``ours_lightning`` (skip with
``--no-lightning``) times the real ``RCOTModule.training_step`` under a ``Trainer`` for a fixed
number of steps, to show what the framework adds to ``ours``.

With ``--flops`` the JSON also holds the floating-point operations of one iteration of ``ours``
and ``authors`` (``torch.utils.flop_counter.FlopCounterMode``: matmuls and convolutions, forward
and backward), this machine's matmul peak measured in the same process at the same thread count
(a square ``torch.mm`` of up to 2048, fp32 and bf16, smaller where one product would take
seconds; ``matmul_peak_size`` says which), and each variant's achieved FLOP/s as a fraction of
that peak (bf16 variants against the bf16 peak).

The JSON also holds the potential's parameter count against the reference's patch-sized one
(from ``benchmarks/param_counts.py``).

Run::

    python benchmarks/throughput.py                      # small preset, batch 8, patch 64
    python benchmarks/throughput.py --preset tiny --repeats 2 --iters 2
    python benchmarks/throughput.py --preset paper --batch 2 --patch 64 --threads 2 \
        --variants authors ours ours_best ours_lightning ours_lightning_best --flops
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import math
import os
import platform
import statistics
import sys
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
from torch.utils.flop_counter import FlopCounterMode

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.param_counts import REFERENCE
from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
from rcot_lightning.contract import CLEAN, DEGRADATION, DEGRADED
from rcot_lightning.data.datamodules import SamplesDataModule
from rcot_lightning.hardware import cpu_line, cpu_summary
from rcot_lightning.nets import Potential, TwoPassMap
from rcot_lightning.nets.restormer import set_checkpointing
from rcot_lightning.objective import FROTObjective, gradient_penalty

#: (batch, patch) per preset: the paper's recipe (meant for a GPU), the default job, tests.
PRESET_SIZES = {"paper": (3, 128), "small": (8, 64), "tiny": (2, 32)}
#: The module's default objective; both variants compute their losses through it.
OBJECTIVE = FROTObjective()
LAMBDA_GP = OBJECTIVE.lambda_gp


#: The CPU settings a variant can switch on (``--best`` picks a set of them).
SETTINGS = ("bf16", "foreach", "channels_last", "compile", "checkpointing")
#: The settings shipped in ``conf/hardware/cpu_fast.yaml``: those that won on this CPU.
DEFAULT_BEST = ("bf16",)


@dataclass
class Setup:
    """One variant's own networks and optimizers (all variants start from the same weights).

    ``transport_map`` is what the iteration calls: a ``torch.compile`` wrapper when compiled.
    """

    transport_map: nn.Module
    potential: nn.Module
    opt_map: torch.optim.Optimizer
    opt_potential: torch.optim.Optimizer


class AuthorsPotential(nn.Module):
    """The authors' potential: our trunk, then a Linear head on flattened features.

    The head's input size is ``C * (patch / 2**n_down)**2``, so it exists for one patch size only
    (``512 * (patch / 32)**2 -> 2048 -> 64 -> 1`` at paper size, LeakyReLU(0.2) between).

    Shape:
        ``(B, 3, patch, patch) -> (B,)``.
    """

    def __init__(self, phi: Potential, patch: int) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(phi.trunk)
        side = -(-patch // 2**phi.num_downsamplings)
        width = phi.head.in_features * side * side
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width, 2048),
            nn.LeakyReLU(0.2),
            nn.Linear(2048, 64),
            nn.LeakyReLU(0.2),
            nn.Linear(64, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x)).squeeze(-1)


def build_setup(
    tmap: nn.Module,
    phi: nn.Module,
    *,
    foreach: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    checkpointing: bool = False,
) -> Setup:
    tmap, phi = copy.deepcopy(tmap), copy.deepcopy(phi)
    if checkpointing:
        set_checkpointing(tmap, True)
    if channels_last:
        tmap.to(memory_format=torch.channels_last)
        phi.to(memory_format=torch.channels_last)
    # RMSprop at the paper's learning rates, as RCOTModule's default optimizers.
    opt_map = torch.optim.RMSprop(tmap.parameters(), lr=5e-5, foreach=foreach)
    opt_potential = torch.optim.RMSprop(phi.parameters(), lr=1e-4, foreach=foreach)
    called = torch.compile(tmap) if compile else tmap
    return Setup(called, phi, opt_map, opt_potential)  # type: ignore[arg-type]


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
    dm = SamplesDataModule(batch_size=batch, crops={"patch_size": patch}, samples_per_epoch=batch)
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
    channels_last: bool = False,
) -> Callable[[int], float]:
    """A function running ``n`` iterations and returning their seconds per iteration."""
    y, x = batch[DEGRADED], batch[CLEAN]
    if channels_last:
        y, x = (t.contiguous(memory_format=torch.channels_last) for t in (y, x))
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
    tmap: nn.Module,
    phi: nn.Module,
    batch: dict[str, Tensor],
    device: torch.device,
    settings: tuple[str, ...] = (),
) -> Callable[[int], float]:
    """Seconds per iteration of the real RCOTModule.training_step under a Trainer.

    ``settings`` are applied as a user would through the configs: ``bf16`` as
    ``trainer.precision=bf16-mixed``, ``foreach`` as ``foreach: true`` in both optimizer
    factories, ``compile`` as ``model.compile_map``, ``checkpointing`` as
    ``model.transport_map.checkpointing``, ``fp16`` as ``trainer.precision=16-mixed`` (loss
    scaling by Lightning's GradScaler; CUDA). ``channels_last`` has no config key: refused.

    Each call fits a fresh Trainer for one warm-up iteration plus ``n`` timed ones on the same
    module; the clock runs from the start of the first timed batch to the end of the last, so
    the Trainer's set-up and tear-down are excluded.
    """
    import lightning as L

    from rcot_lightning.module import RCOTModule

    # The Trainer's start-up banners would bury the JSON in the terminal.
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")

    if "channels_last" in settings:
        raise SystemExit("throughput.py: channels_last has no RCOTModule setting to time")
    precision = "bf16-mixed" if "bf16" in settings else "32-true"
    precision = "16-mixed" if "fp16" in settings else precision
    foreach = "foreach" in settings
    tmap = copy.deepcopy(tmap)
    if "checkpointing" in settings:
        set_checkpointing(tmap, True)
    module = RCOTModule(
        tmap,
        copy.deepcopy(phi),
        map_optimizer=functools.partial(torch.optim.RMSprop, lr=5e-5, foreach=foreach),
        potential_optimizer=functools.partial(torch.optim.RMSprop, lr=1e-4, foreach=foreach),
        compile_map="compile" in settings,
    )

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
            precision=precision,
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
        if warmup > 0:
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
    reference = REFERENCE["potential"]
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


def variant_settings(name: str, best: tuple[str, ...]) -> tuple[str, ...]:
    """The CPU settings of a variant name (``ours_bf16`` -> ``("bf16",)``)."""
    suffix = name.removeprefix("ours").removeprefix("_lightning").removeprefix("_")
    if suffix == "best":
        return best
    return (suffix,) if suffix else ()


#: Every variant --variants accepts; DEFAULT_VARIANTS are timed when it is not given.
VARIANTS = (
    "ours",
    "reference",
    "authors",
    *(f"ours_{s}" for s in (*SETTINGS, "best")),
    "ours_lightning",
    "ours_lightning_bf16",
    "ours_lightning_fp16",  # 16-mixed: a CUDA setting (GradScaler), for benchmarks/gpu.sh
    "ours_lightning_best",
)
DEFAULT_VARIANTS = ("ours", "reference", "ours_bf16", "ours_lightning")


class _GlobalOnly:
    """A stand-in for FlopCounterMode's module tracker that attributes everything to Global."""

    parents = frozenset({"Global"})

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _conv_backward_flops(
    grad_out_shape: list[int],
    x_shape: list[int],
    w_shape: list[int],
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of ``aten.convolution_backward`` (non-transposed), ``groups`` respected."""
    output_mask = args[7]  # bias, stride, padding, dilation, transposed, out_pad, groups, mask
    forward = 2 * math.prod(grad_out_shape) * math.prod(w_shape[1:])
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def iteration_flops(step: Callable[..., None], s: Setup, batch: dict[str, Tensor]) -> int:
    """Floating-point operations of one iteration (matmuls and convolutions, fwd + bwd).

    Counted on a copy so that the timed variant's weights and optimizer state are untouched.
    """
    y, x = batch[DEGRADED], batch[CLEAN]
    ids = batch[DEGRADATION]
    s = copy.deepcopy(s)
    alpha = torch.rand(y.shape[0], generator=torch.Generator().manual_seed(0)).to(y.device)
    # torch's formula for convolution_backward ignores `groups` and counts a depth-wise conv's
    # backward as if it were dense (12x the forward for the small map); count it as what it
    # is: the forward's multiply-adds once per gradient asked for (input, weight).
    counter = FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops}
    )
    # Its per-module tracker puts hooks on every module's backward, which autograd.grad (the
    # gradient penalty) refuses; only the global total is needed, so track no modules.
    counter.mod_tracker = _GlobalOnly()  # type: ignore[assignment]
    with counter:
        step(s, y, x, ids, alpha)
    return int(counter.get_total_flops())


def matmul_peak(
    device: torch.device, dtype: torch.dtype, size: int = 2048, budget_s: float = 0.25
) -> tuple[float, int]:
    """Best-of-5 FLOP/s of a square ``torch.mm`` at the current thread count, and its size.

    The square grows from 256 by doubling up to ``size`` while one product takes under
    ``budget_s``: a CPU without native bf16 arithmetic emulates it about 300x slower than fp32
    (a 2048 bf16 product took 59 s on an AVX2 EPYC), and a smaller square still finds that
    rate.
    """
    generator = torch.Generator().manual_seed(0)
    side = min(256, size)
    while True:
        a, b = (torch.rand(side, side, generator=generator).to(device, dtype) for _ in range(2))
        torch.mm(a, b)
        best = float("inf")
        for _ in range(5):
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - start)
            if best > budget_s:  # too slow to repeat: one timing says enough
                break
        if side >= size or best * 8 > budget_s:  # the next square would take 8x longer
            return 2 * side**3 / best, side
        side *= 2


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
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, help=f"default: {' '.join(DEFAULT_VARIANTS)}"
    )
    parser.add_argument(
        "--best",
        nargs="+",
        choices=SETTINGS,
        default=list(DEFAULT_BEST),
        help="the settings of ours_best and ours_lightning_best",
    )
    parser.add_argument("--no-lightning", action="store_true", help="skip the Trainer variants")
    parser.add_argument("--flops", action="store_true", help="count FLOPs, measure matmul peak")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    default_batch, default_patch = PRESET_SIZES[args.preset]
    batch_size = args.batch or default_batch
    patch = args.patch or default_patch
    device = torch.device(args.device)
    best = tuple(args.best)
    names = [
        n
        for n in (args.variants or DEFAULT_VARIANTS)
        if not (args.no_lightning and "lightning" in n)
    ]

    torch.manual_seed(args.seed)
    tmap = TwoPassMap(**MAP_PRESETS[args.preset]).to(device)
    phi = Potential(**POTENTIAL_PRESETS[args.preset]).to(device)
    batch = {k: v.to(device) for k, v in one_batch(batch_size, patch).items()}

    setups: dict[str, Setup] = {}
    timers: dict[str, Callable[[int], float]] = {}
    for name in names:
        if "lightning" in name:
            timers[name] = lightning_timer(tmap, phi, batch, device, variant_settings(name, best))
            continue
        if name in ("reference", "authors"):
            potential = AuthorsPotential(phi, patch).to(device) if name == "authors" else phi
            setups[name] = build_setup(tmap, potential)
            timers[name] = direct_timer(reference_iteration, setups[name], batch, False, device)
            continue
        settings = variant_settings(name, best)
        setups[name] = build_setup(
            tmap,
            phi,
            foreach="foreach" in settings,
            channels_last="channels_last" in settings,
            compile="compile" in settings,
            checkpointing="checkpointing" in settings,
        )
        timers[name] = direct_timer(
            ours_iteration,
            setups[name],
            batch,
            "bf16" in settings,
            device,
            channels_last="channels_last" in settings,
        )
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

    ratios: dict[str, float | None] = {
        "ours_over_reference": ratio("ours", "reference"),
        "bf16_over_fp32": ratio("ours_bf16", "ours"),
        "lightning_over_direct": ratio("ours_lightning", "ours"),
    }
    for name in names:
        if name.startswith("ours_") and "lightning" not in name and name != "ours_bf16":
            ratios[f"{name}_over_ours"] = ratio(name, "ours")
    if "authors" in rates:
        for name in ("ours", "ours_best", "ours_lightning", "ours_lightning_best"):
            ratios[f"{name}_over_authors"] = ratio(name, "authors")
        ratios["reference_over_authors"] = ratio("reference", "authors")
    ratios["lightning_best_over_direct_best"] = ratio("ours_lightning_best", "ours_best")
    ratios = {k: v for k, v in ratios.items() if v is not None}

    flops: dict[str, Any] | None = None
    if args.flops:
        measured = {
            "fp32": matmul_peak(device, torch.float32),
            "bf16": matmul_peak(device, torch.bfloat16),
        }
        peaks = {dtype: rate for dtype, (rate, _) in measured.items()}
        counted = {
            "ours": iteration_flops(
                ours_iteration, setups.get("ours") or build_setup(tmap, phi), batch
            ),
            "authors": iteration_flops(
                reference_iteration,
                setups.get("authors") or build_setup(tmap, AuthorsPotential(phi, patch)),
                batch,
            ),
        }
        achieved = {}
        for name in rates:
            algorithm = "authors" if name in ("authors", "reference") else "ours"
            if name == "reference":
                continue  # its potential differs from both counted ones
            per_s = counted[algorithm] / rates[name]["s_per_iter_median"]
            dtype = "bf16" if "bf16" in variant_settings(name, best) else "fp32"
            if name in ("authors", "reference"):
                dtype = "fp32"
            achieved[name] = {"flop_per_s": per_s, "fraction_of_peak": per_s / peaks[dtype]}
        flops = {
            "per_iteration": counted,
            "counter": "torch.utils.flop_counter.FlopCounterMode (matmul/conv, fwd+bwd)",
            "matmul_peak_flop_per_s": peaks,
            "matmul_peak_size": {dtype: side for dtype, (_, side) in measured.items()},
            "achieved": achieved,
        }

    result: dict[str, Any] = {
        "benchmark": "throughput",
        "method": (
            "direct: objective functions and optimizers called as in RCOTModule.training_step "
            "(no Trainer) for ours*, reference and authors; ours_lightning*: the real "
            "training_step under a Trainer, timed between batch hooks"
        ),
        "preset": args.preset,
        "batch": batch_size,
        "patch": patch,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "repeats": args.repeats,
        "iters_per_repeat": args.iters,
        "best_settings": list(best),
        "statistic": (
            "rates: median over interleaved repetitions; ratios: median of per-repetition ratios"
        ),
        "rates": rates,
        "ratios": ratios,
        "flops": flops,
        "potential_params": potential_params(),
        "load_average": list(os.getloadavg()),
        "machine": platform.machine(),
        "cpu": cpu_summary(),
        "torch": torch.__version__,
        "note": "timings vary about +-15% run to run on a shared CPU; compare the ratios",
    }
    print(json.dumps(result, indent=2))
    summary = ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
    print(
        f"throughput ({args.preset}, b{batch_size} p{patch}): {summary}; "
        + cpu_line(result["cpu"]),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
