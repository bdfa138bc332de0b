"""Evaluate a checkpoint: ``python -m rcot_lightning.eval ckpt_path=... [data=...]``.

Restores every image of the data's test split (``split=val`` for validation) with the model
stored in the checkpoint, prints a table of PSNR/SSIM per image (input and restored) with the
mean, writes it to ``metrics.csv`` and saves the restored images as ``<name>.png``. Metric
conventions (Y channel, border crop) are the task's. Returns the mean restored PSNR.

Several test sets in one call (named sets such as CBSD68, Kodak24 and McMaster, the tasks of
all-in-one data, and with ``sigmas=[15,25,50]`` every noisy set at each level): one table of
means per set (a table per task for all-in-one data, each with its task's metric
conventions), ``metrics.csv`` with a ``set`` column, images under ``<images_dir>/<set>/``.
Returns the mean over the sets of their mean restored PSNR.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig

from rcot_lightning import app
from rcot_lightning.atomic import atomic_write
from rcot_lightning.checks import tile_size
from rcot_lightning.contract import DEGRADED, NAME, TARGET
from rcot_lightning.data.evaluation import ScoredSet, scored_sets
from rcot_lightning.errors import RCOTError

log = logging.getLogger(__name__)

_COLUMNS = ("name", "psnr_input", "ssim_input", "psnr", "ssim")


class RestoredImageWriter(BasePredictionWriter):
    """Scores each predicted batch against its targets and saves the outputs by name."""

    def __init__(self, directory: Path | None, y_channel: bool, crop_border: int) -> None:
        super().__init__(write_interval="batch")
        self.directory = directory
        self.y_channel, self.crop_border = y_channel, crop_border
        self.rows: list[dict[str, Any]] = []
        #: Extra columns of every row (the set being scored, when there are several).
        self.extra: dict[str, Any] = {}

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        from rcot_lightning.atomic import atomic_path
        from rcot_lightning.metrics import score_images
        from rcot_lightning.visualize import save_png

        restored = prediction["restored"].float()
        target = batch.get(TARGET)
        if target is None:
            raise RCOTError(
                "eval needs ground truth: the chosen split has no targets; to restore images "
                "without targets use rcot_lightning.restore"
            )
        names = batch.get(NAME) or [f"image_{batch_idx}_{i}" for i in range(len(restored))]
        scores = score_images(
            restored,
            target,
            degraded=batch[DEGRADED],
            y_channel=self.y_channel,
            crop_border=self.crop_border,
        )
        for i, name in enumerate(names):
            row = {"name": str(name)} | {k: float(v[i]) for k, v in scores.items()}
            self.rows.append(self.extra | row)
            if self.directory is not None:
                with atomic_path(self.directory / f"{name}.png") as temp:
                    save_png(restored[i], temp)

    def mean(self, rows: list[dict[str, Any]] | None = None) -> dict[str, float]:
        rows = self.rows if rows is None else rows
        return {k: sum(r[k] for r in rows) / len(rows) for k in _COLUMNS[1:]}


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
    output_dir = Path(cfg.paths.output_dir)
    images_dir = output_dir / cfg.images_dir if cfg.save_images else None
    metric = cfg.task.metric
    writer = RestoredImageWriter(images_dir, bool(metric.y_channel), int(metric.crop_border))
    trainer_cfg.pop("_target_", None)
    trainer = L.Trainer(**trainer_cfg, callbacks=[writer, RichProgressBar(leave=False)])
    sigmas = cfg.get("sigmas")
    sets = scored_sets(datamodule, cfg.split, None if sigmas is None else list(sigmas))
    if len(sets) > 1 or sigmas:
        return _evaluate_sets(cfg, module, datamodule, sets, trainer, writer)

    datamodule.setup("test" if cfg.split == "test" else "validate")
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()
    if isinstance(loader, list) and not loader:
        raise RCOTError(f"data has no {cfg.split} split; set data.{cfg.split}_target_dir")
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


def _evaluate_sets(
    cfg: DictConfig,
    module: L.LightningModule,
    datamodule: Any,
    sets: list[ScoredSet],
    trainer: L.Trainer,
    writer: RestoredImageWriter,
) -> float:
    """Score every set separately with its own metric conventions; one table of set means."""
    summary: list[tuple[ScoredSet, int, dict[str, float], str]] = []
    for item in sets:
        metric = {**app.as_dict(cfg.task.metric), **(item.metric or {})}
        writer.y_channel, writer.crop_border = bool(metric["y_channel"]), int(metric["crop_border"])
        writer.extra = {"set": item.label}
        start = len(writer.rows)
        loader = datamodule.eval_loader(item.dataset)
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        rows = writer.rows[start:]
        if not rows:
            raise RCOTError(f"the {cfg.split} set {item.label} of data is empty")
        convention = ("Y" if writer.y_channel else "RGB") + (
            f", crop {writer.crop_border}" if writer.crop_border else ""
        )
        summary.append((item, len(rows), writer.mean(rows), convention))

    output_dir = Path(cfg.paths.output_dir)
    with atomic_write(output_dir / "metrics.csv", "w", newline="") as handle:
        table = csv.DictWriter(handle, fieldnames=["set", *_COLUMNS])
        table.writeheader()
        for item, _, mean, _ in summary:
            table.writerows([r for r in writer.rows if r["set"] == item.label])
            table.writerow({"set": item.label, "name": "mean"} | mean)
    where = f"restored images: {writer.directory}\n" if writer.directory is not None else ""
    app.report(
        f"\n{_set_tables(summary, cfg.split)}\n\n{where}metrics: {output_dir / 'metrics.csv'}"
    )
    return sum(mean["psnr"] for _, _, mean, _ in summary) / len(summary)


def _set_tables(summary: list[tuple[ScoredSet, int, dict[str, float], str]], split: str) -> str:
    """One table of set means per task (one table when the data have no tasks)."""
    width = max(len("set"), *(len(item.label) for item, *_ in summary))
    head = (
        f"{'set':<{width}}  {'images':>6}  {'PSNR in':>8}  {'SSIM in':>7}  {'PSNR out':>8}  "
        f"{'SSIM out':>8}  metric"
    )
    blocks = []
    for task in dict.fromkeys(item.task for item, *_ in summary):
        title = f"task {task}" if task else f"{split} sets"
        lines = [title, head, "-" * len(head)]
        for item, count, mean, convention in summary:
            if item.task == task:
                lines.append(
                    f"{item.label:<{width}}  {count:>6}  {mean['psnr_input']:8.2f}  "
                    f"{mean['ssim_input']:7.4f}  {mean['psnr']:8.2f}  {mean['ssim']:8.4f}  "
                    f"{convention}"
                )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    with app.exit_on_user_error("rcot-eval"):
        return evaluate(cfg)


def main() -> None:
    """Console entry point ``rcot-eval``."""
    app.run_cli("rcot-eval", _hydra_main)


if __name__ == "__main__":
    main()
