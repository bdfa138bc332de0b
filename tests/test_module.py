"""RCOTModule: the algorithm's semantics, checked against a plain-PyTorch implementation."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Iterator
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from rcot_lightning import objective
from rcot_lightning.contract import DegradationId
from rcot_lightning.errors import RCOTError
from rcot_lightning.metrics import psnr
from rcot_lightning.module import ClipSettings, EvalSettings, RCOTModule
from rcot_lightning.objective import FROTObjective


class ConvMap(nn.Module):
    """A small residual conv net: enough to test the algorithm without the Restormer."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )
        self.calls = 0

    def forward(self, y: Tensor) -> Tensor:
        self.calls += 1
        return y + self.body(y)


class ConvPotential(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(width, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).mean(dim=(2, 3))).squeeze(1)


def make_batch(
    seed: int, size: int = 16, batch: int = 4, paired: list[bool] | None = None
) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(batch, 3, size, size, generator=g)
    target = torch.rand(batch, 3, size, size, generator=g)
    degraded = (target + 0.1 * torch.randn(batch, 3, size, size, generator=g)).clamp(0, 1)
    mask = torch.tensor(paired if paired is not None else [True] * batch)
    ids = torch.tensor([DegradationId.NOISE, DegradationId.RAIN] * batch)[:batch]
    return {
        "degraded": degraded,
        "clean": clean,
        "target": target,
        "paired": mask,
        "degradation": ids,
    }


