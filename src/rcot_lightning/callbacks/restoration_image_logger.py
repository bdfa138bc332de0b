"""Lightning callbacks: pictures of what the transport map does, sent to whichever logger runs.

The EMA of the transport map lives inside :class:`~rcot_lightning.RCOTModule` (it must be saved
and restored with the module and used by its validation), so it is not a callback here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor, nn

from rcot_lightning.contract import CLEAN, DEGRADED, TARGET
from rcot_lightning.errors import RCOTError
from rcot_lightning.visualize import (
    comparison_grid,
    log_spectrum,
    residual_image,
    save_png,
    to_uint8_hwc,
)

__all__ = ["RestorationImageLogger"]

log = logging.getLogger(__name__)


def _center_crop(x: Tensor, size: int | None) -> Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    th, tw = min(size, h), min(size, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return x[..., top : top + th, left : left + tw]


class RestorationImageLogger(Callback):
    """Log a grid of restorations every N training iterations and after each validation.

    One row per image; columns are degraded input | pass-1 output | residual r0 | restored
    T(y) | target | log-spectrum of the residual. With a two-pass map exposing
    ``forward_with_intermediates(y)`` (keys ``"first_pass"``, ``"residual"``, ``"output"``) the
    residual is pass 1's ``r0``; with any other map, pass 1 is the output itself and the residual
    is ``y - T(y)``. For unpaired training batches, which carry no ``target``, the last image
    column is the batch's (unaligned) ``clean`` sample.

    The map is ``pl_module.map_for_inference`` if it exists (the EMA copy in RCOTModule), else
    ``pl_module.transport_map``; it runs without gradients in eval mode, and every submodule's
    train/eval mode is restored afterwards. Training pictures use the first images of the current
    batch at ``pl_module.iteration`` (or ``trainer.global_step`` when the module has no such
    counter); validation pictures use the first images of the first validation batch, cached
    once so that successive pictures are comparable.

    Sent to TensorBoard (``add_image``) and wandb (``log_image``) at ``trainer.global_step``, the
    x-axis of the other logged values; for any other logger (CSV) or none, written as
    ``<log_dir or default_root_dir>/images/<stage>_<iteration>.png`` and listed in
    :attr:`last_paths`. Runs on global rank zero only.

    Args:
        every_n_steps: training iterations between pictures; 0 turns training pictures off.
        num_images: rows of the grid.
        log_on_validation: also log after each validation epoch (not the sanity check).
        crop_size: centre-crop inputs to at most this side first, which keeps pictures and the
            extra forward pass small on full-size validation images; None keeps the full image.
        spectrum: add the residual's log-spectrum column.

    Example:
        >>> cb = RestorationImageLogger(every_n_steps=100, num_images=2)
        >>> cb.last_paths
        []
    """

    def __init__(
        self,
        every_n_steps: int = 500,
        num_images: int = 4,
        log_on_validation: bool = True,
        crop_size: int | None = 256,
        spectrum: bool = True,
    ) -> None:
        super().__init__()
        if every_n_steps < 0:
            raise RCOTError(f"callbacks: every_n_steps must be >= 0, got {every_n_steps}")
        if num_images < 1:
            raise RCOTError(f"callbacks: num_images must be >= 1, got {num_images}")
        if crop_size is not None and crop_size < 1:
            raise RCOTError(f"callbacks: crop_size must be >= 1 or null, got {crop_size}")
        self.every_n_steps = every_n_steps
        self.num_images = num_images
        self.log_on_validation = log_on_validation
        self.crop_size = crop_size
        self.spectrum = spectrum
        self.last_paths: list[str] = []
        self._val_images: tuple[Tensor, Tensor] | None = None
        self._last_train_iteration: int | None = None

    # ------------------------------------------------------------------ Lightning hooks

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Log the current batch every ``every_n_steps`` iterations."""
        if self.every_n_steps == 0 or not trainer.is_global_zero:
            return
        iteration = self._iteration(trainer, pl_module)
        # The iteration may not advance on every batch (e.g. skipped steps): log it once.
        if (
            iteration == 0
            or iteration % self.every_n_steps
            or iteration == self._last_train_iteration
        ):
            return
        self._last_train_iteration = iteration
        images = self._take(batch)
        if images is not None:
            self._log_grid(trainer, pl_module, "train", iteration, *images)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Cache the first validation images once (the sanity check's are the same ones)."""
        if (
            self.log_on_validation
            and self._val_images is None
            and trainer.is_global_zero
            and batch_idx == 0
            and dataloader_idx == 0
        ):
            images = self._take(batch)
            if images is not None:
                self._val_images = (images[0].cpu(), images[1].cpu())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log the cached validation images through the current map."""
        if (
            not self.log_on_validation
            or trainer.sanity_checking
            or not trainer.is_global_zero
            or self._val_images is None
        ):
            return
        iteration = self._iteration(trainer, pl_module)
        self._log_grid(trainer, pl_module, "val", iteration, *self._val_images)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _iteration(trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
        iteration = getattr(pl_module, "iteration", None)
        return int(iteration) if isinstance(iteration, (int, Tensor)) else trainer.global_step

    def _take(self, batch: Any) -> tuple[Tensor, Tensor] | None:
        """First ``num_images`` (degraded, target-or-clean) pairs of a batch, cropped."""
        if isinstance(batch, Mapping):
            degraded = batch.get(DEGRADED)
            reference = batch.get(TARGET)
            if reference is None:
                reference = batch.get(CLEAN)
        elif isinstance(batch, Sequence) and len(batch) >= 2:
            degraded, reference = batch[0], batch[1]
        else:
            degraded = reference = None
        if not isinstance(degraded, Tensor) or not isinstance(reference, Tensor):
            log.debug("RestorationImageLogger: batch has no image pair, nothing logged")
            return None
        n = self.num_images
        return (
            _center_crop(degraded[:n].detach(), self.crop_size).clone(),
            _center_crop(reference[:n].detach(), self.crop_size).clone(),
        )

    @staticmethod
    def _map(pl_module: pl.LightningModule) -> nn.Module:
        for name in ("map_for_inference", "transport_map"):
            net = getattr(pl_module, name, None)
            if isinstance(net, nn.Module):
                return net
        raise RCOTError(
            f"callbacks: RestorationImageLogger needs the LightningModule "
            f"({type(pl_module).__name__}) to have a `map_for_inference` or `transport_map` "
            f"nn.Module; remove the callback from the config or use RCOTModule"
        )

    def _restore(
        self, net: nn.Module, degraded: Tensor, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(pass-1 output, residual, output) of ``net`` on ``degraded``, in float32."""
        param = next(net.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        # No padding here: the map pads to its own size multiple and crops back.
        degraded = degraded.to(device=device, dtype=dtype)
        modes = [(m, m.training) for m in net.modules()]
        net.eval()
        try:
            with torch.no_grad():
                forward_with_intermediates = getattr(net, "forward_with_intermediates", None)
                if callable(forward_with_intermediates):
                    parts = forward_with_intermediates(degraded)
                    first, residual, output = (
                        parts["first_pass"],
                        parts["residual"],
                        parts["output"],
                    )
                else:
                    output = net(degraded)
                    first, residual = output, degraded - output
        finally:
            for module, mode in modes:
                module.training = mode
        first, residual, output = (t.float().cpu() for t in (first, residual, output))
        return first, residual, output

    def _log_grid(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        stage: str,
        iteration: int,
        degraded: Tensor,
        reference: Tensor,
    ) -> None:
        first, residual, output = self._restore(self._map(pl_module), degraded, pl_module.device)
        columns = [
            degraded.float().cpu(),
            first.clamp(0, 1),
            residual_image(residual),
            output.clamp(0, 1),
            reference.float().cpu(),
        ]
        if self.spectrum:
            columns.append(log_spectrum(residual))
        grid = comparison_grid([c.clamp(0, 1) for c in columns])
        paths = self._emit(trainer, grid, stage, iteration)
        if paths:
            self.last_paths = paths

    def _emit(self, trainer: pl.Trainer, grid: Tensor, stage: str, iteration: int) -> list[str]:
        """Send ``grid`` (3, H, W) to every logger; return the PNG files written."""
        tag = f"{stage}/restoration"
        png_dirs: list[str] = []
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(tag, grid, global_step=trainer.global_step)
            elif isinstance(logger, WandbLogger):
                logger.log_image(
                    key=tag,
                    images=[to_uint8_hwc(grid).numpy()],
                    step=trainer.global_step,
                    caption=[f"{stage} iteration {iteration}"],
                )
            else:
                png_dirs.append(
                    getattr(logger, "log_dir", None) or logger.save_dir or trainer.default_root_dir
                )
        if not trainer.loggers:
            png_dirs.append(trainer.default_root_dir)
        paths = []
        for directory in dict.fromkeys(png_dirs):  # ordered de-duplication
            path = os.path.join(directory, "images", f"{stage}_{iteration}.png")
            paths.append(save_png(grid, path))
            log.debug("RestorationImageLogger wrote %s", path)
        return paths
