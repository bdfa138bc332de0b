"""Claims: the paper's claims at an equal CPU budget, with confidence intervals over seeds.

Every run is ``python -m rcot_lightning.train`` in a subprocess (what users run) with one thread
(``OMP_NUM_THREADS=1``, torch 1 thread) and the same budget of CPU time: ``--budget`` CPU
minutes of the training process (``callbacks.cpu_budget.minutes``,
:class:`rcot_lightning.callbacks.CPUBudget`; imports and data set-up are not counted, data
loading is: ``data.loader.num_workers=0``). A cheaper variant gets more iterations from the same
budget, so a comparison is at equal compute. CPU time per iteration still rises with the
machine's load (caches and cores are shared: the unpaired recipe took 0.22 CPU s per iteration
alone, 0.49 at a load average of 10 on 2 cores), so run the study on a quiet machine; runs go
seed by seed, so the two runs of a claim's pair train side by side. Every run uses the same
map (``--model``, default ``rcot_small``) and the same data: ``data=variety`` with 256
dead-leaves images (drawn at set-up, outside the budget) and the four scikit-image training
photos at scales 1 and 0.5, random 48x48 crops, batch 8, seeded by the
run's seed (``seed`` and ``data.seed``). The last weights are scored (the EMA copy when the
recipe has one); nothing is chosen on validation data.

Scoring: the held-out photos (:mod:`rcot_lightning.data.heldout`: china, flower, grace_hopper;
never trained or validated on) degraded by the task's own degradation (the composed
``task.degradation``), each draw seeded by (photo, task), identical for every run (sigma 25 noise
is the same draw as ``benchmarks/quality.py`` and ``heldout_curve.py``); restored whole. PSNR
and SSIM are per image (RGB, no border crop), then averaged over the photos; random-feature
FID/KID as in ``quality.py``.

Runs (task / variant; each is a recipe plus the shared data, budget and seed)::

    sigma25/l1            supervised l1 (experiment=best_cpu_denoise: potential, transport and
                          Fourier terms off; Adam 1e-3, x0.2 every 2500 iterations)
    sigma25/ot_unpaired   unpaired OT (experiment=unpaired_denoise: l2 transport cost x200,
                          WGAN-GP potential, no Fourier term; degraded and clean crops from
                          disjoint images). For noise an l2 Fourier cost *is* a quadratic
                          transport cost (Parseval), so this is also "FROT with the l2 Fourier
                          cost" up to the weight; it is not named FROT.
    sigma25/ot_l1         the l1 recipe plus the OT terms: l2 transport x200 + potential (the
                          unpaired recipe's potential and its RMSprop 3e-4) + l1 x{W_S}
    sigma25/semi_ot_l1    10 % of the images paired (data.paired_fraction=0.1), the rest unpaired
                          with clean crops of other images: the unpaired recipe + l1 x{W_S} on the
                          paired rows
    sigma25/l1_pairs10    supervised l1 on the same 10 % alone (data.paired_only=true)
    sigma25/l1_onepass    the l1 recipe with the one-pass map (RestormerUNet of the same size)
    rain/l1               supervised l1 on synthetic rain streaks (task=derain)
    rain/frot_l1          rain/l1 plus the FROT terms: l2 transport x200 + l1 Fourier x{W_F} +
                          potential + l1 x{W_S}
    rain/frot_unpaired    unpaired FROT on rain: the unpaired recipe + the l1 Fourier cost x{W_F}
    rain/ot_unpaired      the same with fourier_weight=0

{W_S} = ``SUPERVISED_WEIGHT`` and {W_F} = ``FOURIER_WEIGHT`` below, chosen so that no term
swamps the others at patch 48 (N = 3 x 48 x 48 values): the potential's gradient has norm up to 1
(gradient penalty), the l1 supervised term's up to w_s / sqrt(N) and the ortho-FFT l1 Fourier
cost's up to w_f / sqrt(N), sqrt(N) = 83. The authors' strengths (supervised 1e4, their Fourier
sum ~384x the ortho one at batch 8) make the OT terms nearly inert or dominant; item 3 of the
study tunes these.

Claims (A against B, one line each; target on the difference A - B of held-out PSNR)::

    C1          sigma25/ot_unpaired vs sigma25/l1        |A - B| <= 1 dB (paper: equal)
    C2          sigma25/semi_ot_l1 vs sigma25/l1_pairs10 A - B >= 0.5 dB
    C3 (noise)  sigma25/ot_l1 vs sigma25/l1              A - B >= 0 (paper: +0.56 dB)
    C3 (rain)   rain/frot_l1 vs rain/l1                  A - B >= 0
    C4          rain/frot_unpaired vs rain/ot_unpaired   A - B >= 0
    C5          sigma25/l1 (TRC) vs sigma25/l1_onepass   A - B >= 0 (paper: +1.75 dB)

Probes (``--probes``; item 3 of the study: for a claim that does not hold, an experiment that
tests a reason). Each is the claim with one change: A and/or B replaced by A', B', run on the same
seeds::

    P1 (C1)  A' = sigma25/ot_unpaired_critic2   model.n_critic=2 (the critic lags the map)
    P2 (C1)  A' = sigma25/ot_unpaired_w400      transport x400 (the map moves too far)
    P3 (C1)  A' = sigma25/ot_unpaired_3x,       3x the CPU budget on both sides (the unpaired
             B' = sigma25/l1_3x                 curve is still rising at the end of the budget)
    P4 (C5)  B' = sigma25/l1_onepass_half       the one-pass map at half the budget: about the
                                                iterations the two-pass map gets (equal
                                                iterations instead of equal CPU)
    P5 (C3 rain)  A' = rain/frot_l1_rms         the authors' rms transport cost x1 instead of
                                                l2 x200 (which holds rain streaks in)
    P6 (C3 noise) A' = sigma25/ot_l1_iters      1.4x the budget: about l1's iterations
    P7 (C2)  A' = sigma25/semi_ot_l1_w1000      l1 x1000 on the paired rows instead of x100
    P8 (C4)  A' = rain/frot_unpaired_ref        the authors' reference Fourier term (unnormalised
                                                FFT, batch sum, weight 1): about 7.7x the l1
                                                Fourier x50 of the study

Each is read as A' - B' under the claim's own target (the claim with the change), and as what
the change did to each side it replaced (A' - A, B' - B).

Statistics. Per run, the PSNR is the mean over the photos. Per variant, the mean over seeds with
a 95 % confidence interval ``mean +- t(0.975, n - 1) * s / sqrt(n)`` (Student t, ``s`` the
sample standard deviation over the n seeds). Per claim, the paired difference: ``d_s = A_s - B_s``
for every seed ``s`` both variants ran (the same seed means the same data order, noise draws and
paired subset), and its mean with the same 95 % t interval [lo, hi]. With fewer than 2 shared
seeds there is no interval and the verdict is "inconclusive"; with none (a run not finished yet, or
not run) it is "not run". Verdicts, read from [lo, hi]:

* target "A - B >= delta" (A ahead by at least delta): **holds** if lo >= delta; **does not hold**
  if hi < delta; **inconclusive** otherwise.
* target "|A - B| <= m" (equal within m): **holds** if -m <= lo and hi <= m (the whole interval
  inside the margin); **does not hold** if hi < -m or lo > m (the whole interval outside);
  **inconclusive** otherwise. (An equivalence test at the 95 % interval, stricter than the
  usual TOST at 90 %.)

Budget knee (``--curve N``): the first seed's runs also keep a checkpoint every N optimizer
steps (``global_step``: 2 per iteration when the potential trains, 1 when it does not); each is
scored on the held-out photos and placed at the CPU time its CPU budget stored, giving
held-out PSNR against CPU minutes (``heldout_curve.py``'s scoring). The late gain is the PSNR
gained over the second half of the budget (end minus the curve interpolated at half the
budget) as a fraction of the whole gain over the degraded input; **past the knee** if at most
``intervals.KNEE_FRACTION`` (10 %).

Output (``--out DIR``): ``runs/<task>__<variant>__seed<s>.json`` (one per finished run, what
``--resume`` skips), the runs' folders and logs under ``runs/``, ``claims.json`` (every score and
interval), ``claims.md`` (the table and the command) and ``figures/claims.png`` (each claim's two
means with their intervals) and, with ``--curve``, ``figures/curve.png``. A run killed part-way
restarts from its ``last.ckpt`` under ``--resume`` (saved every ``--save-every`` steps; the
CPU already spent is in the checkpoint, so the budget continues).

Run::

    python benchmarks/claims.py --out /tmp/claims --resume --jobs 2 --curve 500  # the study
    python benchmarks/claims.py --out /tmp/c --claims C1 --budget 1 --seeds 0 1   # a pilot
    python benchmarks/claims.py --out /tmp/claims --resume --probes P1 P2  # C1's reasons
    python benchmarks/claims.py --out /tmp/c --smoke      # seconds: tiny model, 2 seeds
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    Target,
    command_line,
    interval,
    late_gain,
    markdown_table,
    paired_difference,
    verdict,
)
from benchmarks.common import format_interval as ci
from benchmarks.heldout_curve import ALLINONE_TASKS, checkpoint_curve, task_severities
from benchmarks.quality import (
    ONE_PASS_MAP,
    TINY_POTENTIAL,
    degraded_photo,
    score,
    score_last_overrides,
    train_subprocess,
)
from rcot_lightning.callbacks.cpu_budget import CPUBudget
from rcot_lightning.checkpoints.load import load_module
from rcot_lightning.data.heldout import HELDOUT_PHOTOS
from rcot_lightning.hardware import cpu_summary
from rcot_lightning.metrics import psnr, ssim

OBJ = "model.objective"
#: Weight of the supervised l1 term beside the OT terms (see the module docstring).
SUPERVISED_WEIGHT = 100
#: Weight of the l1 Fourier residual cost (ortho FFT) on rain (see the module docstring).
FOURIER_WEIGHT = 50

#: The data every run shares (on top of either recipe's data=variety).
DATA = [
    "data.dead_leaves=256",
    "data.scales=[1.0,0.5]",
    "data.batch_size=8",
    "data.crops.patch_size=48",
    "data.samples_per_epoch=400",
    "data.loader.num_workers=0",
]
#: The seconds-long smoke run's data (tiny images, 2-image batches).
SMOKE_DATA = [
    "data.dead_leaves=8",
    "data.dead_leaves_size=64",
    "data.scales=[1.0]",
    "data.batch_size=2",
    "data.crops.patch_size=32",
    "data.samples_per_epoch=8",
    "data.loader.num_workers=0",
]

#: Task -> (Hydra overrides, the held-out draw's seed key).
TASKS: dict[str, tuple[list[str], object]] = {
    "sigma25": (["task=denoise", "task.degradation.sigma=25"], 25.0),
    "rain": (["task=derain"], "rain"),
    # The all-in-one regime (issue 31): experiment=allinone_cpu's eight degradations, never told
    # which; the study's data and budget on top. Its checkpoint cadence (every second epoch)
    # gives way to the study's every-N-steps one (Lightning takes one of the two).
    "allinone": (
        ["experiment=allinone_cpu", "callbacks.model_checkpoint.every_n_epochs=null"],
        "allinone",
    ),
}
# The all-in-one runs are scored on the held-out severities of heldout_curve.ALLINONE_TASKS
# (heldout_curve.task_severities("allinone"): the inputs of ``benchmarks/tasks.py`` and
# ``pretrained_quality.py``; JPEG: the saved libjpeg files the recipe trains on). A run's PSNR is
# the mean over tasks of each task's mean over its severities and photos, so a task with four
# severities weighs no more than one with three.

SUPERVISED = ["experiment=best_cpu_denoise"]
UNPAIRED_OT = ["experiment=unpaired_denoise"]
#: The OT terms of the unpaired recipe (l2 transport, its potential) added to the l1 recipe.
OT_TERMS = [
    f"{OBJ}.potential_weight=1",
    f"{OBJ}.transport_cost=l2",
    f"{OBJ}.transport_weight=200",
    f"{OBJ}.supervised_weight={SUPERVISED_WEIGHT}",
    "model.potential.channels=[16,16,32,32,64,64,128,128]",
    "+model.potential.layout=uniform",
    "model.potential_optimizer.lr=3.0e-4",
]
FOURIER_L1 = [f"{OBJ}.fourier_weight={FOURIER_WEIGHT}"]


@dataclass(frozen=True)
class Variant:
    """One run recipe: its task, a label that names the costs that run, its overrides."""

    task: str
    label: str
    overrides: tuple[str, ...]
    #: The run's CPU budget as a multiple of ``--budget`` (1 for every claim's run; probes
    #: that test the budget or equal iterations change it).
    budget_factor: float = 1.0

    def minutes(self, budget: float) -> float:
        """This run's CPU budget in minutes when ``--budget`` is ``budget``.

        Example:
            >>> Variant("sigma25", "probe", (), budget_factor=3.0).minutes(10)
            30.0
        """
        return budget * self.budget_factor


VARIANTS: dict[str, Variant] = {
    "sigma25/l1": Variant("sigma25", "supervised l1 (TRC map)", (*SUPERVISED,)),
    "sigma25/ot_unpaired": Variant(
        "sigma25",
        "unpaired OT (l2 transport + potential, no Fourier)",
        (*UNPAIRED_OT,),
    ),
    "sigma25/ot_l1": Variant(
        "sigma25",
        f"OT (l2 transport + potential, no Fourier) + l1 x{SUPERVISED_WEIGHT}",
        (*SUPERVISED, *OT_TERMS),
    ),
    "sigma25/semi_ot_l1": Variant(
        "sigma25",
        f"10 % pairs + rest unpaired: OT (l2 transport + potential) + l1 x{SUPERVISED_WEIGHT}",
        (
            *UNPAIRED_OT,
            "data.unpaired=false",
            "data.paired_fraction=0.1",
            f"{OBJ}.supervised_weight={SUPERVISED_WEIGHT}",
        ),
    ),
    "sigma25/l1_pairs10": Variant(
        "sigma25",
        "supervised l1 on the same 10 % of pairs alone",
        (*SUPERVISED, "data.paired_fraction=0.1", "data.paired_only=true"),
    ),
    "sigma25/l1_onepass": Variant(
        "sigma25", "supervised l1, one-pass map (TRC off)", (*SUPERVISED, *ONE_PASS_MAP)
    ),
    "rain/l1": Variant("rain", "supervised l1 (rain)", (*SUPERVISED,)),
    "rain/frot_l1": Variant(
        "rain",
        f"FROT (l2 transport + l1 Fourier x{FOURIER_WEIGHT} + potential) + l1 "
        f"x{SUPERVISED_WEIGHT} (rain)",
        (*SUPERVISED, *OT_TERMS, *FOURIER_L1),
    ),
    "rain/frot_unpaired": Variant(
        "rain",
        f"unpaired FROT (l2 transport + l1 Fourier x{FOURIER_WEIGHT} + potential) (rain)",
        (*UNPAIRED_OT, *FOURIER_L1),
    ),
    "rain/ot_unpaired": Variant(
        "rain", "unpaired OT, Fourier off (fourier_weight=0) (rain)", (*UNPAIRED_OT,)
    ),
    # The probes' runs (PROBES below): a claim's A with one change.
    "sigma25/ot_unpaired_critic2": Variant(
        "sigma25",
        "unpaired OT, 2 potential updates per map update (model.n_critic=2)",
        (*UNPAIRED_OT, "model.n_critic=2"),
    ),
    "sigma25/ot_unpaired_w400": Variant(
        "sigma25",
        "unpaired OT, l2 transport x400 (half the largest move of x200)",
        (*UNPAIRED_OT, f"{OBJ}.transport_weight=400"),
    ),
    "sigma25/ot_unpaired_3x": Variant(
        "sigma25",
        "unpaired OT (l2 transport + potential, no Fourier), 3x the CPU budget",
        (*UNPAIRED_OT,),
        budget_factor=3.0,
    ),
    "sigma25/l1_3x": Variant(
        "sigma25", "supervised l1 (TRC map), 3x the CPU budget", (*SUPERVISED,), budget_factor=3.0
    ),
    "rain/frot_l1_rms": Variant(
        "rain",
        f"FROT with the authors' rms transport cost x1 (l1 Fourier x{FOURIER_WEIGHT} + potential)"
        f" + l1 x{SUPERVISED_WEIGHT} (rain)",
        (
            *SUPERVISED,
            *OT_TERMS,
            *FOURIER_L1,
            f"{OBJ}.transport_cost=rms",
            f"{OBJ}.transport_weight=1",
        ),
    ),
    "sigma25/semi_ot_l1_w1000": Variant(
        "sigma25",
        "10 % pairs + rest unpaired: OT (l2 transport + potential) + l1 x1000",
        (
            *UNPAIRED_OT,
            "data.unpaired=false",
            "data.paired_fraction=0.1",
            f"{OBJ}.supervised_weight=1000",
        ),
    ),
    "sigma25/ot_l1_iters": Variant(
        "sigma25",
        f"OT (l2 transport + potential) + l1 x{SUPERVISED_WEIGHT}, 1.4x the CPU budget (about "
        "the l1 run's iterations)",
        (*SUPERVISED, *OT_TERMS),
        budget_factor=1.4,
    ),
    "rain/frot_unpaired_ref": Variant(
        "rain",
        "unpaired FROT with the authors' Fourier term (unnormalised FFT, batch sum, weight 1: "
        "about 384x the ortho mean at batch 8, patch 48; l2 transport + potential) (rain)",
        (*UNPAIRED_OT, f"{OBJ}.reference_fourier=true", f"{OBJ}.fourier_weight=1"),
    ),
    # C6: the two-pass map where the residual should tell degradations apart (issue 31).
    "allinone/l1": Variant(
        "allinone", "supervised l1, two-pass TRC map, bottleneck conditioning (all-in-one)", ()
    ),
    "allinone/l1_onepass": Variant(
        "allinone", "supervised l1, one-pass map (TRC off) (all-in-one)", (*ONE_PASS_MAP,)
    ),
    "allinone/l1_decoder": Variant(
        "allinone",
        "supervised l1, two-pass TRC map, decoder-scale conditioning (DA-RCOT style) (all-in-one)",
        ("model.transport_map.conditioning=decoder",),
    ),
    "sigma25/l1_onepass_half": Variant(
        "sigma25",
        "supervised l1, one-pass map, half the CPU budget (about the TRC map's iterations)",
        (*SUPERVISED, *ONE_PASS_MAP),
        budget_factor=0.5,
    ),
}


@dataclass(frozen=True)
class Claim:
    id: str
    group: str
    text: str
    a: str
    b: str
    target: Target


CLAIMS = [
    Claim(
        "C1",
        "C1",
        "unpaired OT reaches supervised l1 (sigma 25)",
        "sigma25/ot_unpaired",
        "sigma25/l1",
        Target("within", 1.0),
    ),
    Claim(
        "C2",
        "C2",
        "semi-paired OT + l1 beats l1 on the same 10 % of pairs",
        "sigma25/semi_ot_l1",
        "sigma25/l1_pairs10",
        Target("at_least", 0.5),
    ),
    Claim(
        "C3 (noise)",
        "C3",
        "OT terms + l1 beat l1 alone (sigma 25)",
        "sigma25/ot_l1",
        "sigma25/l1",
        Target("at_least", 0.0),
    ),
    Claim(
        "C3 (rain)",
        "C3",
        "FROT + l1 beats l1 alone (rain)",
        "rain/frot_l1",
        "rain/l1",
        Target("at_least", 0.0),
    ),
    Claim(
        "C4",
        "C4",
        "the l1 Fourier residual cost helps unpaired deraining",
        "rain/frot_unpaired",
        "rain/ot_unpaired",
        Target("at_least", 0.0),
    ),
    Claim(
        "C5",
        "C5",
        "the two-pass TRC map beats the one-pass map at equal CPU",
        "sigma25/l1",
        "sigma25/l1_onepass",
        Target("at_least", 0.0),
    ),
    Claim(
        "C6",
        "C6",
        "the two-pass TRC map beats the one-pass map at equal CPU (all-in-one)",
        "allinone/l1",
        "allinone/l1_onepass",
        Target("at_least", 0.0),
    ),
    Claim(
        "C6 (decoder)",
        "C6-decoder",
        "decoder-scale conditioning beats bottleneck conditioning (all-in-one)",
        "allinone/l1_decoder",
        "allinone/l1",
        Target("at_least", 0.0),
    ),
]
CLAIM_GROUPS = sorted({c.group for c in CLAIMS})
#: Every claim's second verdict, on the distribution metric: A's random-feature FID lower than
#: B's (B - A >= 0).
FID_TARGET = Target("at_least", 0.0)
CLAIM_IDS = {c.id: c for c in CLAIMS}


@dataclass(frozen=True)
class Probe:
    """An experiment that tests one reason a claim may not hold: the claim with one change, its
    A replaced by ``a`` and/or its B by ``b`` (variants with the change; None keeps the claim's
    own). Read as the claim with the change (A' - B' under the claim's target) and as what the
    change did to each replaced side (A' - A, B' - B), all paired over shared seeds."""

    id: str
    claim: str
    reason: str
    a: str | None = None
    b: str | None = None

    def sides(self) -> tuple[str, str]:
        """The (A, B) variants of the claim with the change."""
        claim = CLAIM_IDS[self.claim]
        return self.a or claim.a, self.b or claim.b

    def variants(self) -> list[str]:
        """Every variant the probe needs: the changed ones and the claim's own."""
        claim = CLAIM_IDS[self.claim]
        return list(dict.fromkeys([claim.a, claim.b, *self.sides()]))


PROBES = [
    Probe(
        "P1",
        "C1",
        "the critic lags the map (n_critic): two potential updates per map update, fewer "
        "iterations for the same CPU",
        a="sigma25/ot_unpaired_critic2",
    ),
    Probe(
        "P2",
        "C1",
        "the balance of the costs: the map moves too far from its input and repaints content; "
        "transport x400 halves its largest move",
        a="sigma25/ot_unpaired_w400",
    ),
    Probe(
        "P3",
        "C1",
        "the budget: the unpaired curve is still rising at 10 CPU minutes; both sides get 30",
        a="sigma25/ot_unpaired_3x",
        b="sigma25/l1_3x",
    ),
    Probe(
        "P4",
        "C5",
        "equal iterations instead of equal CPU: the one-pass map at half the budget, about the "
        "iterations the two-pass map gets from the whole",
        b="sigma25/l1_onepass_half",
    ),
    Probe(
        "P5",
        "C3 (rain)",
        "the balance of the costs: the quadratic transport cost x200 holds the rain streaks in "
        "(a streak is a large residual); the authors' rms transport cost at weight 1 instead",
        a="rain/frot_l1_rms",
    ),
    Probe(
        "P6",
        "C3 (noise)",
        "the OT terms cost iterations (a potential step per map step): OT + l1 at 1.4x the "
        "budget, about the iterations of l1 alone (equal iterations instead of equal CPU)",
        a="sigma25/ot_l1_iters",
    ),
    Probe(
        "P7",
        "C2",
        "the balance of the costs: on 90 % of the rows only the OT terms act, and unpaired OT "
        "alone trails l1 by 3.4 dB (C1); l1 x1000 instead of x100 on the paired rows",
        a="sigma25/semi_ot_l1_w1000",
    ),
    Probe(
        "P8",
        "C4",
        "the strength of the Fourier term: the authors' reference term (unnormalised FFT summed "
        "over the batch, weight 1), about 7.7x the study's l1 Fourier x50",
        a="rain/frot_unpaired_ref",
    ),
]
PROBE_IDS = [p.id for p in PROBES]


# ---------------------------------------------------------------- runs


def run_name(key: str, seed: int) -> str:
    return f"{key.replace('/', '__')}__seed{seed}"


def run_overrides(key: str, seed: int, folder: Path, args: argparse.Namespace) -> list[str]:
    """Every Hydra override of one run: recipe, task, shared data, seed, budget, checkpoints."""
    variant = VARIANTS[key]
    curve = args.curve and seed == args.seeds[0]
    every = args.curve if curve else args.save_every
    overrides = [
        *variant.overrides,
        f"model={args.model}",
        *TASKS[variant.task][0],
        *(SMOKE_DATA if args.smoke else DATA),
        f"seed={seed}",
        f"data.seed={seed}",
        # The CPU budget alone stops training.
        "trainer.max_epochs=-1",
        "trainer.max_steps=-1",
        "++trainer.max_time=null",
        "trainer.min_epochs=0",
        "trainer.log_every_n_steps=50",
        f"callbacks.cpu_budget.minutes={variant.minutes(args.budget):g}",
        *score_last_overrides(folder),
        # last.ckpt every --save-every steps (a killed run resumes from it), not every epoch.
        "callbacks.model_checkpoint.save_on_train_epoch_end=false",
        f"++callbacks.model_checkpoint.every_n_train_steps={every}",
    ]
    if curve:
        overrides += [
            "callbacks.model_checkpoint.save_top_k=-1",
            "callbacks.model_checkpoint.filename='step{step:07d}'",
        ]
    if args.model == "rcot_tiny":
        overrides.append(TINY_POTENTIAL)
    return [*overrides, *args.override]


def heldout(task: str, args: argparse.Namespace) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The held-out photos of ``task``: name -> (clean, degraded), the task's own degradation
    (composed from the configs, so scoring degrades as training did); for ``allinone`` every
    severity of :data:`ALLINONE_TASKS` (:func:`allinone_photos`)."""
    if task == "allinone":
        return allinone_photos(args.photos, args.crop)
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    overrides, key = TASKS[task]
    with initialize_config_module("rcot_lightning.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    degradation = instantiate(cfg.task.degradation)
    photos = {}
    for name in args.photos:
        clean, degraded = degraded_photo(name, degradation, key)
        if args.crop:
            clean, degraded = (
                clean[..., : args.crop, : args.crop],
                degraded[..., : args.crop, : args.crop],
            )
        photos[name] = (clean, degraded)
    return photos


def allinone_photos(
    names: Sequence[str], crop: int | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``"<task>/<severity>/<photo>"`` -> (clean, degraded) for every held-out severity of
    :data:`ALLINONE_TASKS`: the inputs (8-bit, same seeds) ``benchmarks/tasks.py`` and
    ``pretrained_quality.py`` score the specialists and the anchors on. ``crop``: a centre crop
    of each photo before it is degraded (smoke runs)."""
    from rcot_lightning.data.heldout import load_heldout
    from rcot_lightning.data.heldout_tasks import centre_crop, heldout_case

    clean = {name: centre_crop(load_heldout(name)[None], crop) for name in names}
    photos = {}
    for task, severity in task_severities("allinone"):
        for index, (name, image) in enumerate(clean.items()):
            case = heldout_case(task, severity, image, index)
            photos[f"{task}/{severity}/{name}"] = (case.clean, case.degraded)
    return photos


def by_task(per_image: dict[str, float]) -> dict[str, float]:
    """Mean of ``"<task>/<severity>/<photo>"`` -> value per task (names without a ``/``: one
    group, ``""``).

    Example:
        >>> by_task({"jpeg/q10/a": 1.0, "jpeg/q20/a": 3.0, "derain/light/a": 5.0})
        {'jpeg': 2.0, 'derain': 5.0}
    """
    groups: dict[str, list[float]] = {}
    for name, value in per_image.items():
        groups.setdefault(name.split("/")[0] if "/" in name else "", []).append(value)
    return {group: statistics.fmean(values) for group, values in groups.items()}


def balanced_mean(per_image: dict[str, float]) -> float:
    """The mean over tasks of each task's mean (:func:`by_task`); the plain mean for one task.

    Example:
        >>> balanced_mean({"jpeg/q10/a": 1.0, "jpeg/q20/a": 3.0, "derain/light/a": 5.0})
        3.5
    """
    return statistics.fmean(by_task(per_image).values())


def input_scores(photos: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """Mean PSNR/SSIM of the degraded inputs themselves (all-in-one: :func:`balanced_mean`, and
    per task)."""
    scores = {
        metric: {n: float(fn(d.clamp(0, 1), c)[0]) for n, (c, d) in photos.items()}
        for metric, fn in (("psnr", psnr), ("ssim", ssim))
    }
    out: dict[str, Any] = {m: balanced_mean(v) for m, v in scores.items()}
    if any("/" in n for n in photos):
        out["per_task"] = {m: by_task(v) for m, v in scores.items()}
    return out


def run_one(
    key: str,
    seed: int,
    args: argparse.Namespace,
    photos: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, Any]:
    """Train (or resume) one run and score its last weights; the result is also written to
    ``runs/<name>.json``, which ``--resume`` returns without training."""
    runs: Path = args.out / "runs"
    name = run_name(key, seed)
    result_path = runs / f"{name}.json"
    if args.resume and result_path.is_file():
        return json.loads(result_path.read_text())
    folder = runs / name
    last = folder / "checkpoints" / "last.ckpt"
    timing_path = runs / f"{name}.timing.json"
    overrides = run_overrides(key, seed, folder, args)
    resumed = False
    if args.resume and timing_path.is_file() and last.is_file():
        timing = json.loads(timing_path.read_text())  # trained; only scoring was missing
    else:
        if args.resume and last.is_file():
            overrides.append(f"ckpt_path={last}")
            resumed = True
            drop_abandoned_checkpoints(last)
        elif folder.exists():
            shutil.rmtree(folder)
        timing = train_subprocess(overrides, runs / f"{name}.log", threads=1)
        timing_path.write_text(json.dumps(timing))
    module = load_module(last)
    restored = {n: module.restore(degraded) for n, (_, degraded) in photos.items()}
    clean = {n: c for n, (c, _) in photos.items()}
    state = torch.load(last, map_location="cpu", weights_only=False)["callbacks"]
    scores = score(restored, clean)
    if VARIANTS[key].task == "allinone":  # every task weighs the same (balanced_mean)
        for metric in ("psnr", "ssim"):
            values = {n: v[metric] for n, v in scores["per_image"].items()}
            scores[metric] = balanced_mean(values)
            scores.setdefault("per_task", {})[metric] = by_task(values)
    result = {
        "key": key,
        "task": VARIANTS[key].task,
        "seed": seed,
        **scores,
        "iterations": module.iteration,
        "budget_cpu_seconds": state[CPUBudget.__qualname__]["spent_seconds"],
        "process_cpu_seconds": timing["train_cpu_seconds"],
        "wall_seconds": timing["train_seconds"],
        "resumed": resumed,
        "overrides": overrides,
    }
    if args.curve and seed == args.seeds[0]:
        result["curve"] = checkpoint_curve(folder, photos, per_image=True)
        for row in result["curve"]:  # all-in-one: each task weighs the same
            row["psnr"] = balanced_mean(row.pop("per_image_psnr"))
    result_path.write_text(json.dumps(result, indent=1))
    return result


def drop_abandoned_checkpoints(last: Path) -> list[Path]:
    """Delete the curve checkpoints (``step<N>.ckpt``) a killed run wrote after its ``last.ckpt``.

    The run resumes from ``last``, so checkpoints of later steps belong to the abandoned attempt:
    kept, they would put two CPU times on one stretch of the curve (the abandoned one higher).
    """
    step = int(torch.load(last, map_location="cpu", weights_only=True)["global_step"])
    dropped = []
    for path in last.parent.glob("step*.ckpt"):
        digits = path.stem.removeprefix("step")
        if digits.isdigit() and int(digits) > step:
            path.unlink()
            dropped.append(path)
    return dropped


def selected(
    groups: Sequence[str], probe_ids: Sequence[str] = ()
) -> tuple[list[Claim], list[Probe], list[str]]:
    """The claims of ``groups``, the probes ``probe_ids`` (with the claims they test) and the
    variants all of them need (each once)."""
    probes = [p for p in PROBES if p.id in probe_ids]
    tested = {p.claim for p in probes}
    claims = [c for c in CLAIMS if c.group in groups or c.id in tested]
    keys = [k for c in claims for k in (c.a, c.b)] + [k for p in probes for k in p.variants()]
    return claims, probes, list(dict.fromkeys(keys))


# ---------------------------------------------------------------- report


def summarise(
    claims: Sequence[Claim],
    keys: Sequence[str],
    results: dict[str, dict[str, dict[str, Any]]],
    inputs: dict[str, dict[str, float]],
    probes: Sequence[Probe] = (),
) -> dict[str, Any]:
    """Per-variant intervals, per-claim paired differences and verdicts, per-probe differences
    (against the claim's A and B), knee checks."""

    def read(diff: dict[str, Any], target: Target) -> str:
        # No shared seed: nothing measured, which a table must not call "inconclusive".
        return "not run" if diff["n"] == 0 else verdict(diff["lo"], diff["hi"], target)

    def paired(a: str, b: str, metric: str = "psnr", task: str | None = None) -> dict[str, Any]:
        """The paired difference ``a - b`` of ``metric`` over the seeds both ran (``task``: of
        that task's mean, all-in-one runs)."""

        def values(key: str) -> dict[str, float]:
            runs = results.get(key, {}).items()
            if task is None:
                return {s: r[metric] for s, r in runs if r.get(metric) is not None}
            return {s: r["per_task"][metric][task] for s, r in runs if "per_task" in r}

        return paired_difference(values(a), values(b))

    variants: dict[str, Any] = {}
    for key in keys:
        by_seed = results.get(key, {})
        variants[key] = {
            "label": VARIANTS[key].label,
            "task": VARIANTS[key].task,
            "overrides": list(VARIANTS[key].overrides),
            "seeds": sorted(by_seed, key=int),
            "psnr": interval([r["psnr"] for r in by_seed.values()]),
            "ssim": interval([r["ssim"] for r in by_seed.values()]),
            "fid": interval([r["fid"] for r in by_seed.values() if r.get("fid") is not None]),
            "iterations": interval([r["iterations"] for r in by_seed.values()]),
            "budget_cpu_minutes": interval(
                [r["budget_cpu_seconds"] / 60 for r in by_seed.values()]
            ),
        }
    rows = []
    for claim in claims:
        diff = paired(claim.a, claim.b)
        ssim_diff = paired(claim.a, claim.b, "ssim")
        fid_gain = paired(claim.b, claim.a, "fid")
        rows.append(
            {
                "id": claim.id,
                "claim": claim.text,
                "a": claim.a,
                "b": claim.b,
                "target": claim.target.describe(),
                "psnr_a": variants[claim.a]["psnr"],
                "psnr_b": variants[claim.b]["psnr"],
                "psnr_diff": diff,
                "ssim_diff": ssim_diff,
                "verdict": read(diff, claim.target),
                # The perception side: B - A of the random-feature FID (lower is better), so
                # positive means A's output is closer to the clean photos' distribution.
                "fid_gain": fid_gain,
                "fid_verdict": read(fid_gain, FID_TARGET),
            }
        )
        if VARIANTS[claim.a].task == "allinone":  # where the difference comes from
            rows[-1]["per_task"] = {
                task: {
                    "psnr_diff": paired(claim.a, claim.b, "psnr", task),
                    "ssim_diff": paired(claim.a, claim.b, "ssim", task),
                }
                for task in ALLINONE_TASKS
            }
    probe_rows = []
    for probe in probes:
        claim = CLAIM_IDS[probe.claim]
        a, b = probe.sides()
        with_change = paired(a, b)
        changes = {
            f"{side}' - {side}": {"variant": new, "diff": paired(new, old)}
            for side, new, old in (("A", probe.a, claim.a), ("B", probe.b, claim.b))
            if new is not None
        }
        probe_rows.append(
            {
                "id": probe.id,
                "claim": claim.id,
                "reason": probe.reason,
                "a": a,
                "b": b,
                "psnr_a": variants[a]["psnr"],
                "psnr_b": variants[b]["psnr"],
                "changes": changes,
                "claim_with_change": with_change,
                "claim_verdict": read(with_change, claim.target),
            }
        )
    curves = {}
    for key in keys:
        for seed, r in results.get(key, {}).items():
            if "curve" in r:
                task = VARIANTS[key].task
                curves[key] = {
                    "seed": int(seed),
                    "rows": r["curve"],
                    "input_psnr": inputs[task]["psnr"],
                    "knee": late_gain(r["curve"], inputs[task]["psnr"]),
                }
    return {"variants": variants, "claims": rows, "probes": probe_rows, "curves": curves}


def markdown(summary: dict[str, Any], report: dict[str, Any]) -> str:
    lines = [
        f"Equal CPU budget: {report['budget_minutes']:g} CPU minutes of one thread per run, "
        f"map `{report['model']}`, seeds {report['seeds']}; held-out PSNR (dB) mean over "
        "seeds ± the 95 % Student-t half-width; A − B is the paired difference over shared "
        "seeds.",
        "",
    ]
    head = ["claim", "A", "B", "A PSNR", "B PSNR", "A − B (dB)", "A − B SSIM", "target"]
    head += ["verdict", "B − A FID (A lower: +)", "FID verdict"]
    lines += markdown_table(
        head,
        (
            [
                f"{row['id']}: {row['claim']}",
                VARIANTS[row["a"]].label,
                VARIANTS[row["b"]].label,
                *(ci(row[k]) for k in ("psnr_a", "psnr_b", "psnr_diff")),
                ci(row["ssim_diff"], 3),
                row["target"],
                f"**{row['verdict']}**",
                ci(row["fid_gain"], 4),
                f"**{row['fid_verdict']}**",
            ]
            for row in summary["claims"]
        ),
    )
    if summary["probes"]:
        lines += [
            "",
            "Reasons tested: the claim with one change, A' and B' its two sides (a side the "
            "probe leaves alone is the claim's own); what the change did to a side it replaced "
            "is A' − A or B' − B.",
            "",
        ]
        head = ["probe", "claim", "reason tested", "A'", "B'", "A' PSNR", "B' PSNR"]
        head += ["what the change did (dB)", "A' − B' (dB)", "claim with the change"]
        lines += markdown_table(
            head,
            (
                [
                    *(row[k] for k in ("id", "claim", "reason")),
                    f"`{row['a']}`",
                    f"`{row['b']}`",
                    *(ci(row[k]) for k in ("psnr_a", "psnr_b")),
                    "; ".join(f"{k}: {ci(v['diff'])}" for k, v in row["changes"].items()),
                    ci(row["claim_with_change"]),
                    f"**{row['claim_verdict']}**",
                ]
                for row in summary["probes"]
            ),
        )
    per_task = [row for row in summary["claims"] if "per_task" in row]
    if per_task:
        lines += [
            "",
            "All-in-one claims per task: A − B of the task's held-out PSNR (dB; its severities "
            "and photos averaged), paired over seeds; the claim's own A − B is the mean over "
            "tasks.",
            "",
        ]
        lines += markdown_table(
            ["claim", *ALLINONE_TASKS],
            (
                [row["id"], *(ci(row["per_task"][t]["psnr_diff"]) for t in ALLINONE_TASKS)]
                for row in per_task
            ),
        )
    lines.append("")
    head = ["run", "PSNR (dB)", "SSIM", "FID (random features)", "iterations"]
    lines += markdown_table(
        [*head, "training CPU min", "seeds"],
        (
            [
                f"`{key}`: {row['label']}",
                ci(row["psnr"]),
                ci(row["ssim"], 3),
                ci(row["fid"], 3),
                ci(row["iterations"], 0),
                ci(row["budget_cpu_minutes"], 2),
                len(row["seeds"]),
            ]
            for key, row in summary["variants"].items()
        ),
    )
    inputs = ", ".join(f"{t} {v['psnr']:.2f} dB" for t, v in report["inputs"].items())
    lines += ["", f"Degraded inputs: {inputs}."]
    if report.get("missing"):
        lines += ["", f"Not finished yet (not in the table): {', '.join(report['missing'])}."]
    if summary["curves"]:
        lines.append("")
        head = ["curve (first seed)", "PSNR at half budget", "at the end", "late gain (dB)"]
        lines += markdown_table(
            [*head, "late / whole gain", "past the knee"],
            (knee_cells(key, curve["knee"]) for key, curve in summary["curves"].items()),
        )
    lines += ["", "Command:", "", f"    {report['command']}", ""]
    return "\n".join(lines)


def knee_cells(key: str, k: dict[str, Any] | None) -> list[str]:
    """One row of the knee table: a curve's PSNR at half and full budget and its late gain."""
    if k is None:
        return [f"`{key}`", "-", "-", "-", "-", "-"]
    frac = "-" if k["late_fraction"] is None else f"{k['late_fraction']:.2f}"
    return [
        f"`{key}`",
        f"{k['half_psnr']:.2f}",
        f"{k['end_psnr']:.2f}",
        f"{k['late_gain_db']:+.2f}",
        frac,
        "yes" if k["past_knee"] else "no",
    ]


def figures(summary: dict[str, Any], out: Path, budget: float) -> list[Path]:
    """A bar plot of every claim's two means with their intervals; the knee curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = summary["claims"]
    fig, axes = plt.subplots(1, len(rows), figsize=(2.2 * len(rows) + 0.6, 3.0), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        if row["psnr_a"]["mean"] is None and row["psnr_b"]["mean"] is None:
            ax.set_title(f"{row['id']}\nno finished run", fontsize=8)
            ax.set_axis_off()
            continue
        for x, side in enumerate(("psnr_a", "psnr_b")):
            r = row[side]
            if r["mean"] is None:
                continue
            err = [[r["half_width"] or 0.0], [r["half_width"] or 0.0]]
            ax.bar(x, r["mean"], yerr=err, capsize=4, color=("C0", "C7")[x])
        ax.set_xticks([0, 1], ["A", "B"])
        ax.set_title(f"{row['id']}\n{row['verdict']}", fontsize=8)
        means = [row[s]["mean"] for s in ("psnr_a", "psnr_b") if row[s]["mean"] is not None]
        if means:
            ax.set_ylim(min(means) - 2, max(means) + 1.5)
    axes[0][0].set_ylabel("held-out PSNR (dB)")
    fig.tight_layout()
    paths.append(out / "claims.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    curves = summary["curves"]
    if curves:
        tasks = sorted({VARIANTS[k].task for k in curves})
        fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.4), squeeze=False)
        for ax, task in zip(axes[0], tasks, strict=True):
            for key, curve in curves.items():
                if VARIANTS[key].task != task:
                    continue
                points = sorted(
                    (r["cpu_seconds"] / 60, r["psnr"])
                    for r in curve["rows"]
                    if r["cpu_seconds"] is not None
                )
                ax.plot(*zip(*points, strict=True), marker=".", label=key.split("/")[1])
                ax.axhline(curve["input_psnr"], color="grey", lw=0.5)
            ax.axvline(budget, color="k", ls=":", lw=0.8)
            ax.axvline(budget / 2, color="k", ls=":", lw=0.5)
            ax.set_title(task, fontsize=9)
            ax.set_xlabel("training CPU minutes (one thread)")
            ax.legend(fontsize=6)
        axes[0][0].set_ylabel("held-out PSNR (dB)")
        fig.tight_layout()
        paths.append(out / "curve.png")
        fig.savefig(paths[-1], dpi=80)
        plt.close(fig)
    return paths


# ---------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="results folder")
    parser.add_argument("--budget", type=float, default=10.0, help="CPU minutes per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--claims",
        nargs="+",
        choices=CLAIM_GROUPS,
        help="claim groups (default: all, or with --probes only the claims they test)",
    )
    parser.add_argument(
        "--probes",
        nargs="+",
        default=[],
        choices=PROBE_IDS,
        help="experiments that test why a claim fails (PROBES), with that claim's runs",
    )
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at the same time")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip runs whose result JSON exists in --out/runs; continue killed runs from "
        "their last.ckpt (same options assumed)",
    )
    parser.add_argument(
        "--curve",
        type=int,
        default=0,
        help="keep a checkpoint every N optimizer steps of the first seed's runs and report "
        "held-out PSNR against CPU time (0: off)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: the table, JSON and figures of the runs already finished in --out "
        "(a study in progress; the runs not yet finished are listed as missing)",
    )
    parser.add_argument(
        "--save-every", type=int, default=500, help="optimizer steps between last.ckpt saves"
    )
    parser.add_argument("--model", default="rcot_small", help="model config (rcot_small, ...)")
    parser.add_argument("--photos", nargs="+", default=list(HELDOUT_PHOTOS))
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides (all)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="seconds: tiny model, tiny data, a 2-second budget, 128x128 crops of 2 photos",
    )
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds repeat")
    if args.report_only:
        args.resume = True
    if args.claims is None:
        args.claims = [] if args.probes else list(CLAIM_GROUPS)
    args.crop = None
    if args.smoke:
        args.model, args.budget, args.crop = "rcot_tiny", min(args.budget, 2 / 60), 128
        args.photos = args.photos[:2]
    return args


def check_finished_budgets(runs: Path, keys: Sequence[str], args: argparse.Namespace) -> None:
    """Refuse, before any work, to reuse (``--resume``, ``--report-only``) a finished run that
    trained for another CPU budget than ``--budget`` asks: the report would print the wrong
    budget, and a claim could pair runs of different budgets."""
    if not args.resume:
        return
    wrong = []
    for key in keys:
        expected = VARIANTS[key].minutes(args.budget) * 60
        for seed in args.seeds:
            path = runs / f"{run_name(key, seed)}.json"
            if not path.is_file():
                continue
            spent = json.loads(path.read_text()).get("budget_cpu_seconds")
            if spent is not None and abs(spent - expected) > max(0.1 * expected, 5.0):
                wrong.append(f"{path.name} ({spent / 60:.1f} CPU minutes)")
    if wrong:
        raise SystemExit(
            f"--budget {args.budget:g}: finished runs under {runs} trained for another budget: "
            f"{', '.join(wrong)}; pass the --budget they ran with, or a new --out"
        )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out: Path = args.out
    (out / "runs").mkdir(parents=True, exist_ok=True)
    claims, probes, keys = selected(args.claims, args.probes)
    check_finished_budgets(out / "runs", keys, args)
    tasks = sorted({VARIANTS[k].task for k in keys})
    photos = {task: heldout(task, args) for task in tasks}
    inputs = {task: input_scores(photos[task]) for task in tasks}
    todo = [
        (k, s)
        for k in keys
        for s in args.seeds
        if not (args.resume and (out / "runs" / f"{run_name(k, s)}.json").is_file())
    ]
    hours = sum(VARIANTS[k].minutes(args.budget) for k, _ in todo) / 60
    print(
        f"{len(keys) * len(args.seeds)} runs, {len(todo)} not finished: "
        + (
            "reporting the others (--report-only)"
            if args.report_only
            else f"about {hours:.1f} CPU hours of training ({args.budget:g} CPU minutes per "
            f"run, times its budget factor), {args.jobs} at a time"
        ),
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    failed: list[str] = []
    missing: list[str] = []

    def job(key: str, seed: int) -> tuple[str, int, dict[str, Any] | None]:
        try:
            result = run_one(key, seed, args, photos[VARIANTS[key].task])
        except BaseException:  # one failed run must not end a long study
            print(f"{key} seed {seed} failed:\n{traceback.format_exc()}", file=sys.stderr)
            return key, seed, None
        print(
            f"{key} seed {seed}: PSNR {result['psnr']:.2f} SSIM {result['ssim']:.3f} "
            f"({result['iterations']} iterations, {result['budget_cpu_seconds'] / 60:.1f} "
            f"CPU min)",
            file=sys.stderr,
            flush=True,
        )
        return key, seed, result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        # Seed by seed: with --jobs 2 the two runs of a claim's pair train side by side, under
        # the same load (CPU seconds per iteration rise with the machine's load: 0.22 s for
        # the unpaired recipe alone, 0.49 s at a load average of 10 on 2 cores).
        runs = [(k, s) for s in args.seeds for k in keys]
        if args.report_only:
            missing = [run_name(k, s) for k, s in todo]
            runs = [r for r in runs if r not in todo]
        futures = [pool.submit(job, k, s) for k, s in runs]
        for future in futures:
            key, seed, result = future.result()
            if result is None:
                failed.append(run_name(key, seed))
            else:
                results.setdefault(key, {})[str(seed)] = result
    summary = summarise(claims, keys, results, inputs, probes)
    report = {
        "command": command_line(__file__, argv),
        "budget_minutes": args.budget,
        "model": args.model,
        "seeds": args.seeds,
        "photos": args.photos,
        "data": SMOKE_DATA if args.smoke else DATA,
        "tasks": {t: TASKS[t][0] for t in tasks},
        "inputs": inputs,
        "supervised_weight": SUPERVISED_WEIGHT,
        "fourier_weight": FOURIER_WEIGHT,
        "wall_seconds": time.perf_counter() - start,
        "cpu": cpu_summary(),
        "failed": failed,
        "missing": missing,
        **summary,
        "results": results,
    }
    (out / "claims.json").write_text(json.dumps(report, indent=1))
    (out / "claims.md").write_text(markdown(summary, report))
    figures(summary, out / "figures", args.budget)
    print(json.dumps({"claims": summary["claims"], "probes": summary["probes"]}, indent=1))
    if failed:
        raise SystemExit(f"{len(failed)} runs failed: {', '.join(failed)} (see runs/*.log)")
    return report


if __name__ == "__main__":
    main()
