"""``RCOTModule``: the RCOT training algorithm as a LightningModule with manual optimisation."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric

from rcot_lightning.contract import CLEAN, DEGRADATION, DEGRADED, NAME, PAIRED, TARGET
from rcot_lightning.errors import RCOTError
from rcot_lightning.inference import restore_image
from rcot_lightning.metrics import psnr, ssim
from rcot_lightning.objective import (
    fourier_exponent_table,
    fourier_residual_cost,
    gradient_penalty,
    map_loss,
    potential_loss,
    reduce_fourier_cost,
    supervised_cost,
    transport_cost,
)

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]

_BUILD_CONFIG_KEY = "rcot_build_config"
_ITERATION_KEY = "rcot_iteration"


def _default_rmsprop(lr: float) -> OptimizerFactory:
    def factory(params: Iterable[nn.Parameter]) -> Optimizer:
        return torch.optim.RMSprop(params, lr=lr)

    return factory


def _check_positive(name: str, value: float, allow_zero: bool = True) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise RCOTError(f"model.{name} must be {bound}, got {value!r}")


class RCOTModule(L.LightningModule):
    """Residual-Conditioned Optimal Transport, trained by alternating a potential and a map.

    Per training batch (one *iteration*):

    1. ``T(y)`` is computed once;
    2. ``n_critic`` potential updates minimise ``mean phi(T(y)) - mean phi(x) + lambda_gp GP``
       (``T(y)`` detached; loss and penalty in one backward and one optimizer step);
    3. one map update minimises ``w_c c(T(y), y) + w_g g(y - T(y)) - mean phi(T(y))
       + w_s l_sup`` reusing the graph of step 1 (the potential's update does not change
       ``T(y)``, so recomputing it would be waste).

    Lightning counts one ``global_step`` per optimizer step, so ``trainer.global_step ==
    iteration * (n_critic + 1)``; ``Trainer(max_steps=k)`` therefore stops after
    ``k / (n_critic + 1)`` iterations. :attr:`iteration` is saved in checkpoints.

    Args:
        transport_map: the map ``T``; any ``nn.Module`` from ``(B, 3, H, W)`` to the same shape.
        potential: the potential ``phi``; ``(B, 3, H, W)`` to scores ``(B,)`` or ``(B, 1)``.
        map_optimizer: ``factory(params) -> Optimizer`` (a Hydra partial); RMSprop(5e-5) if None.
        potential_optimizer: as above for phi; RMSprop(1e-4) if None.
        map_scheduler: ``factory(optimizer) -> LRScheduler`` or None.
        potential_scheduler: as above for phi.
        scheduler_interval: step schedulers every ``"epoch"`` or every ``"step"`` (iteration).
        n_critic: potential updates per map update.
        lambda_gp: gradient-penalty weight.
        transport_cost: ``"rms"`` (reference), ``"l1"`` or ``"l2"``.
        transport_weight: weight of the transport cost.
        fourier_weight: weight of the Fourier residual cost ``g``.
        fourier_norms: per-degradation exponent overrides, e.g. ``{"noise": 2, "rain": 1}``.
        fft_norm: FFT normalisation of ``g`` (``"ortho"``: Parseval holds).
        reference_fourier: reproduce the reference script's ``g`` formula and reduction.
        supervised_loss: ``"l1"`` or ``"l2"``, on rows marked ``paired``.
        supervised_weight: weight of the supervised term (the reference uses 1e4 with l1).
        map_grad_clip: clip value for the map's gradients, or None.
        potential_grad_clip: clip value for the potential's gradients, or None.
        grad_clip_algorithm: ``"norm"`` or ``"value"``.
        ema_decay: keep an exponential moving average of ``T`` with this decay (e.g. 0.999);
            validation, test, predict and export then use it.
        compile_map: run ``T`` through ``torch.compile`` (the potential is never compiled: its
            double backward is not supported by the compiler).
        metric_y_channel: PSNR/SSIM on the BT.601 Y channel.
        metric_crop_border: pixels shaved from each border before PSNR/SSIM.
        pad_multiple: inputs are reflect-padded to this multiple at inference.
        val_tile_size: restore validation/test/predict images in overlapping tiles of this size.
        seed: seeds the gradient penalty's mixing weights, per (rank, iteration, critic step),
            so a resumed run draws exactly what an uninterrupted run would.
        build_config: a plain dict that rebuilds this module with Hydra (stored in checkpoints).
    """

    fourier_exponents: Tensor

    def __init__(
        self,
        transport_map: nn.Module,
        potential: nn.Module,
        *,
        map_optimizer: OptimizerFactory | None = None,
        potential_optimizer: OptimizerFactory | None = None,
        map_scheduler: SchedulerFactory | None = None,
        potential_scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        n_critic: int = 1,
        lambda_gp: float = 10.0,
        transport_cost: str = "rms",
        transport_weight: float = 1.0,
        fourier_weight: float = 1.0,
        fourier_norms: Mapping[str, int] | None = None,
        fft_norm: str = "ortho",
        reference_fourier: bool = False,
        supervised_loss: str = "l1",
        supervised_weight: float = 1.0,
        map_grad_clip: float | None = None,
        potential_grad_clip: float | None = None,
        grad_clip_algorithm: str = "norm",
        ema_decay: float | None = None,
        compile_map: bool = False,
        metric_y_channel: bool = False,
        metric_crop_border: int = 0,
        pad_multiple: int = 8,
        val_tile_size: int | None = None,
        seed: int = 0,
        build_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if n_critic < 1:
            raise RCOTError(f"model.n_critic must be >= 1, got {n_critic!r}")
        for name, value in (
            ("lambda_gp", lambda_gp),
            ("transport_weight", transport_weight),
            ("fourier_weight", fourier_weight),
            ("supervised_weight", supervised_weight),
        ):
            _check_positive(name, value)
        if scheduler_interval not in ("epoch", "step"):
            raise RCOTError(
                f"model.scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        if transport_cost not in ("rms", "l1", "l2"):
            raise RCOTError(
                f"model.transport_cost must be 'rms', 'l1' or 'l2', got {transport_cost!r}"
            )
        if supervised_loss not in ("l1", "l2"):
            raise RCOTError(f"model.supervised_loss must be 'l1' or 'l2', got {supervised_loss!r}")
        if grad_clip_algorithm not in ("norm", "value"):
            raise RCOTError(
                f"model.grad_clip_algorithm must be 'norm' or 'value', got {grad_clip_algorithm!r}"
            )
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise RCOTError(f"model.ema_decay must be in (0, 1) or null, got {ema_decay!r}")
        # Networks and factories are objects, not hyper-parameters; the Hydra config that
        # built them travels in `build_config` instead.
        self.save_hyperparameters(
            ignore=[
                "transport_map",
                "potential",
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
        self.map_ema: nn.Module | None = None
        if ema_decay is not None:
            self.map_ema = copy.deepcopy(transport_map).requires_grad_(False).eval()
        self._map_optimizer = map_optimizer or _default_rmsprop(5e-5)
        self._potential_optimizer = potential_optimizer or _default_rmsprop(1e-4)
        self._map_scheduler = map_scheduler
        self._potential_scheduler = potential_scheduler
        self.build_config = dict(build_config) if build_config is not None else None
        self.register_buffer(
            "fourier_exponents", fourier_exponent_table(fourier_norms), persistent=False
        )
        self.iteration = 0
        self._compiled_map: Callable[[Tensor], Tensor] | None = None
        self.val_psnr, self.val_ssim = MeanMetric(), MeanMetric()
        self.val_psnr_input, self.val_ssim_input = MeanMetric(), MeanMetric()
        self.test_psnr, self.test_ssim = MeanMetric(), MeanMetric()
        self.test_psnr_input, self.test_ssim_input = MeanMetric(), MeanMetric()

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
        clip = self.hparams["map_grad_clip"] if is_map else self.hparams["potential_grad_clip"]
        if clip:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=clip,
                gradient_clip_algorithm=self.hparams["grad_clip_algorithm"],
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
        """The EMA copy of ``T`` when enabled, else ``T`` itself."""
        return self.map_ema if self.map_ema is not None else self.transport_map

    @torch.no_grad()
    def restore(self, degraded: Tensor, tile: int | None = None) -> Tensor:
        """Restore full-size images of any size with :attr:`map_for_inference`.

        Args:
            degraded: ``(B, 3, H, W)`` in [0, 1].
            tile: tile size for tiled inference; defaults to ``val_tile_size``.

        Returns:
            ``(B, 3, H, W)``, clamped to [0, 1].
        """
        net = self.map_for_inference
        out = restore_image(
            net,
            degraded,
            tile=tile if tile is not None else self.hparams["val_tile_size"],
            multiple=self.hparams["pad_multiple"],
        )
        return out.clamp(0, 1)

    def export_map(self) -> nn.Module:
        """A stand-alone copy of the map to deploy (the EMA weights when enabled)."""
        return copy.deepcopy(self.map_for_inference).eval().requires_grad_(False)

    # ------------------------------------------------------------------------ the algorithm
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        opt_map, opt_potential = self.optimizers()  # type: ignore[misc, attr-defined]
        y, x = batch[DEGRADED], batch[CLEAN]
        restored = self(y)  # T(y), once per iteration

        # Potential (maximisation) steps: T(y) is a constant here.
        fake = restored.detach()
        self.toggle_optimizer(opt_potential)
        for critic_step in range(self.hparams["n_critic"]):
            phi_real, phi_fake = self._score(x), self._score(fake)
            alpha = self._penalty_alpha(x, critic_step)
            penalty = gradient_penalty(self._score, x, fake, alpha, self._grad_scale())
            loss_potential, wasserstein = potential_loss(
                phi_real, phi_fake, penalty, self.hparams["lambda_gp"]
            )
            opt_potential.zero_grad()
            self.manual_backward(loss_potential)
            opt_potential.step()
        self.untoggle_optimizer(opt_potential)

        # Map (minimisation) step on the same T(y) graph; phi is frozen by the toggle.
        self.toggle_optimizer(opt_map)
        exponents = self._exponents(batch, y)
        reference = self.hparams["reference_fourier"]
        transport = transport_cost(restored, y, self.hparams["transport_cost"])
        fourier_per_sample = fourier_residual_cost(
            y - restored, exponents, self.hparams["fft_norm"], reference
        )
        fourier = reduce_fourier_cost(fourier_per_sample, exponents, reference)
        supervised = self._supervised(batch, restored)
        loss_map = map_loss(
            self._score(restored),
            transport,
            fourier,
            supervised,
            self.hparams["transport_weight"],
            self.hparams["fourier_weight"],
            self.hparams["supervised_weight"],
        )
        opt_map.zero_grad()
        self.manual_backward(loss_map)
        opt_map.step()
        self.untoggle_optimizer(opt_map)

        self._update_ema()
        self.iteration += 1
        if self.hparams["scheduler_interval"] == "step":
            self._step_schedulers()
        self.log_dict(
            {
                "train/potential_loss": loss_potential.detach(),
                "train/map_loss": loss_map.detach(),
                "train/wasserstein": wasserstein.detach(),
                "train/gradient_penalty": penalty.detach(),
                "train/transport_cost": transport.detach().mean(),
                "train/fourier_cost": fourier.detach(),
                "train/supervised": supervised.detach(),
                "train/lr_map": float(opt_map.param_groups[0]["lr"]),
                "train/lr_potential": float(opt_potential.param_groups[0]["lr"]),
            },
            prog_bar=False,
            batch_size=y.shape[0],
        )
        self.log("iteration", float(self.iteration), prog_bar=True, batch_size=y.shape[0])

    def _score(self, images: Tensor) -> Tensor:
        scores = self.potential(images)
        return scores.reshape(images.shape[0])

    def _penalty_alpha(self, x: Tensor, critic_step: int) -> Tensor:
        # The global RNG is not saved in checkpoints (and data loaders draw from it), so the
        # penalty's U(0, 1) mixing weights come from a generator keyed by where we are.
        key = (self.hparams["seed"], self.global_rank, self.iteration, critic_step)
        generator = torch.Generator().manual_seed(hash(key) & 0x7FFF_FFFF_FFFF_FFFF)
        return torch.rand(x.shape[0], generator=generator).to(device=x.device, dtype=x.dtype)

    def _grad_scale(self) -> float | None:
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is None or not scaler.is_enabled():
            return None
        return float(scaler.get_scale())

    def _exponents(self, batch: Mapping[str, Any], y: Tensor) -> Tensor:
        ids = batch.get(DEGRADATION)
        if ids is None:
            # Without ids every row is treated as the first family the table knows: noise.
            ids = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
        return self.fourier_exponents[ids.long()]

    def _supervised(self, batch: Mapping[str, Any], restored: Tensor) -> Tensor:
        target = batch.get(TARGET)
        if target is None or self.hparams["supervised_weight"] == 0:
            return restored.new_zeros(())
        paired = batch.get(PAIRED)
        return supervised_cost(restored, target, paired, self.hparams["supervised_loss"])

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.map_ema is None:
            return
        decay = self.hparams["ema_decay"]
        ema_params: list[Tensor] = list(self.map_ema.parameters())
        params: list[Tensor] = [p.detach() for p in self.transport_map.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        buffers = zip(self.map_ema.buffers(), self.transport_map.buffers(), strict=True)
        for ema_buffer, buffer in buffers:
            ema_buffer.copy_(buffer)

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
        y, target = batch[DEGRADED], batch[TARGET]
        restored, degraded = self.restore(y), y.clamp(0, 1)
        kwargs = {
            "crop_border": self.hparams["metric_crop_border"],
            "y_channel": self.hparams["metric_y_channel"],
        }
        values = {
            "psnr": psnr(restored, target, **kwargs),
            "ssim": ssim(restored, target, **kwargs),
            "psnr_input": psnr(degraded, target, **kwargs),
            "ssim_input": ssim(degraded, target, **kwargs),
        }
        for name, per_image in values.items():
            metric: MeanMetric = getattr(self, f"{stage}_{name}")
            metric.update(per_image.float())
            self.log(
                f"{stage}/{name}",
                metric,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "psnr",
                batch_size=y.shape[0],
            )

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        restored = self.restore(batch[DEGRADED])
        return {"restored": restored, NAME: batch.get(NAME)}

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[_ITERATION_KEY] = self.iteration
        if self.build_config is not None:
            checkpoint[_BUILD_CONFIG_KEY] = self.build_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.iteration = int(checkpoint.get(_ITERATION_KEY, 0))
        if self.build_config is None and _BUILD_CONFIG_KEY in checkpoint:
            self.build_config = checkpoint[_BUILD_CONFIG_KEY]