class ListDataset(Dataset):
    def __init__(self, batches: list[dict[str, Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.batches[i]


def loader(batches: list[dict[str, Tensor]]) -> DataLoader:
    return DataLoader(ListDataset(batches), batch_size=None, shuffle=False)


def make_trainer(**kwargs: Any) -> L.Trainer:
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
    }
    defaults.update(kwargs)
    return L.Trainer(**defaults)


def weights(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ------------------------------------------------------------------- equality with plain torch
def plain_rcot(
    transport_map: nn.Module,
    potential: nn.Module,
    batches: list[dict[str, Tensor]],
    alphas: Iterator[Tensor],
    n_critic: int,
    lambda_gp: float,
    supervised_weight: float,
    ema_decay: float,
) -> nn.Module:
    """The paper's algorithm written out by hand, to compare RCOTModule against."""
    opt_t = torch.optim.RMSprop(transport_map.parameters(), lr=5e-3)
    opt_phi = torch.optim.RMSprop(potential.parameters(), lr=1e-2)
    ema = copy.deepcopy(transport_map)
    for batch in batches:
        y, x, target, paired = batch["degraded"], batch["clean"], batch["target"], batch["paired"]
        t_y = transport_map(y)
        for _ in range(n_critic):
            alpha = next(alphas).view(-1, 1, 1, 1)
            mixed = (alpha * x + (1 - alpha) * t_y.detach()).requires_grad_(True)
            (grad,) = torch.autograd.grad(potential(mixed).sum(), mixed, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss_phi = potential(t_y.detach()).mean() - potential(x).mean() + lambda_gp * gp
            opt_phi.zero_grad()
            loss_phi.backward()
            opt_phi.step()
        r = (y - t_y).flatten(1)
        rms = r.pow(2).mean(1).sqrt()
        spectrum = torch.fft.fft2(y - t_y, norm="ortho").abs().flatten(1)
        noise = batch["degradation"] == DegradationId.NOISE
        fourier = torch.where(noise, spectrum.pow(2).mean(1).sqrt(), spectrum.mean(1))
        sup = ((t_y - target).abs().flatten(1).mean(1) * paired).sum() / len(paired)
        for p in potential.parameters():
            p.requires_grad_(False)
        loss_t = rms.mean() + fourier.mean() - potential(t_y).mean() + supervised_weight * sup
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        for p in potential.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            for e, p in zip(ema.parameters(), transport_map.parameters(), strict=True):
                e.mul_(ema_decay).add_(p, alpha=1 - ema_decay)
    return ema


def test_three_iterations_equal_a_plain_pytorch_implementation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    t_map, phi = ConvMap().double(), ConvPotential().double()
    t_ref, phi_ref = copy.deepcopy(t_map), copy.deepcopy(phi)
    weights(t_map)
    batches = [make_batch(i, paired=[True, False, True, False]) for i in range(3)]
    batches = [
        {k: v.double() if v.is_floating_point() else v for k, v in b.items()} for b in batches
    ]

    used_alphas: list[Tensor] = []
    real_penalty = objective.gradient_penalty

    def recording_penalty(potential, real, fake, alpha=None, grad_scale=None):  # type: ignore[no-untyped-def]
        used_alphas.append(alpha.detach().clone())
        return real_penalty(potential, real, fake, alpha, grad_scale)

    monkeypatch.setattr("rcot_lightning.objective.gradient_penalty", recording_penalty)
    module = RCOTModule(
        t_map,
        phi,
        map_optimizer=partial(torch.optim.RMSprop, lr=5e-3),
        potential_optimizer=partial(torch.optim.RMSprop, lr=1e-2),
        objective=FROTObjective(supervised_weight=3.0),
        n_critic=2,
        ema_decay=0.9,
    )
    make_trainer(max_epochs=1, precision="64-true").fit(module, loader(batches))
    assert module.iteration == 3 and len(used_alphas) == 6

    ema_ref = plain_rcot(
        t_ref, phi_ref, batches, iter(used_alphas), 2, 10.0, supervised_weight=3.0, ema_decay=0.9
    )
    for got, want in ((module.transport_map, t_ref), (module.potential, phi_ref)):
        for (name, a), b in zip(got.state_dict().items(), want.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-7, atol=1e-8), (name, (a - b).abs().max())
    assert module.map_ema is not None
    for a, b in zip(module.map_ema.parameters(), ema_ref.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-8)
    # The weights did move: the comparison is not between two untouched copies.
    assert not torch.allclose(
        module.transport_map.body[0].weight, ConvMap().double().body[0].weight
    )


# ----------------------------------------------------------------------- separation of updates
class StepSnapshots(L.Callback):
    """Weights of both networks before every optimizer step and at the end of the batch."""

    def __init__(self) -> None:
        self.snaps: list[tuple[str, dict[str, Tensor], dict[str, Tensor]]] = []

    def _take(self, pl_module: RCOTModule, tag: str) -> None:
        self.snaps.append((tag, weights(pl_module.transport_map), weights(pl_module.potential)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # type: ignore[no-untyped-def]
        is_map = optimizer is trainer.optimizers[0]
        self._take(pl_module, "map" if is_map else "potential")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self._take(pl_module, "end")


def changed(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_potential_update_leaves_map_alone_and_vice_versa() -> None:
    torch.manual_seed(0)
    snapshots = StepSnapshots()
    module = RCOTModule(
        ConvMap(), ConvPotential(), FROTObjective(supervised_weight=1.0), n_critic=2
    )
    trainer = make_trainer(max_epochs=1, callbacks=[snapshots])
    trainer.fit(module, loader([make_batch(0), make_batch(1)]))
    tags = [tag for tag, _, _ in snapshots.snaps]
    assert tags == ["potential", "potential", "map", "end"] * 2
    for (tag, map_before, pot_before), (_, map_after, pot_after) in pairwise(snapshots.snaps):
        if tag == "potential":
            assert changed(pot_before, pot_after) and not changed(map_before, map_after)
        elif tag == "map":
            assert changed(map_before, map_after) and not changed(pot_before, pot_after)


def test_transport_map_runs_once_per_iteration() -> None:
    t_map = ConvMap()
    module = RCOTModule(t_map, ConvPotential(), n_critic=3)
    make_trainer(max_epochs=1).fit(module, loader([make_batch(i) for i in range(4)]))
    assert t_map.calls == 4
    assert module.iteration == 4
    assert module.trainer.global_step == 4 * (3 + 1)


# ---------------------------------------------------------------- paired / unpaired / mixed
class LastMetrics(L.Callback):
    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.history.append({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.mark.parametrize(
    "paired",
    [[True] * 4, [False] * 4, [True, False, False, True]],
    ids=["paired", "unpaired", "mixed"],
)
def test_paired_unpaired_and_mixed_batches_train(paired: list[bool]) -> None:
    torch.manual_seed(0)
    metrics = LastMetrics()
    module = RCOTModule(ConvMap(), ConvPotential(), FROTObjective(supervised_weight=5.0))
    before = weights(module.transport_map)
    batches = [make_batch(i, paired=paired) for i in range(3)]
    make_trainer(max_epochs=1, callbacks=[metrics]).fit(module, loader(batches))
    assert changed(before, weights(module.transport_map))
    for step in metrics.history:
        assert all(torch.isfinite(torch.tensor(v)) for v in step.values())
        if not any(paired):
            assert step["train/supervised"] == 0.0
        else:
            assert step["train/supervised"] > 0.0


def test_unpaired_batch_without_target_key_trains() -> None:
    batch = make_batch(0)
    del batch["target"], batch["paired"], batch["degradation"]
    module = RCOTModule(ConvMap(), ConvPotential())
    make_trainer(max_epochs=1).fit(module, loader([batch]))
    assert module.iteration == 1


# ------------------------------------------------------------------------------- overfitting
def smooth_noisy_batch() -> dict[str, Tensor]:
    """Two smooth 32x32 images (what a net learns fast) with sigma-25 noise, paired."""
    g = torch.Generator().manual_seed(1)
    base = torch.rand(2, 3, 4, 4, generator=g)
    clean = nn.functional.interpolate(base, size=(32, 32), mode="bicubic").clamp(0, 1)
    noisy = (clean + 25 / 255 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    return {
        "degraded": noisy,
        "clean": clean,
        "target": clean,
        "paired": torch.ones(2, dtype=torch.bool),
        "degradation": torch.zeros(2, dtype=torch.long),
    }


def overfit_gain_db(module: RCOTModule, iterations: int = 300) -> float:
    """Train on :func:`smooth_noisy_batch` alone; PSNR gain of the restored batch in dB."""
    batch = smooth_noisy_batch()
    noisy, clean = batch["degraded"], batch["clean"]
    before = psnr(noisy, clean).mean().item()
    make_trainer(max_steps=2 * iterations).fit(module, loader([batch]))
    return psnr(module.restore(noisy), clean).mean().item() - before


# The longest fast test (about 100 s on an idle 2-core machine): CI runs it in the slow step.
@pytest.mark.slow
def test_overfitting_one_noisy_batch_gains_5_db() -> None:
    torch.manual_seed(0)
    module = RCOTModule(
        ConvMap(width=16),
        ConvPotential(),
        map_optimizer=partial(torch.optim.Adam, lr=2e-3),
        potential_optimizer=partial(torch.optim.Adam, lr=1e-4),
        objective=FROTObjective(supervised_weight=20.0),
    )
    assert overfit_gain_db(module) >= 5.0


# ------------------------------------------------------------------------------ checkpoints
def build_module(seed: int = 0) -> RCOTModule:
    torch.manual_seed(seed)
    return RCOTModule(
        ConvMap(),
        ConvPotential(),
        map_optimizer=partial(torch.optim.Adam, lr=1e-3),
        potential_optimizer=partial(torch.optim.RMSprop, lr=1e-3),
        map_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        potential_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.1),
        ema_decay=0.5,
        n_critic=2,
        build_config={"note": "kept across checkpoints"},
    )


def test_checkpoint_round_trip_continues_identically(tmp_path: Path) -> None:
    batches = [make_batch(i) for i in range(2)]
    straight = build_module()
    make_trainer(max_epochs=2).fit(straight, loader(batches))

    first = build_module()
    trainer = make_trainer(max_epochs=1)
    trainer.fit(first, loader(batches))
    ckpt = tmp_path / "one_epoch.ckpt"
    trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, weights_only=False)["rcot_iteration"] == 2

    resumed = build_module(seed=123)  # different initial weights: all must come from the file
    resumed.build_config = None
    trainer2 = make_trainer(max_epochs=2)
    trainer2.fit(resumed, loader(batches), ckpt_path=ckpt)

    assert resumed.iteration == straight.iteration == 4
    assert resumed.build_config == {"note": "kept across checkpoints"}
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for opt_a, opt_b in zip(trainer2.optimizers, straight.trainer.optimizers, strict=True):
        assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]
        for sa, sb in zip(opt_a.state.values(), opt_b.state.values(), strict=True):
            for key in sa:
                assert torch.equal(torch.as_tensor(sa[key]), torch.as_tensor(sb[key]))
    # Two epochs of StepLR: the map's lr halved twice, the potential's divided by 100.
    assert trainer2.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25)
    assert trainer2.optimizers[1].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.01)


# -------------------------------------------------------------------------- precision and EMA
def test_bf16_mixed_trains_on_cpu() -> None:
    torch.manual_seed(0)
    metrics = LastMetrics()
    module = RCOTModule(ConvMap(), ConvPotential())
    before = weights(module.transport_map)
    make_trainer(max_epochs=1, precision="bf16-mixed", callbacks=[metrics]).fit(
        module, loader([make_batch(i) for i in range(2)])
    )
    assert changed(before, weights(module.transport_map))
    assert all(torch.isfinite(torch.tensor(v)) for s in metrics.history for v in s.values())
    assert module.transport_map.body[0].weight.dtype == torch.float32


def test_gradient_clipping_goes_through_clip_gradients() -> None:
    seen: list[float] = []

    class Spy(RCOTModule):
        def clip_gradients(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):  # type: ignore[no-untyped-def, override]
            seen.append(float(gradient_clip_val))
            super().clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    module = Spy(ConvMap(), ConvPotential(), clipping={"map": 0.5, "potential": 2.0})
    make_trainer(max_epochs=1).fit(module, loader([make_batch(0)]))
    assert seen == [2.0, 0.5]


def test_validation_on_odd_sized_full_images_uses_ema() -> None:
    module = RCOTModule(ConvMap(), ConvPotential(), ema_decay=0.99)
    assert module.map_ema is not None and module.map_for_inference is module.map_ema.module
    val = [
        {"degraded": torch.rand(1, 3, 37, 53), "target": torch.rand(1, 3, 37, 53), "name": ["a"]}
    ]
    trainer = make_trainer(max_epochs=1, limit_val_batches=1.0)
    trainer.fit(module, loader([make_batch(0)]), DataLoader(ListDataset(val), batch_size=None))
    for key in ("val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input"):
        assert key in trainer.callback_metrics
    out = trainer.predict(module, DataLoader(ListDataset(val), batch_size=None))
    assert out is not None and out[0]["restored"].shape == (1, 3, 37, 53)


class MapSnapshots(L.Callback):
    """The map's weights before training and after every iteration."""

    def __init__(self) -> None:
        self.weights: list[list[Tensor]] = []

    def _snap(self, pl_module: L.LightningModule) -> None:
        self.weights.append([p.detach().clone() for p in pl_module.transport_map.parameters()])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._snap(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        self._snap(pl_module)


def test_ema_is_the_decayed_average_of_every_iterate() -> None:
    """ema_0 = T_0, ema_k = decay * ema_(k-1) + (1 - decay) * T_k, as torch.lerp computes it."""
    torch.manual_seed(0)
    decay, snapshots = 0.7, MapSnapshots()
    module = RCOTModule(ConvMap().double(), ConvPotential().double(), ema_decay=decay)
    batches = [
        {k: v.double() if v.is_floating_point() else v for k, v in make_batch(i).items()}
        for i in range(4)
    ]
    make_trainer(max_epochs=1, precision="64-true", callbacks=[snapshots]).fit(
        module, loader(batches)
    )
    assert module.map_ema is not None and len(snapshots.weights) == 5
    lerped = [w.clone() for w in snapshots.weights[0]]
    formula = [w.clone() for w in snapshots.weights[0]]
    for step in snapshots.weights[1:]:
        lerped = [torch.lerp(e, p, 1 - decay) for e, p in zip(lerped, step, strict=True)]
        formula = [decay * e + (1 - decay) * p for e, p in zip(formula, step, strict=True)]
    ema = list(module.map_ema.module.parameters())
    for got, want_lerp, want_formula in zip(ema, lerped, formula, strict=True):
        assert torch.equal(got, want_lerp)
        assert torch.allclose(got, want_formula, rtol=1e-12, atol=1e-14)
    assert int(module.map_ema.n_averaged) == 5  # T_0 and four iterates
    assert not torch.equal(ema[0], snapshots.weights[-1][0])  # an average, not the last map


def test_ema_warmup_grows_the_decay_from_the_first_iterate() -> None:
    """With warm-up the k-th update (n = k updates so far) uses d = min(decay, (1+n)/(10+n))."""
    torch.manual_seed(0)
    decay, snapshots = 0.999, MapSnapshots()
    module = RCOTModule(
        ConvMap().double(), ConvPotential().double(), ema_decay=decay, ema_warmup=True
    )
    batches = [
        {k: v.double() if v.is_floating_point() else v for k, v in make_batch(i).items()}
        for i in range(4)
    ]
    make_trainer(max_epochs=1, precision="64-true", callbacks=[snapshots]).fit(
        module, loader(batches)
    )
    assert module.map_ema is not None
    want = [w.clone() for w in snapshots.weights[0]]
    for n, step in enumerate(snapshots.weights[1:], start=1):
        d = min(decay, (1 + n) / (10 + n))
        want = [torch.lerp(e, p, 1 - d) for e, p in zip(want, step, strict=True)]
    for got, expected in zip(module.map_ema.module.parameters(), want, strict=True):
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(RCOTError, match="ema_warmup must be true or false"):
        RCOTModule(ConvMap(), ConvPotential(), ema_decay=decay, ema_warmup="yes")  # type: ignore[arg-type]


def test_training_starts_with_every_submodule_in_train_mode() -> None:
    """The EMA copy is not left in eval mode, so Lightning has nothing to warn about."""
    module = RCOTModule(ConvMap(), ConvPotential(), ema_decay=0.9)
    assert all(m.training for m in module.modules())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(max_epochs=1).fit(module, loader([make_batch(0)]))
    assert not [w for w in caught if "eval mode" in str(w.message)]


def test_invalid_hyperparameters_name_the_argument() -> None:
    with pytest.raises(RCOTError, match=r"n_critic must be >= 1"):
        RCOTModule(ConvMap(), ConvPotential(), n_critic=0)
    with pytest.raises(RCOTError, match=r"lambda_gp must be a number >= 0"):
        FROTObjective(lambda_gp=-1.0)
    with pytest.raises(RCOTError, match=r"ema_decay must be in"):
        RCOTModule(ConvMap(), ConvPotential(), ema_decay=1.5)
    with pytest.raises(RCOTError, match=r"fourier_norms has unknown degradation"):
        FROTObjective(fourier_norms={"snow": 2})
    with pytest.raises(RCOTError, match=r"objective must be an rcot_lightning"):
        RCOTModule(ConvMap(), ConvPotential(), objective=nn.L1Loss())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clipping": {"algorithm": "max"}}, r"clipping.algorithm must be 'norm' or 'value'"),
        ({"clipping": {"map": -1.0}}, r"clipping.map must be a finite number >= 0"),
        ({"clipping": {"potential": "big"}}, r"clipping.potential must be a finite number"),
        ({"clipping": {"map_grad_clip": 1.0}}, r"clipping has no field map_grad_clip"),
        ({"clipping": 1.0}, r"clipping must be a ClipSettings or a mapping"),
        ({"evaluation": {"crop_border": -2}}, r"evaluation.crop_border must be an integer >= 0"),
        ({"evaluation": {"y_channel": "yes"}}, r"evaluation.y_channel must be true or false"),
        ({"evaluation": {"also_y": 1}}, r"evaluation.also_y must be true or false"),
        ({"evaluation": {"val_tile_size": 0}}, r"evaluation.val_tile_size must be a positive"),
        ({"evaluation": {"tile": 64}}, r"evaluation has no field tile; its fields: y_channel"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RCOTError, match=message):
        RCOTModule(ConvMap(), ConvPotential(), **kwargs)


def test_settings_objects_and_mappings_build_the_same_module_with_plain_hparams() -> None:
    from omegaconf import OmegaConf

    clipping = ClipSettings(map=0.5, potential=2, algorithm="value")
    evaluation = EvalSettings(y_channel=True, crop_border=4, also_y=False, val_tile_size=64)
    as_objects = RCOTModule(ConvMap(), ConvPotential(), clipping=clipping, evaluation=evaluation)
    as_dicts = RCOTModule(
        ConvMap(),
        ConvPotential(),
        clipping={"map": 0.5, "potential": 2, "algorithm": "value"},
        # Hydra without _convert_ passes DictConfig nodes: mappings too.
        evaluation=OmegaConf.create({"y_channel": True, "crop_border": 4, "val_tile_size": 64}),
    )
    for module in (as_objects, as_dicts):
        assert module.clipping == clipping and module.evaluation == evaluation
        # Plain dicts, never the dataclasses: checkpoints load with weights_only=True.
        assert type(module.hparams["clipping"]) is dict
        assert module.hparams["clipping"] == {"map": 0.5, "potential": 2, "algorithm": "value"}
        assert module.hparams["evaluation"] == {
            "y_channel": True,
            "crop_border": 4,
            "also_y": False,
            "val_tile_size": 64,
        }
    defaults = RCOTModule(ConvMap(), ConvPotential())
    assert defaults.clipping == ClipSettings() and defaults.evaluation == EvalSettings()
    # Setting them later (rcot-eval's tile=) keeps the hparams in step.
    defaults.evaluation = dataclasses.replace(defaults.evaluation, val_tile_size=32)
    assert defaults.hparams["evaluation"]["val_tile_size"] == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.evaluation.crop_border = 2  # type: ignore[misc]


def test_a_checkpoint_holds_the_settings_as_plain_dicts(tmp_path: Path) -> None:
    module = RCOTModule(ConvMap(), ConvPotential(), clipping={"map": 1.0})
    trainer = make_trainer(max_epochs=1)
    trainer.fit(module, loader([make_batch(0)]))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    stored = torch.load(tmp_path / "m.ckpt", weights_only=True)["hyper_parameters"]
    assert stored["clipping"] == {"map": 1.0, "potential": None, "algorithm": "norm"}
    assert stored["evaluation"]["crop_border"] == 0
    loaded = RCOTModule.load_from_checkpoint(
        tmp_path / "m.ckpt",
        transport_map=ConvMap(),
        potential=ConvPotential(),
        objective=FROTObjective(),
    )
    assert loaded.clipping == module.clipping and loaded.evaluation == module.evaluation


def test_fp16_grad_scaler_penalty_is_unscaled() -> None:
    """Under a GradScaler the penalty must see true input gradients, not scaled ones.

    Lightning maps ``16-mixed`` to bf16 on CPU, so the fp16 + scaler path (what GPUs run) is
    exercised here with an explicit CPU GradScaler plugin.
    """
    from lightning.pytorch.plugins import MixedPrecision

    first_penalty: dict[str, float] = {}
    for name, kwargs in {
        "fp32": {},
        "fp16": {
            "plugins": [
                MixedPrecision(
                    "16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0)
                )
            ]
        },
    }.items():
        torch.manual_seed(0)
        metrics = LastMetrics()
        module = RCOTModule(ConvMap(), ConvPotential(), clipping=ClipSettings(map=1.0))
        make_trainer(max_epochs=1, callbacks=[metrics], **kwargs).fit(
            module, loader([make_batch(0)])
        )
        first_penalty[name] = metrics.history[0]["train/gradient_penalty"]
    # Scaled gradients would give (1024 |g| - 1)^2, orders of magnitude away.
    assert first_penalty["fp16"] == pytest.approx(first_penalty["fp32"], rel=2e-2)


def _tiny_rcot(**kwargs: Any) -> RCOTModule:
    from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
    from rcot_lightning.nets import Potential, TwoPassMap

    return RCOTModule(
        TwoPassMap(**MAP_PRESETS["tiny"]), Potential(**POTENTIAL_PRESETS["tiny"]), **kwargs
    )


def test_tiny_two_pass_map_trains_with_one_map_forward_per_iteration() -> None:
    torch.manual_seed(0)
    module = _tiny_rcot(n_critic=2, objective=FROTObjective(supervised_weight=100.0))
    calls = {"residual_encoder": 0, "restoration.encoder": 0}
    for name in calls:
        module.transport_map.get_submodule(name).register_forward_hook(
            lambda *_, n=name: calls.__setitem__(n, calls[n] + 1)
        )
    metrics = LastMetrics()
    batches = [make_batch(i, size=32, paired=[True, False, True, False]) for i in range(3)]
    make_trainer(max_epochs=1, callbacks=[metrics]).fit(module, loader(batches))
    # One T(y) per iteration: the y-encoder and the residual encoder each ran 3 times.
    assert calls == {"residual_encoder": 3, "restoration.encoder": 3}
    assert all(torch.isfinite(torch.tensor(v)) for s in metrics.history for v in s.values())


@pytest.mark.slow
def test_tiny_two_pass_map_overfits_one_noisy_batch() -> None:
    torch.manual_seed(0)
    # With costs averaged over pixels and a 1-Lipschitz potential, a small supervised weight
    # lets the adversarial term dominate (the reference uses 1e4 for this reason).
    module = _tiny_rcot(
        map_optimizer=partial(torch.optim.Adam, lr=2e-3),
        potential_optimizer=partial(torch.optim.Adam, lr=1e-4),
        objective=FROTObjective(supervised_weight=1000.0),
    )
    assert overfit_gain_db(module) >= 5.0


@pytest.mark.slow
def test_compiled_map_trains_like_the_eager_map() -> None:
    results = []
    for compile_map in (False, True):
        torch.manual_seed(0)
        module = RCOTModule(ConvMap(), ConvPotential(), compile_map=compile_map)
        make_trainer(max_epochs=1).fit(module, loader([make_batch(i) for i in range(3)]))
        results.append(weights(module))
    eager, compiled = results
    assert eager.keys() == compiled.keys()  # no "_orig_mod" duplicates in the state dict
    for key in eager:
        assert torch.allclose(eager[key], compiled[key], atol=1e-5), key


# ------------------------------------------------------------------ objective-driven behaviour
def test_zero_potential_weight_trains_the_map_alone() -> None:
    """A supervised-only baseline: no potential update, phi absent from the map loss."""
    torch.manual_seed(0)
    snapshots = StepSnapshots()
    module = RCOTModule(
        ConvMap(),
        ConvPotential(),
        FROTObjective(potential_weight=0.0, supervised_weight=1.0),
        n_critic=2,
    )
    phi_before = weights(module.potential)
    make_trainer(max_epochs=1, callbacks=[snapshots]).fit(
        module, loader([make_batch(0), make_batch(1)])
    )
    assert [tag for tag, _, _ in snapshots.snaps] == ["map", "end"] * 2
    assert module.iteration == 2 and module.trainer.global_step == 2
    assert not changed(phi_before, weights(module.potential))


def test_penalty_weights_follow_the_sample_key_not_the_batch() -> None:
    """The same sample draws the same mixing weight wherever it sits (DDP equivalence)."""
    module = RCOTModule(ConvMap(), ConvPotential(), seed=7)
    x = torch.rand(4, 3, 8, 8)
    whole = module._penalty_alpha({"clean": x, "sample_key": torch.tensor([10, 11, 12, 13])}, 0)
    halves = [
        module._penalty_alpha({"clean": x[:2], "sample_key": torch.tensor(keys)}, 0)
        for keys in ([10, 11], [12, 13])
    ]
    assert torch.equal(whole, torch.cat(halves))
    other_step = module._penalty_alpha(
        {"clean": x, "sample_key": torch.tensor([10, 11, 12, 13])}, 1
    )
    assert not torch.equal(whole, other_step)
    assert bool(((whole > 0) & (whole < 1)).all())


def test_rgb_metrics_can_log_the_y_channel_alongside() -> None:
    module = RCOTModule(ConvMap(), ConvPotential(), evaluation={"also_y": True})
    val = [
        {"degraded": torch.rand(1, 3, 24, 24), "target": torch.rand(1, 3, 24, 24), "name": ["a"]}
    ]
    trainer = make_trainer(max_epochs=1, limit_val_batches=1.0)
    trainer.fit(module, loader([make_batch(0)]), DataLoader(ListDataset(val), batch_size=None))
    metrics = trainer.callback_metrics
    assert {"val/psnr", "val/psnr_y", "val/ssim_y"} <= set(metrics)
    assert float(metrics["val/psnr_y"]) != float(metrics["val/psnr"])
