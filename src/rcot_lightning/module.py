"""``RCOTModule``: the RCOT training algorithm as a LightningModule with manual optimisation."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rcot_lightning.checkpoints.keys import (
    BUILD_CONFIG_KEY,
    FORMAT_KEY,
    FORMAT_VERSION,
    ITERATION_KEY,
)
from rcot_lightning.checkpoints.trust import plain
from rcot_lightning.checkpoints.upgrade import upgrade_checkpoint
from rcot_lightning.console import quiet_third_party
from rcot_lightning.contract import (
    CLEAN,
    DEGRADATION,
    DEGRADED,
    NAME,
    PAIRED,
    SAMPLE_KEY,
    TARGET,
)
from rcot_lightning.errors import DivergedError, RCOTError
from rcot_lightning.inference import restore_image
from rcot_lightning.metrics import score_images
from rcot_lightning.objective import FROTObjective
from rcot_lightning.seeding import derive_seed, seeded_generator
from rcot_lightning.values import as_settings, at_least, flag, positive_int

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]

#: A gradient-penalty weight above this is a typo or a probe, not a setting (the paper uses 10).
_LARGE_PENALTY_WEIGHT = 1e6


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class EvalSettings:
    """How validation, test and predict restore and score images (``RCOTModule(evaluation=...)``).

    Args:
        y_channel: PSNR/SSIM on the BT.601 Y channel.
        crop_border: pixels shaved from each border before PSNR/SSIM.
        also_y: with RGB metrics, also log ``psnr_y`` / ``ssim_y`` on the Y channel.
        val_tile_size: restore validation/test/predict images in overlapping tiles of this size
            (a multiple of the map's ``size_multiple``; the map pads each input to it itself),
            or None for whole images.

    Example:
        >>> EvalSettings.of({"crop_border": 4})
        EvalSettings(y_channel=False, crop_border=4, also_y=False, val_tile_size=None)
        >>> EvalSettings(crop_border=-1)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: evaluation.crop_border must be an integer >= 0, got -1
    """

    y_channel: bool = False
    crop_border: int = 0
    also_y: bool = False
    val_tile_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("y_channel", "also_y"):
            flag(getattr(self, name), f"evaluation.{name}", keyed=True)
        at_least(self.crop_border, "evaluation.crop_border", 0, keyed=True)
        positive_int(self.val_tile_size, "evaluation.val_tile_size", allow_none=True, keyed=True)

    @classmethod
    def of(cls, value: EvalSettings | Mapping[str, Any] | None) -> EvalSettings:
        """``value`` as settings: an instance as it is, a mapping of fields, None the defaults."""
        return as_settings(cls, value, "evaluation")


@dataclass(frozen=True)
class ClipSettings:
    """Gradient clipping of the two networks (``RCOTModule(clipping=...)``).

    Clipping runs in ``on_before_optimizer_step``, after a GradScaler has unscaled the gradients;
    ``trainer.gradient_clip_val`` cannot be used with RCOT's two manual optimisers.

    Args:
        map: clip value for the map's gradients, or None (0 also clips nothing).
        potential: clip value for the potential's gradients, or None.
        algorithm: ``"norm"`` (clip the gradients' total norm) or ``"value"`` (each element).

    Example:
        >>> ClipSettings.of({"map": 0.5})
        ClipSettings(map=0.5, potential=None, algorithm='norm')
        >>> ClipSettings(algorithm="max")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: clipping.algorithm must be 'norm' or 'value', got 'max'
    """

    map: float | None = None
    potential: float | None = None
    algorithm: str = "norm"

    def __post_init__(self) -> None:
        for name in ("map", "potential"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and 0 <= value < float("inf")):
                raise RCOTError(
                    f"clipping.{name} must be a finite number >= 0 or null, got {value!r}"
                )
        if self.algorithm not in ("norm", "value"):
            raise RCOTError(f"clipping.algorithm must be 'norm' or 'value', got {self.algorithm!r}")

    @classmethod
    def of(cls, value: ClipSettings | Mapping[str, Any] | None) -> ClipSettings:
        """``value`` as settings: an instance as it is, a mapping of fields, None the defaults."""
        return as_settings(cls, value, "clipping")


def _default_rmsprop(lr: float) -> OptimizerFactory:
    def factory(params: Iterable[nn.Parameter]) -> Optimizer:
        return torch.optim.RMSprop(params, lr=lr)

    return factory


def ema_average(decay: float, warmup: bool = False) -> Callable[..., None]:
    """The update of :attr:`RCOTModule.map_ema`: ``ema <- d * ema + (1 - d) * T`` with
    ``d = decay``, or with warm-up ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates.

    Example:
        >>> ema, now = [torch.zeros(2)], [torch.ones(2)]
        >>> ema_average(0.999, warmup=True)(ema, now, torch.tensor(1))
        >>> round(ema[0][0].item(), 4)  # d = 2 / 11
        0.8182
    """
    if not warmup:
        return get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(averaged, current, weight)

    return update


class RCOTModule(L.LightningModule):
    """Residual-Conditioned Optimal Transport, trained by alternating a potential and a map.

    Per training batch (one *iteration*):

    1. ``T(y)`` is computed once;
    2. ``n_critic`` potential updates minimise the objective's potential loss
       ``mean phi(T(y)) - mean phi(x) + lambda_gp GP`` (``T(y)`` detached; loss and penalty in
       one backward and one optimizer step);
    3. one map update minimises the objective's map loss ``w_c c(T(y), y) + w_g g(y - T(y))
       - w_phi mean phi(T(y)) + w_s l_sup`` reusing the graph of step 1 (the potential's update
       does not change ``T(y)``, so recomputing it would be waste).

    What is minimised lives in :class:`~rcot_lightning.objective.FROTObjective`; this class
    owns how: the networks, the optimisers, the alternation, EMA, evaluation and checkpoints.

    Lightning counts one ``global_step`` per optimizer step, so ``trainer.global_step ==
    iteration * (n_critic + 1)``; ``Trainer(max_steps=k)`` therefore stops after
    ``k / (n_critic + 1)`` iterations. :attr:`iteration` is saved in checkpoints. With an
    objective whose ``potential_weight`` is 0 the potential is never updated and
    ``global_step == iteration``.

    Args:
        transport_map: the map ``T``; any ``nn.Module`` from ``(B, 3, H, W)`` to the same shape.
        potential: the potential ``phi``; ``(B, 3, H, W)`` to scores ``(B,)`` or ``(B, 1)``.
        objective: the FROT objective and its weights; ``FROTObjective()`` if None.
        map_optimizer: ``factory(params) -> Optimizer`` (a Hydra partial); RMSprop(5e-5) if None.
        potential_optimizer: as above for phi; RMSprop(1e-4) if None.
        map_scheduler: ``factory(optimizer) -> LRScheduler`` or None.
        potential_scheduler: as above for phi.
        scheduler_interval: step schedulers every ``"epoch"`` or every ``"step"`` (iteration).
        n_critic: potential updates per map update.
        clipping: gradient clipping of the two networks, a :class:`ClipSettings` or a mapping
            of its fields (``{"map": 1.0}``); None clips nothing.
        max_bad_steps: an update whose loss or gradient is not finite is skipped (weights and
            optimiser state unchanged) and counted (``train/skipped_updates``); after this many
            consecutive iterations with a skipped update training stops with
            :class:`DivergedError`. A skipped update is not an optimizer step, so it does not
            count towards ``global_step`` (nor ``max_steps``).
        ema_decay: keep an exponential moving average of ``T`` with this decay (e.g. 0.999),
            ``ema = decay * ema + (1 - decay) * T`` after every iteration, starting from ``T``'s
            initial weights; validation, test, predict and export then use it. It is
            :attr:`map_ema`, an :class:`~torch.optim.swa_utils.AveragedModel` whose ``module``
            is the averaged map. It follows the module's train/eval mode like every submodule
            (Lightning evaluates, tests and predicts in eval mode, and ``export_map`` and
            ``load_module`` return eval-mode maps), so training starts with no module in eval
            mode.
        ema_warmup: let the average's decay grow as ``min(ema_decay, (1 + n) / (10 + n))``
            after ``n`` updates (the warm-up of TensorFlow's ``ExponentialMovingAverage``), so
            the initial weights fade within tens of iterations instead of ``1 / (1 - decay)``:
            with decay 0.999 and no warm-up they still weigh 10% after 2300 iterations, enough
            to put a short run's average below its input. Off by default (runs made without it
            resume identically).
        compile_map: run ``T`` through ``torch.compile`` (the potential is never compiled: its
            double backward is not supported by the compiler).
        evaluation: how validation, test and predict restore and score images (metric
            conventions, tiling), an :class:`EvalSettings` or a mapping of its fields
            (``{"y_channel": True, "crop_border": 4}``); None for RGB metrics on whole images.
        seed: seeds the gradient penalty's mixing weights, per sample (``batch["sample_key"]``)
            or, without keys, per (rank, iteration, critic step), so a resumed run draws
            exactly what an uninterrupted run would.
        build_config: a plain dict that rebuilds this module with Hydra (stored in checkpoints).
    """

    def __init__(
        self,
        transport_map: nn.Module,
        potential: nn.Module,
        objective: FROTObjective | None = None,
        *,
        map_optimizer: OptimizerFactory | None = None,
        potential_optimizer: OptimizerFactory | None = None,
        map_scheduler: SchedulerFactory | None = None,
        potential_scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        n_critic: int = 1,
        clipping: ClipSettings | Mapping[str, Any] | None = None,
        max_bad_steps: int = 10,
        ema_decay: float | None = None,
        ema_warmup: bool = False,
        compile_map: bool = False,
        evaluation: EvalSettings | Mapping[str, Any] | None = None,
        seed: int = 0,
        build_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # A Trainer a user builds around this module gets the entry points' quiet console
        # (Lightning's advertisements, warnings that do not apply to RCOT); idempotent.
        quiet_third_party()
        if n_critic < 1:
            raise RCOTError(f"n_critic must be >= 1, got {n_critic!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise RCOTError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        if max_bad_steps < 1:
            raise RCOTError(f"max_bad_steps must be >= 1, got {max_bad_steps!r}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise RCOTError(f"ema_decay must be in (0, 1) or null, got {ema_decay!r}")
        if not isinstance(ema_warmup, bool):
            raise RCOTError(f"ema_warmup must be true or false, got {ema_warmup!r}")
        if objective is not None and not isinstance(objective, FROTObjective):
            raise RCOTError(
                f"objective must be an rcot_lightning.objective.FROTObjective, got "
                f"{type(objective).__name__}"
            )
        # Networks, the objective and factories are objects, not hyper-parameters; the Hydra
        # config that built them travels in `build_config`, the objective's settings are
        # logged below, and the two settings objects are stored as plain dicts (their setters):
        # a checkpoint must load weights-only.
        self.save_hyperparameters(
            ignore=[
                "transport_map",
                "potential",
                "objective",
                "clipping",
                "evaluation",
                "map_optimizer",
                "potential_optimizer",
                "map_scheduler",
                "potential_scheduler",
                "build_config",
            ]
        )
        self.automatic_optimization = False
        self.transport_map = transport_map
        self.potential = potential
        self.objective = objective if objective is not None else FROTObjective()
        self.hparams["objective"] = self.objective.settings()
        self.clipping = ClipSettings.of(clipping)
        self.evaluation = EvalSettings.of(evaluation)
        self.map_ema: AveragedModel | None = None
        if ema_decay is not None:
            # use_buffers=False: buffers are copied from T at each update, not averaged.
            self.map_ema = AveragedModel(
                transport_map, multi_avg_fn=ema_average(ema_decay, ema_warmup), use_buffers=False
            ).requires_grad_(False)
            # Count T's initial weights as the first average: the first update then mixes
            # them in (decay * T_0 + (1 - decay) * T_1) instead of copying T_1.
            self.map_ema.update_parameters(transport_map)
        self._map_optimizer = map_optimizer or _default_rmsprop(5e-5)
        self._potential_optimizer = potential_optimizer or _default_rmsprop(1e-4)
        self._map_scheduler = map_scheduler
        self._potential_scheduler = potential_scheduler
        # Plain containers: a checkpoint must load with torch.load(weights_only=True).
        self.build_config = plain(build_config) if build_config is not None else None
        self.iteration = 0
        self.skipped_updates = 0
        self._bad_streak = 0
        self._compiled_map: Callable[[Tensor], Tensor] | None = None

    # ------------------------------------------------------------------------------- settings
    @property
    def clipping(self) -> ClipSettings:
        """The gradient clipping; setting it (a :class:`ClipSettings` or a mapping) also sets
        ``hparams["clipping"]``, a plain dict."""
        return self._clipping

    @clipping.setter
    def clipping(self, value: ClipSettings | Mapping[str, Any] | None) -> None:
        self._clipping = ClipSettings.of(value)
        self.hparams["clipping"] = asdict(self._clipping)

    @property
    def evaluation(self) -> EvalSettings:
        """The evaluation settings; setting them (an :class:`EvalSettings` or a mapping) also
        sets ``hparams["evaluation"]``, a plain dict."""
        return self._evaluation

    @evaluation.setter
    def evaluation(self, value: EvalSettings | Mapping[str, Any] | None) -> None:
        self._evaluation = EvalSettings.of(value)
        self.hparams["evaluation"] = asdict(self._evaluation)

    # ----------------------------------------------------------------------------- optimisers
    def configure_optimizers(self) -> Any:
        opt_map = self._map_optimizer(self.transport_map.parameters())
        opt_potential = self._potential_optimizer(self.potential.parameters())
        if self._map_scheduler is None and self._potential_scheduler is None:
            return [opt_map, opt_potential]
        schedulers = [
            factory(opt)
            for factory, opt in (
                (self._map_scheduler, opt_map),
                (self._potential_scheduler, opt_potential),
            )
            if factory is not None
        ]
        return [opt_map, opt_potential], schedulers

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        # Lightning calls this after a GradScaler has unscaled the gradients, so clipping here is
        # correct under every precision (clipping right after manual_backward would clip
        # scaled gradients under 16-mixed).
        is_map = optimizer is self.trainer.optimizers[0]
        clip = self.clipping.map if is_map else self.clipping.potential
        if clip:
            self.clip_gradients(
                optimizer, gradient_clip_val=clip, gradient_clip_algorithm=self.clipping.algorithm
            )

    # ------------------------------------------------------------------------------ the map
    def forward(self, degraded: Tensor) -> Tensor:
        """``T(y)`` with the training map (compiled when ``compile_map``)."""
        if self.hparams["compile_map"]:
            if self._compiled_map is None:
                # object.__setattr__ keeps the compiled wrapper out of the module tree, so
                # the state dict has no duplicate `_orig_mod` keys.
                object.__setattr__(self, "_compiled_map", torch.compile(self.transport_map))
            assert self._compiled_map is not None
            return self._compiled_map(degraded)
        return self.transport_map(degraded)

    @property
    def map_for_inference(self) -> nn.Module:
        """The EMA of ``T`` (``map_ema.module``) when enabled, else ``T`` itself."""
        return self.map_ema.module if self.map_ema is not None else self.transport_map

    @torch.no_grad()
    def restore(self, degraded: Tensor, tile: int | None = None) -> Tensor:
        """Restore full-size images of any size with :attr:`map_for_inference`.

        Args:
            degraded: ``(B, 3, H, W)`` in [0, 1].
            tile: tile size for tiled inference; defaults to ``evaluation.val_tile_size``.

        Returns:
            ``(B, 3, H, W)``, clamped to [0, 1].
        """
        net = self.map_for_inference
        out = restore_image(
            net,
            degraded,
            tile=tile if tile is not None else self.evaluation.val_tile_size,
        )
        return out.clamp(0, 1)

    def export_map(self) -> nn.Module:
        """A stand-alone copy of the map to deploy (the EMA weights when enabled)."""
        return copy.deepcopy(self.map_for_inference).eval().requires_grad_(False)

    # ------------------------------------------------------------------------ the algorithm
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """One RCOT iteration, as in the paper's algorithm.

        ``tests/test_module.py`` writes the same iteration out in plain PyTorch (``plain_rcot``)
        and checks that three iterations of this step give the same weights
        (``test_three_iterations_equal_a_plain_pytorch_implementation``).
        """
        opt_map, opt_potential = self.optimizers()  # type: ignore[misc, attr-defined]
        y = batch[DEGRADED]
        restored = self(y)  # T(y), once per iteration
        skipped: list[str] = []  # the updates of this iteration left out as non-finite
        logs: dict[str, Tensor] = {}

        if self.objective.uses_potential:  # n_critic updates of phi against the fixed T(y)
            self.toggle_optimizer(opt_potential)
            for critic_step in range(self.hparams["n_critic"]):
                alpha = self._penalty_alpha(batch, critic_step)
                loss, logs = self.objective.potential_loss(
                    self._score, batch[CLEAN], restored.detach(), alpha, self._grad_scale()
                )
                if not self._finite_update(opt_potential, loss):
                    skipped.append(f"potential loss {float(loss.detach()):.4g}")
            self.untoggle_optimizer(opt_potential)

        self.toggle_optimizer(opt_map)  # one update of T on the graph of T(y); phi is frozen
        score = self._score(restored) if self.objective.uses_potential else None
        loss, parts = self.objective.map_loss(
            y,
            restored,
            score,
            target=batch.get(TARGET),
            paired=batch.get(PAIRED),
            degradation=batch.get(DEGRADATION),
        )
        if not self._finite_update(opt_map, loss):
            skipped.append(f"map loss {float(loss.detach()):.4g}")
        self.untoggle_optimizer(opt_map)

        self._stop_if_diverged(skipped)
        self._update_ema()
        self.iteration += 1
        if self.hparams["scheduler_interval"] == "step":
            self._step_schedulers()
        self._log_iteration(logs | parts, opt_map, opt_potential, batch_size=y.shape[0])

    def _finite_update(self, optimizer: Any, loss: Tensor) -> bool:
        """Backward and step; return False, with no step, if the loss or a gradient is not finite.

        A skipped step leaves the weights and the optimiser's state as they were, so one bad
        batch (or a spike) cannot turn every parameter into NaN. Under DDP the gradients are
        already averaged and the ranks agree on the decision, so their weights stay equal.
        """
        optimizer.zero_grad()
        self.manual_backward(loss)
        finite = bool(torch.isfinite(loss.detach()).all())
        if finite and self._grad_scale() is None:  # a GradScaler skips inf gradients itself
            grads = [
                p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None
            ]
            finite = (
                bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()) if grads else True
            )
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            optimizer.step()
        else:
            optimizer.zero_grad()
        return finite

    def _stop_if_diverged(self, skipped: list[str]) -> None:
        """Count an iteration's skipped updates; stop after ``max_bad_steps`` bad iterations."""
        if not skipped:
            self._bad_streak = 0
            return
        self.skipped_updates += len(skipped)
        self._bad_streak += 1
        log.warning(
            "iteration %d: skipped the update(s) with a non-finite loss or gradient (%s)",
            self.iteration,
            ", ".join(skipped),
        )
        limit = self.hparams["max_bad_steps"]
        if self._bad_streak >= limit:
            raise DivergedError(
                f"training stopped at iteration {self.iteration}: {limit} iterations in a row "
                f"had a non-finite loss or gradient ({', '.join(skipped)}), the weights "
                f"are those of the last finite update (last.ckpt); {self._divergence_advice()}; "
                "model.max_bad_steps sets the limit"
            )

    def _log_iteration(
        self, logs: dict[str, Tensor], opt_map: Any, opt_potential: Any, batch_size: int
    ) -> None:
        """The losses' parts, learning rates and skipped updates (``train/...``), and the
        iteration (on the progress bar)."""
        logs["lr_map"] = torch.tensor(float(opt_map.param_groups[0]["lr"]))
        logs["lr_potential"] = torch.tensor(float(opt_potential.param_groups[0]["lr"]))
        logs["skipped_updates"] = torch.tensor(float(self.skipped_updates))
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=batch_size)
        self.log("iteration", float(self.iteration), prog_bar=True, batch_size=batch_size)

    def _divergence_advice(self) -> str:
        """What to change: a weight of the objective far off its usual range overflows first."""
        lambda_gp = float(self.objective.lambda_gp)
        if not lambda_gp <= _LARGE_PENALTY_WEIGHT:
            return (
                f"model.objective.lambda_gp={lambda_gp:g} overflows the gradient penalty; use "
                "a value near the usual 10"
            )
        return (
            "lower the learning rates (model.map_optimizer.lr, model.potential_optimizer.lr) "
            "or clip gradients (model.clipping.map)"
        )

    def _score(self, images: Tensor) -> Tensor:
        scores = self.potential(images)
        return scores.reshape(images.shape[0])

    def _penalty_alpha(self, batch: Mapping[str, Any], critic_step: int) -> Tensor:
        """The penalty's U(0, 1) mixing weights, one per sample.

        The global RNG is not saved in checkpoints (and data loaders draw from it), so they come
        from generators keyed by where we are: by each sample's key when the batch has one (the
        same sample gets the same weight on any rank and in any world size, which makes DDP
        equal to one process on the whole batch), else by (rank, iteration, critic step).
        """
        x: Tensor = batch[CLEAN]
        keys = batch.get(SAMPLE_KEY)
        seed = self.hparams["seed"]
        if keys is not None:
            values = [
                torch.rand((), generator=seeded_generator(seed, "alpha", int(k), critic_step))
                for k in keys.tolist()
            ]
            alpha = torch.stack(values)
        else:
            key = derive_seed(seed, "alpha", self.global_rank, self.iteration, critic_step)
            alpha = torch.rand(x.shape[0], generator=torch.Generator().manual_seed(key))
        return alpha.to(device=x.device, dtype=x.dtype)

    def _grad_scale(self) -> float | None:
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is None or not scaler.is_enabled():
            return None
        return float(scaler.get_scale())

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.map_ema is not None:
            self.map_ema.update_parameters(self.transport_map)

    def _step_schedulers(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()  # type: ignore[call-arg]

    def on_train_epoch_end(self) -> None:
        if self.hparams["scheduler_interval"] == "epoch":
            self._step_schedulers()

    # ------------------------------------------------------------------ evaluation and predict
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Mapping[str, Any], stage: str) -> None:
        y = batch[DEGRADED]
        values = score_images(
            self.restore(y),
            batch[TARGET],
            degraded=y,
            y_channel=self.evaluation.y_channel,
            crop_border=self.evaluation.crop_border,
            also_y=self.evaluation.also_y,
        )
        # Per-image scores averaged over the set: Lightning's epoch mean weights each batch's
        # mean by its size and sums over ranks, so no metric objects are needed (they would
        # also fill the model summary with a dozen rows of no parameters).
        for name, per_image in values.items():
            self.log(
                f"{stage}/{name}",
                per_image.float().mean(),
                on_step=False,
                on_epoch=True,
                prog_bar=name == "psnr",
                batch_size=y.shape[0],
                sync_dist=True,
            )

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        restored = self.restore(batch[DEGRADED])
        return {"restored": restored, NAME: batch.get(NAME)}

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning's hook order puts this one last: hyper-parameters given as OmegaConf nodes
        # or paths become plain values, so the file loads with torch.load(weights_only=True).
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:
                checkpoint[key] = plain(checkpoint[key])
        checkpoint[ITERATION_KEY] = self.iteration
        checkpoint[FORMAT_KEY] = FORMAT_VERSION
        if self.build_config is not None:
            checkpoint[BUILD_CONFIG_KEY] = self.build_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning loads checkpoint["state_dict"] after this hook (resume, load_from_checkpoint).
        upgrade_checkpoint(checkpoint)
        self.iteration = int(checkpoint.get(ITERATION_KEY, 0))
        if self.build_config is None and BUILD_CONFIG_KEY in checkpoint:
            # Carried to the next checkpoint as the text it is: never resolved, never built.
            self.build_config = plain(checkpoint[BUILD_CONFIG_KEY], resolve=False)
