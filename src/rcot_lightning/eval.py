"""Evaluate a checkpoint: ``python -m rcot_lightning.eval ckpt_path=... [data=...]``.

Restores every image of the data's test split (``split=val`` for validation) with the model
stored in the checkpoint, prints a table of PSNR/SSIM per image (input and restored) with the
mean, writes it to ``metrics.csv`` and saves the restored images as ``<name>.png``. Metric
conventions (Y channel, border crop) are the task's. Returns the mean restored PSNR.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from rcot_lightning import app
from rcot_lightning.atomic import atomic_write
from rcot_lightning.checks import tile_size
from rcot_lightning.contract import DEGRADED, NAME, TARGET
from rcot_lightning.errors import RCOTError

log = logging.getLogger(__name__)

_COLUMNS = ("name", "psnr_input", "ssim_input", "psnr", "ssim")


class RestoredImageWriter(L.Callback):
    """Scores each predicted batch against its targets and saves the outputs by name."""

    def __init__(self, directory: Path | None, y_channel: bool, crop_border: int) -> None:
        self.directory = directory
        self.y_channel, self.crop_border = y_channel, crop_border
        self.rows: list[dict[str, Any]] = []

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        from rcot_lightning.atomic import atomic_path
        from rcot_lightning.metrics import psnr, ssim
        from rcot_lightning.visualize import save_png

        restored = outputs["restored"].float()
        degraded = batch[DEGRADED].float().clamp(0, 1)
        target = batch.get(TARGET)
        if target is None:
            raise RCOTError(
                "eval needs ground truth: the chosen split has no targets; to restore images "
                "without targets use rcot_lightning.restore"
            )
        target = target.float()
        names = batch.get(NAME) or [f"image_{batch_idx}_{i}" for i in range(len(restored))]
        crop, y = self.crop_border, self.y_channel
        scores = {
            "psnr_input": psnr(degraded, target, crop_border=crop, y_channel=y),
            "ssim_input": ssim(degraded, target, crop_border=crop, y_channel=y),
            "psnr": psnr(restored, target, crop_border=crop, y_channel=y),
            "ssim": ssim(restored, target, crop_border=crop, y_channel=y),
        }
        for i, name in enumerate(names):
            self.rows.append({"name": str(name)} | {k: float(v[i]) for k, v in scores.items()})
            if self.directory is not None:
                with atomic_path(self.directory / f"{name}.png") as temp:
                    save_png(restored[i], temp)

    def mean(self) -> dict[str, float]:
        return {k: sum(r[k] for r in self.rows) / len(self.rows) for k in _COLUMNS[1:]}


def _table(rows: list[dict[str, Any]], mean: dict[str, float]) -> str:
    width = max([len("mean")] + [len(r["name"]) for r in rows])
    head = f"{'image':<{width}}  {'PSNR in':>8}  {'SSIM in':>7}  {'PSNR out':>8}  {'SSIM out':>8}"
    lines = [head, "-" * len(head)]
    for row in [*rows, {"name": "mean"} | mean]:
        if row["name"] == "mean":
            lines.append("-" * len(head))
        lines.append(
            f"{row['name']:<{width}}  {row['psnr_input']:8.2f}  {row['ssim_input']:7.4f}  "
            f"{row['psnr']:8.2f}  {row['ssim']:8.4f}"
        )
    return "\n".join(lines)


def evaluate(cfg: DictConfig) -> float:
    """Restore and score the evaluation split of ``cfg.data`` with ``cfg.ckpt_path``."""
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import RichProgressBar

    from rcot_lightning.checkpoint import load_module

    app.single_log_handlers()
    trainer_cfg = app.as_dict(cfg.trainer)
    app.check_trainer_config(trainer_cfg)
    if app.resolve_strategy(trainer_cfg) != "auto":
        raise RCOTError("eval runs on one device: leave trainer.devices and num_nodes at 1")
    if cfg.split not in ("test", "val"):
        raise RCOTError(f"split must be 'test' or 'val', got {cfg.split!r}")

    tile = tile_size(cfg.get("tile"))
    module = load_module(cfg.ckpt_path)
    if tile is not None:
        module.hparams["val_tile_size"] = tile
    datamodule = instantiate(cfg.data, _convert_="partial")
    datamodule.setup("test" if cfg.split == "test" else "validate")
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()
    if isinstance(loader, list) and not loader:
        raise RCOTError(f"data has no {cfg.split} split; set data.{cfg.split}_target_dir")

    output_dir = Path(cfg.paths.output_dir)
    images_dir = output_dir / cfg.images_dir if cfg.save_images else None
    metric = cfg.task.metric
    writer = RestoredImageWriter(images_dir, bool(metric.y_channel), int(metric.crop_border))
    trainer_cfg.pop("_target_", None)
    trainer = L.Trainer(**trainer_cfg, callbacks=[writer, RichProgressBar(leave=False)])
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    if not writer.rows:
        raise RCOTError(f"the {cfg.split} split of data is empty")

    mean = writer.mean()
    with atomic_write(output_dir / "metrics.csv", "w", newline="") as handle:
        table = csv.DictWriter(handle, fieldnames=list(_COLUMNS))
        table.writeheader()
        table.writerows([*writer.rows, {"name": "mean"} | mean])
    where = f"restored images: {images_dir}\n" if images_dir is not None else ""
    app.report(f"\n{_table(writer.rows, mean)}\n\n{where}metrics: {output_dir / 'metrics.csv'}")
    return mean["psnr"]


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    with app.exit_on_user_error("rcot-eval"):
        return evaluate(cfg)


def main() -> None:
    """Console entry point ``rcot-eval``."""
    app.run_cli("rcot-eval", _hydra_main)


if __name__ == "__main__":
    main()
