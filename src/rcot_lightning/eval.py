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

Optional scores (off by default, never downloaded): ``lpips=true`` adds LPIPS (AlexNet) per
image; ``fid=true`` adds, per set, FID and KID of restored against target 64x64 patches in a
fixed random-conv feature space (offline; the quality benchmark's protocol) and the Inception-v3
FID of the whole images. LPIPS and the Inception FID need pretrained weights present locally;
without them their cells stay empty and one line says why.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig
from torch import Tensor

from rcot_lightning import app
from rcot_lightning.atomic import atomic_write
from rcot_lightning.checks import tile_size
from rcot_lightning.contract import DEGRADED, NAME, TARGET
from rcot_lightning.data.evaluation import ScoredSet, scored_sets
from rcot_lightning.errors import RCOTError
from rcot_lightning.shapes import as_rgb

log = logging.getLogger(__name__)

_COLUMNS = ("name", "psnr_input", "ssim_input", "psnr", "ssim")

#: How the table prints each score: CSV column -> (header, width, format).
_PRINTED = {
    "psnr_input": ("PSNR in", 8, ".2f"),
    "ssim_input": ("SSIM in", 7, ".4f"),
    "psnr": ("PSNR out", 8, ".2f"),
    "ssim": ("SSIM out", 8, ".4f"),
    "lpips": ("LPIPS", 7, ".4f"),
    "fid": ("FID rf", 8, ".2f"),
    "kid": ("KID rf", 8, ".5f"),
    "fid_inception": ("FID", 8, ".2f"),
}


def _rgb(images: Tensor, device: torch.device) -> Tensor:
    """Float RGB images on ``device`` for the pretrained metrics (one channel is repeated)."""
    return as_rgb(images).float().to(device)


class OptionalScores:
    """The optional scores of ``rcot-eval``: LPIPS per image, FID/KID per set.

    Each is a column of the table and of ``metrics.csv`` when asked for; a score that cannot run
    here (pretrained weights absent: nothing is ever downloaded) or not on this set (too few
    images or patches) leaves its cells empty and adds a line to :attr:`notes`.

    Args:
        fid: FID and KID of 64x64 patches in random-conv features
            (:class:`~rcot_lightning.metrics.RandomFeatureDistances`), and the Inception-v3 FID
            of the whole images when its weights are present.
        lpips: LPIPS (AlexNet) of each image when torchvision and its weights are present.
        inception_weights: a local copy of torch-fidelity's Inception weights, if not in the
            torch hub cache.
    """

    def __init__(self, fid: bool, lpips: bool, inception_weights: str | None = None) -> None:
        from rcot_lightning import metrics

        #: One line per score skipped, and why.
        self.notes: list[str] = []
        #: Per-image columns (their set mean in the mean row).
        self.image_columns: list[str] = []
        #: Per-set columns (in the mean row only).
        self.set_columns: list[str] = []
        self.lpips: Any = None
        self.distances: metrics.RandomFeatureDistances | None = None
        self.inception: Any = None
        self._inception_images = 0
        if lpips:
            self.image_columns.append("lpips")
            status = metrics.lpips_available()
            if status:
                self.lpips = metrics.lpips()
            else:
                self.notes.append(f"LPIPS skipped: {status.reason}")
        if fid:
            self.set_columns += ["fid", "kid", "fid_inception"]
            self.distances = metrics.RandomFeatureDistances()
            status = metrics.inception_fid_available(inception_weights)
            if status:
                self.inception = metrics.inception_fid(inception_weights)
            else:
                self.notes.append(f"Inception FID skipped: {status.reason}")
            self.notes.append(
                "FID rf, KID rf: random-conv features of 64x64 patches (offline; comparable "
                "between runs of rcot-eval and benchmarks/quality.py only, not with Inception FID)"
            )

    @property
    def columns(self) -> list[str]:
        return self.image_columns + self.set_columns

    def update(self, restored: Tensor, target: Tensor) -> dict[str, list[float | None]]:
        """Add a batch to the set's distances; the per-image scores of the batch."""
        if self.distances is not None:
            self.distances.update(restored, target)
        from rcot_lightning.metrics import metric_device

        device = metric_device(restored)
        if self.inception is not None:
            self.inception.to(device)
            self.inception.update(_rgb(target, device), real=True)
            self.inception.update(_rgb(restored, device), real=False)
            self._inception_images += len(restored)
        per_image: dict[str, list[float | None]] = {}
        if "lpips" in self.image_columns:
            if self.lpips is None:
                per_image["lpips"] = [None] * len(restored)
            else:
                self.lpips.to(device)
                restored, target = _rgb(restored, device), _rgb(target, device)
                per_image["lpips"] = [
                    float(self.lpips(restored[i : i + 1], target[i : i + 1]))
                    for i in range(len(restored))
                ]
        return per_image

    def compute(self, label: str) -> dict[str, float | None]:
        """The set's distances (``label`` names it in notes); then start the next set empty."""
        scores: dict[str, float | None] = dict.fromkeys(self.set_columns)
        if self.distances is not None:
            try:
                scores |= self.distances.compute()
            except ValueError as err:
                self.notes.append(f"FID/KID skipped for {label}: {err}")
            self.distances.reset()
        if self.inception is not None:
            if self._inception_images < 2:
                self.notes.append(
                    f"Inception FID skipped for {label}: needs at least 2 images, got "
                    f"{self._inception_images}"
                )
            else:
                scores["fid_inception"] = float(self.inception.compute())
            self.inception.reset()
            self._inception_images = 0
        return scores


class RestoredImageWriter(BasePredictionWriter):
    """Scores each predicted batch against its targets and saves the outputs by name."""

    def __init__(
        self,
        directory: Path | None,
        y_channel: bool,
        crop_border: int,
        optional: OptionalScores | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.directory = directory
        self.y_channel, self.crop_border = y_channel, crop_border
        self.rows: list[dict[str, Any]] = []
        #: Extra columns of every row (the set being scored, when there are several).
        self.extra: dict[str, Any] = {}
        #: LPIPS, FID and KID when asked for (``lpips=true``, ``fid=true``).
        self.optional = optional if optional is not None else OptionalScores(fid=False, lpips=False)

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
        optional = self.optional.update(restored, target)
        for i, name in enumerate(names):
            row: dict[str, Any] = {"name": str(name)}
            row |= {k: float(v[i]) for k, v in scores.items()}
            row |= {k: v[i] for k, v in optional.items()}
            self.rows.append(self.extra | row)
            if self.directory is not None:
                with atomic_path(self.directory / f"{name}.png") as temp:
                    save_png(restored[i], temp)

    @property
    def columns(self) -> list[str]:
        """Every column of a row of scores, in the order of the table and of ``metrics.csv``."""
        return [*_COLUMNS, *self.optional.columns]

    def mean(self, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Mean of each per-image score over ``rows`` (all rows by default); None if skipped."""
        rows = self.rows if rows is None else rows
        mean: dict[str, float | None] = {}
        for key in [*_COLUMNS[1:], *self.optional.image_columns]:
            values = [r[key] for r in rows if r.get(key) is not None]
            mean[key] = sum(values) / len(values) if values else None
        return mean


def _cells(row: dict[str, Any], columns: list[str]) -> str:
    """The score columns of a table line; a skipped score is a blank cell."""
    cells = []
    for key in columns:
        _, width, spec = _PRINTED[key]
        value = row.get(key)
        cells.append(" " * width if value is None else f"{value:{width}{spec}}")
    return "  ".join(cells)


def _heads(columns: list[str]) -> str:
    return "  ".join(f"{_PRINTED[key][0]:>{_PRINTED[key][1]}}" for key in columns)


def _table(rows: list[dict[str, Any]], mean: dict[str, Any], columns: list[str]) -> str:
    """Each image's scores, then the mean (and the set's FID/KID when asked for)."""
    width = max([len("mean")] + [len(r["name"]) for r in rows])
    head = f"{'image':<{width}}  {_heads(columns)}"
    lines = [head, "-" * len(head)]
    for row in [*rows, {"name": "mean"} | mean]:
        if row["name"] == "mean":
            lines.append("-" * len(head))
        lines.append(f"{row['name']:<{width}}  {_cells(row, columns)}".rstrip())
    return "\n".join(lines)


def _report(tables: str, writer: RestoredImageWriter, output_dir: Path) -> None:
    notes = "".join(f"note: {note}\n" for note in writer.optional.notes)
    where = f"restored images: {writer.directory}\n" if writer.directory is not None else ""
    app.report(f"\n{tables}\n\n{notes}{where}metrics: {output_dir / 'metrics.csv'}")


def _sigmas(value: Any) -> list[float] | None:
    """``sigmas=`` as noise levels on the 0-255 scale, checked before the work.

    Example:
        >>> _sigmas([15, 25.5]), _sigmas(None)
        ([15, 25.5], None)
    """
    if value is None:
        return None
    message = "sigmas must be a list of noise levels >= 0 (0-255 scale), e.g. sigmas=[15,25,50]"
    items = [value] if isinstance(value, (int, float, str)) else list(value)
    levels = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not item >= 0:
            raise RCOTError(f"{message}; got {item!r}")
        levels.append(item)
    return levels


def evaluate(cfg: DictConfig) -> float:
    """Restore and score the evaluation split of ``cfg.data`` with ``cfg.ckpt_path``."""
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import RichProgressBar
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from rcot_lightning.checkpoint import load_module
    from rcot_lightning.checks import probe_map
    from rcot_lightning.data.images import set_max_megapixels
    from rcot_lightning.shapes import size_multiple
    from rcot_lightning.trust import trust_settings

    app.single_log_handlers()
    if cfg.split not in ("test", "val"):
        raise RCOTError(f"split must be 'test' or 'val', got {cfg.split!r}")

    set_max_megapixels(cfg.get("max_megapixels", 178))
    sigmas = _sigmas(cfg.get("sigmas"))
    trust, targets = trust_settings(cfg)
    ckpt_path = app.checkpoint_of(cfg)
    if ckpt_path is None:
        raise RCOTError("ckpt_path is empty; pass a checkpoint (ckpt_path=<file>.ckpt or last)")
    app.report(f"model: checkpoint {ckpt_path}")
    module = load_module(ckpt_path, "cpu", trust, targets)
    probe_map(module.map_for_inference, f"ckpt_path: {ckpt_path}")
    tile = tile_size(cfg.get("tile"), multiple=size_multiple(module.map_for_inference))
    if tile is not None:
        module.hparams["val_tile_size"] = tile
    datamodule = instantiate(cfg.data, _convert_="partial")
    output_dir = Path(cfg.paths.output_dir)
    images_dir = output_dir / cfg.images_dir if cfg.save_images else None
    metric = cfg.task.metric
    optional = OptionalScores(
        fid=bool(cfg.get("fid", False)),
        lpips=bool(cfg.get("lpips", False)),
        inception_weights=cfg.get("inception_weights"),
    )
    writer = RestoredImageWriter(
        images_dir, bool(metric.y_channel), int(metric.crop_border), optional
    )
    trainer = app.build_trainer(cfg.trainer, callbacks=[writer, RichProgressBar(leave=False)])
    if not isinstance(trainer.strategy, SingleDeviceStrategy):
        raise RCOTError("eval runs on one device: leave trainer.devices and num_nodes at 1")
    sets = scored_sets(datamodule, cfg.split, sigmas)
    if len(sets) > 1 or sigmas:
        return _evaluate_sets(cfg, module, datamodule, sets, trainer, writer)

    datamodule.setup("test" if cfg.split == "test" else "validate")
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()
    if isinstance(loader, list) and not loader:
        raise RCOTError(f"data has no {cfg.split} split; set data.{cfg.split}_target_dir")
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    if not writer.rows:
        raise RCOTError(f"the {cfg.split} split of data is empty")

    mean = writer.mean() | writer.optional.compute(cfg.split)
    with atomic_write(output_dir / "metrics.csv", "w", newline="") as handle:
        table = csv.DictWriter(handle, fieldnames=writer.columns)
        table.writeheader()
        table.writerows([*writer.rows, {"name": "mean"} | mean])
    _report(_table(writer.rows, mean, writer.columns[1:]), writer, output_dir)
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
    summary: list[tuple[ScoredSet, int, dict[str, Any], str]] = []
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
        mean = writer.mean(rows) | writer.optional.compute(item.label)
        summary.append((item, len(rows), mean, convention))

    output_dir = Path(cfg.paths.output_dir)
    with atomic_write(output_dir / "metrics.csv", "w", newline="") as handle:
        table = csv.DictWriter(handle, fieldnames=["set", *writer.columns])
        table.writeheader()
        for item, _, mean, _ in summary:
            table.writerows([r for r in writer.rows if r["set"] == item.label])
            table.writerow({"set": item.label, "name": "mean"} | mean)
    _report(_set_tables(summary, cfg.split, writer.columns[1:]), writer, output_dir)
    return sum(mean["psnr"] for _, _, mean, _ in summary) / len(summary)


def _set_tables(
    summary: list[tuple[ScoredSet, int, dict[str, Any], str]], split: str, columns: list[str]
) -> str:
    """One table of set means per task (one table when the data have no tasks)."""
    width = max(len("set"), *(len(item.label) for item, *_ in summary))
    head = f"{'set':<{width}}  {'images':>6}  {_heads(columns)}  metric"
    blocks = []
    for task in dict.fromkeys(item.task for item, *_ in summary):
        title = f"task {task}" if task else f"{split} sets"
        lines = [title, head, "-" * len(head)]
        for item, count, mean, convention in summary:
            if item.task == task:
                lines.append(
                    f"{item.label:<{width}}  {count:>6}  {_cells(mean, columns)}  {convention}"
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
