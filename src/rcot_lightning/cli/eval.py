"""Evaluate a checkpoint: ``python -m rcot_lightning.eval ckpt_path=... [data=...]``.

Restores every image of the data's test split (``split=val`` for validation) with the model
stored in the checkpoint, prints a table of PSNR/SSIM per image (input and restored) with the
mean, writes it to ``metrics.csv`` and saves the restored images as ``<name>.png``. Metric
conventions (Y channel, border crop) are the task's. Returns the mean restored PSNR.

Several test sets in one call (named sets such as CBSD68, Kodak24 and McMaster, the tasks of
all-in-one data, every task's fixed severities on the held-out photos with
``data=heldout_tasks``, and with ``sigmas=[15,25,50]`` every noisy set at each level): one table of
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
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from rcot_lightning.callbacks import RestoredImageWriter
from rcot_lightning.checkpoints.atomic import atomic_write
from rcot_lightning.cli import app
from rcot_lightning.data.evaluation import ScoredSet, scored_sets
from rcot_lightning.errors import RCOTError
from rcot_lightning.inference import InferenceSettings
from rcot_lightning.metrics import OptionalScores
from rcot_lightning.values import at_least, flag, one_of

log = logging.getLogger(__name__)

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


#: The on/off settings of ``rcot-eval``.
_FLAGS = ("save_images", "fid", "lpips")


def _conventions(
    task_metric: Mapping[str, Any], set_metric: Mapping[str, Any] | None = None, label: str = ""
) -> tuple[bool, int]:
    """``(y_channel, crop_border)`` of a set: its own metric conventions over the task's.

    Args:
        task_metric: ``task.metric``.
        set_metric: the set's ``metric`` in the data config (None: the task's).
        label: the set's label, for messages.

    Raises:
        RCOTError: a value that is not true/false or an integer >= 0, naming its key
            (``task.metric.crop_border must be an integer >= 0, got 'abc'``).

    Example:
        >>> _conventions({"y_channel": False, "crop_border": 0}, {"crop_border": 4}, "Set5")
        (False, 4)
    """

    def setting(field: str, default: Any) -> tuple[Any, str]:
        if set_metric and field in set_metric:
            return set_metric[field], f"data metric.{field} (set {label})"
        return task_metric.get(field, default), f"task.metric.{field}"

    y_channel = flag(*setting("y_channel", False), keyed=True)
    value, key = setting("crop_border", 0)
    return y_channel, int(at_least(value, key, 0, keyed=True))


def _without_training_folders(data: DictConfig) -> DictConfig:
    """``data`` with the folders it requires for training (``???``: ``data=paired``'s
    ``train_degraded_dir``, ``data=synthetic``'s ``train_dir``, ...) set to null when unset:
    eval reads only the evaluation splits, so a user gives only those.

    Example:
        >>> from omegaconf import OmegaConf
        >>> data = OmegaConf.create({"train_dir": "???", "test_sets": "rain/test"})
        >>> OmegaConf.to_container(_without_training_folders(data))
        {'train_dir': None, 'test_sets': 'rain/test'}
    """
    for key in list(data.keys()):
        if OmegaConf.is_missing(data, str(key)):
            data[str(key)] = None
    return data


def evaluate(cfg: DictConfig) -> float:
    """Restore and score the evaluation split of ``cfg.data`` with ``cfg.ckpt_path``."""
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import RichProgressBar
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from rcot_lightning.checkpoints.load import load_module
    from rcot_lightning.checkpoints.trust import trust_settings
    from rcot_lightning.cli.checks import probe_map
    from rcot_lightning.data.images import set_max_megapixels

    app.single_log_handlers()
    one_of(cfg.split, "split", ("test", "val"), keyed=True)
    save_images, fid, lpips = (flag(cfg.get(k, False), k, keyed=True) for k in _FLAGS)
    task_metric = app.as_dict(cfg.task.metric)
    _conventions(task_metric)  # checked before the work
    set_max_megapixels(cfg.get("max_megapixels", 178))
    sigmas = _sigmas(cfg.get("sigmas"))
    trust, targets = trust_settings(cfg)
    ckpt_path = app.checkpoint_of(cfg)
    if ckpt_path is None:
        raise RCOTError("ckpt_path is empty; pass a checkpoint (ckpt_path=<file>.ckpt or last)")
    app.report(f"model: checkpoint {ckpt_path}")
    module = load_module(ckpt_path, "cpu", trust, targets)
    probe_map(module.map_for_inference, f"ckpt_path: {ckpt_path}")
    # The Trainer owns device and precision; the tile (and the default overlap) are checked as
    # rcot-restore checks them, and a map's own size multiple when it runs.
    tile = InferenceSettings(device="cpu", tile=cfg.get("tile")).tile
    if tile is not None:
        module.evaluation = replace(module.evaluation, val_tile_size=tile)
    datamodule = instantiate(_without_training_folders(cfg.data), _convert_="partial")
    output_dir = Path(cfg.paths.output_dir)
    images_dir = output_dir / cfg.images_dir if save_images else None
    optional = OptionalScores(fid=fid, lpips=lpips, inception_weights=cfg.get("inception_weights"))
    writer = RestoredImageWriter(images_dir, *_conventions(task_metric), optional)
    trainer = app.build_trainer(cfg.trainer, callbacks=[writer, RichProgressBar(leave=False)])
    if not isinstance(trainer.strategy, SingleDeviceStrategy):
        raise RCOTError("eval runs on one device: leave trainer.devices and num_nodes at 1")
    sets = scored_sets(datamodule, cfg.split, sigmas)
    # Several sets, or tasks (all-in-one data, data=heldout_tasks): each set with its own
    # metric conventions, a table per task, even when one set is left.
    if len(sets) > 1 or sigmas or any(item.task for item in sets):
        return _evaluate_sets(cfg, module, datamodule, sets, trainer, writer)

    datamodule.setup("test" if cfg.split == "test" else "validate")
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()
    if isinstance(loader, list) and not loader:
        raise RCOTError(f"data has no {cfg.split} split; set data.{cfg.split}_sets")
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
        writer.y_channel, writer.crop_border = _conventions(
            app.as_dict(cfg.task.metric), item.metric, item.label
        )
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    with app.exit_on_user_error("rcot-eval"):
        return evaluate(cfg)


#: Console entry point ``rcot-eval``.
main = app.command("rcot-eval", _hydra_main)


if __name__ == "__main__":
    main()
