"""RestorationImageLogger with a tiny LightningModule and real Trainers; visualize helpers;
the CPU-time budget."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from rcot_lightning.callbacks import RestorationImageLogger
from rcot_lightning.callbacks.cpu_budget import CPUBudget
from rcot_lightning.errors import RCOTError
from rcot_lightning.visualize import (
    comparison_grid,
    log_spectrum,
    make_grid,
    residual_image,
    save_png,
    to_uint8_hwc,
)

H, W = 20, 28  # not multiples of 8: the callback must pad and crop back


class TwoPass(nn.Module):
    """A stand-in for TwoPassMap: pass 1, residual r0, pass 2 conditioned on r0."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Conv2d(3, 3, 3, padding=1)
        self.cond = nn.Conv2d(3, 3, 3, padding=1)
        self.frozen = nn.BatchNorm2d(3)
        self.input_sizes: list[tuple[int, int]] = []
        self.modes_seen: list[tuple[bool, bool]] = []

    def forward_with_intermediates(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.input_sizes.append((y.shape[-2], y.shape[-1]))
        self.modes_seen.append((self.base.training, self.frozen.training))
        first = y - 0.1 * self.base(y)
        residual = y - first
        output = first - 0.1 * self.cond(self.frozen(residual))
        return {"first_pass": first, "residual": residual, "output": output}

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.forward_with_intermediates(y)["output"]


class TinyModule(pl.LightningModule):
    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        self.transport_map = net if net is not None else TwoPass()
        self.iteration = 0
        self.seen_modes: list[bool] = []

    @property
    def map_for_inference(self) -> nn.Module:
        return self.transport_map

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen_modes.append(self.transport_map.training)
        out = self.transport_map(batch["degraded"])
        self.iteration += 1
        return (out - batch["target"]).abs().mean()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/l1", (self.transport_map(batch["degraded"]) - batch["target"]).abs().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def _loader(n: int = 4, batch_size: int = 2) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        target = torch.rand(3, H, W, generator=g)
        degraded = (target + 0.1 * torch.randn(3, H, W, generator=g)).clamp(0, 1)
        items.append({"degraded": degraded, "target": target})
    return DataLoader(items, batch_size=batch_size)


def _fit(tmp_path, logger, callback: RestorationImageLogger, module=None) -> TinyModule:
    module = module or TinyModule()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        logger=logger,
        callbacks=[callback],
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, _loader(), _loader())
    return module


def _expected_grid_size(rows: int, cols: int, pad: int = 2) -> tuple[int, int]:
    return rows * (H + pad) + pad, cols * (W + pad) + pad


def test_csv_logger_run_writes_pngs(tmp_path) -> None:
    logger = CSVLogger(str(tmp_path), name="csv")
    cb = RestorationImageLogger(every_n_steps=1, num_images=2)
    module = _fit(tmp_path, logger, cb)
    image_dir = tmp_path / "csv" / "version_0" / "images"
    # two training iterations and one validation; none from the sanity check (iteration 0)
    assert sorted(p.name for p in image_dir.iterdir()) == [
        "train_1.png",
        "train_2.png",
        "val_2.png",
    ]
    assert cb.last_paths == [str(image_dir / "val_2.png")]
    with Image.open(cb.last_paths[0]) as im:
        assert im.mode == "RGB"
        assert (im.height, im.width) == _expected_grid_size(rows=2, cols=6)
    # the callback put the map in eval mode and back: training steps always saw train mode
    assert module.seen_modes == [True, True]
    assert module.transport_map.training


def test_tensorboard_logger_gets_images(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(str(tmp_path), name="tb")
    cb = RestorationImageLogger(every_n_steps=2, num_images=1, spectrum=False)
    _fit(tmp_path, logger, cb)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert set(events.Tags()["images"]) == {"train/restoration", "val/restoration"}
    image = events.Images("val/restoration")[-1]
    assert (image.height, image.width) == _expected_grid_size(rows=1, cols=5)
    assert cb.last_paths == []  # TensorBoard holds the pictures; no PNG files


def test_no_logger_writes_under_default_root_dir(tmp_path) -> None:
    cb = RestorationImageLogger(every_n_steps=0, num_images=1)
    _fit(tmp_path, False, cb)
    assert cb.last_paths == [str(tmp_path / "images" / "val_2.png")]
    assert not list((tmp_path / "images").glob("train_*"))


def _fake_trainer(tmp_path, loggers=(), is_global_zero=True, global_step=6):
    return SimpleNamespace(
        loggers=list(loggers),
        is_global_zero=is_global_zero,
        global_step=global_step,
        default_root_dir=str(tmp_path),
        sanity_checking=False,
    )


def _batch(n: int = 3) -> dict[str, torch.Tensor]:
    return {"degraded": torch.rand(n, 3, H, W), "target": torch.rand(n, 3, H, W)}


def test_wandb_logger_gets_uint8_image(tmp_path) -> None:
    wandb_logger = MagicMock(spec=WandbLogger)
    trainer = _fake_trainer(tmp_path, [wandb_logger])
    cb = RestorationImageLogger(every_n_steps=3, num_images=2)
    module = TinyModule()
    module.iteration = 3
    cb.on_train_batch_end(trainer, module, None, _batch(), 0)
    wandb_logger.log_image.assert_called_once()
    kwargs = wandb_logger.log_image.call_args.kwargs
    assert kwargs["key"] == "train/restoration" and kwargs["step"] == 6
    (image,) = kwargs["images"]
    assert image.dtype == np.uint8 and image.shape == (*_expected_grid_size(2, 6), 3)
    assert cb.last_paths == []


def test_only_global_rank_zero_logs(tmp_path) -> None:
    trainer = _fake_trainer(tmp_path, is_global_zero=False)
    cb = RestorationImageLogger(every_n_steps=1)
    module = TinyModule()
    module.iteration = 1
    cb.on_train_batch_end(trainer, module, None, _batch(), 0)
    cb.on_validation_batch_end(trainer, module, None, _batch(), 0)
    cb.on_validation_epoch_end(trainer, module)
    assert cb.last_paths == [] and not (tmp_path / "images").exists()


def test_schedule_uses_module_iteration_and_logs_each_once(tmp_path) -> None:
    trainer = _fake_trainer(tmp_path, global_step=999)
    cb = RestorationImageLogger(every_n_steps=5, num_images=1)
    module = TinyModule()
    for iteration in (4, 5, 5, 6, 10):
        module.iteration = iteration
        cb.on_train_batch_end(trainer, module, None, _batch(), 0)
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names == ["train_10.png", "train_5.png"]


def test_falls_back_to_global_step_and_transport_map(tmp_path) -> None:
    class Plain(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.transport_map = nn.Conv2d(3, 3, 1)

    trainer = _fake_trainer(tmp_path, global_step=4)
    cb = RestorationImageLogger(every_n_steps=2, num_images=1)
    cb.on_train_batch_end(trainer, Plain(), None, _batch(), 0)
    assert cb.last_paths == [str(tmp_path / "images" / "train_4.png")]


def test_residual_columns_follow_the_map(tmp_path) -> None:
    cb = RestorationImageLogger()
    y = torch.rand(2, 3, H, W)
    net = TwoPass()
    first, residual, output = cb._restore(net, y, torch.device("cpu"))
    assert first.shape == residual.shape == output.shape == y.shape
    torch.testing.assert_close(residual, y - first)
    # The callback does not pad: a map pads to its own size multiple (TwoPassMap does).
    assert net.input_sizes == [(H, W)]
    with torch.no_grad():
        torch.testing.assert_close(output, net.eval()(y))

    plain = nn.Conv2d(3, 3, 1)
    first, residual, output = cb._restore(plain, y, torch.device("cpu"))
    torch.testing.assert_close(first, output)
    torch.testing.assert_close(residual, y - output)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_map_and_batch(tmp_path) -> None:
    trainer = _fake_trainer(tmp_path)
    module = TinyModule().cuda()
    cb = RestorationImageLogger(every_n_steps=1, num_images=2)
    module.iteration = 1
    batch = {k: v.cuda() for k, v in _batch().items()}
    cb.on_train_batch_end(trainer, module, None, batch, 0)
    cb.on_validation_batch_end(trainer, module, None, batch, 0)
    cb.on_validation_epoch_end(trainer, module)
    assert [p.rsplit("/", 1)[-1] for p in cb.last_paths] == ["val_1.png"]
    assert (tmp_path / "images" / "train_1.png").is_file()


def test_submodule_modes_are_restored() -> None:
    net = TwoPass().train()
    net.frozen.eval()  # a deliberately frozen part must stay frozen
    RestorationImageLogger()._restore(net, torch.rand(1, 3, H, W), torch.device("cpu"))
    assert net.modes_seen == [(False, False)]  # ran fully in eval mode
    assert net.training and net.base.training and not net.frozen.training


def test_unpaired_batch_uses_clean_and_odd_batches_are_skipped(tmp_path) -> None:
    trainer = _fake_trainer(tmp_path)
    cb = RestorationImageLogger(every_n_steps=1, num_images=4)
    module = TinyModule()
    module.iteration = 1
    unpaired = {"degraded": torch.rand(2, 3, H, W), "clean": torch.rand(2, 3, H, W)}
    cb.on_train_batch_end(trainer, module, None, unpaired, 0)
    with Image.open(cb.last_paths[0]) as im:
        assert (im.height, im.width) == _expected_grid_size(rows=2, cols=6)
    module.iteration = 2
    cb.on_train_batch_end(trainer, module, None, {"degraded": torch.rand(1, 3, H, W)}, 0)
    assert not (tmp_path / "images" / "train_2.png").exists()


def test_large_inputs_are_centre_cropped(tmp_path) -> None:
    trainer = _fake_trainer(tmp_path)
    cb = RestorationImageLogger(num_images=1, crop_size=16, spectrum=False)
    module = TinyModule()
    cb.on_validation_batch_end(trainer, module, None, _batch(), 0)
    cb.on_validation_epoch_end(trainer, module)
    with Image.open(cb.last_paths[0]) as im:
        assert (im.height, im.width) == (16 + 4, 5 * (16 + 2) + 2)


def test_module_without_map_is_a_clear_error(tmp_path) -> None:
    trainer = _fake_trainer(tmp_path)
    cb = RestorationImageLogger(every_n_steps=1)
    module = pl.LightningModule()
    module.iteration = 1  # type: ignore[attr-defined]
    with pytest.raises(RCOTError, match="map_for_inference"):
        cb.on_train_batch_end(trainer, module, None, _batch(), 0)


@pytest.mark.parametrize("kwargs", [{"every_n_steps": -1}, {"num_images": 0}, {"crop_size": 0}])
def test_bad_arguments(kwargs) -> None:
    with pytest.raises(RCOTError, match=next(iter(kwargs))):
        RestorationImageLogger(**kwargs)


# ---------------------------------------------------------------------------- visualize


def test_make_grid_layout_and_grey_expansion() -> None:
    a = torch.zeros(2, 3, 4, 5)
    b = torch.full((1, 1, 4, 5), 0.5)
    grid = make_grid([a, b], nrow=2, padding=1, pad_value=1.0)
    assert grid.shape == (3, 2 * 5 + 1, 2 * 6 + 1)
    assert grid[:, 1:5, 1:6].eq(0).all() and grid[:, 1:5, 7:12].eq(0).all()
    assert grid[:, 6:10, 1:6].eq(0.5).all()  # grey tile repeated to RGB, first of row 2
    assert grid[:, 6:10, 7:12].eq(1).all()  # empty cell keeps the pad colour
    assert grid[:, 0].eq(1).all()


def test_comparison_grid_rows_are_images() -> None:
    imgs = torch.arange(2, dtype=torch.float32).view(2, 1, 1, 1).expand(2, 3, 2, 2) / 2
    grid = comparison_grid([imgs, 1 - imgs], padding=0)
    assert grid.shape == (3, 4, 4)
    assert grid[0, :2, :2].eq(0).all() and grid[0, :2, 2:].eq(1).all()
    assert grid[0, 2:, :2].eq(0.5).all() and grid[0, 2:, 2:].eq(0.5).all()


def test_grid_errors() -> None:
    with pytest.raises(ValueError, match="share one"):
        make_grid([torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5)])
    with pytest.raises(ValueError, match="at least one"):
        make_grid([])
    with pytest.raises(ValueError, match="batch size"):
        comparison_grid([torch.zeros(1, 3, 4, 4), torch.zeros(2, 3, 4, 4)])
    with pytest.raises(ValueError, match="images must have shape"):
        make_grid(torch.zeros(1, 2, 4, 4))


def test_residual_image_and_spectrum_ranges() -> None:
    r = 0.3 * torch.randn(2, 3, 16, 16)
    shown = residual_image(r)
    assert shown.min() >= 0 and shown.max() <= 1
    # each image's largest |r| reaches the end of the range
    extreme = torch.maximum(shown.flatten(1).amax(1) - 0.5, 0.5 - shown.flatten(1).amin(1))
    torch.testing.assert_close(extreme, torch.full((2,), 0.5))
    torch.testing.assert_close(
        residual_image(torch.zeros(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 0.5)
    )
    torch.testing.assert_close(residual_image(r, gain=1.0), (0.5 + r).clamp(0, 1))
    s = log_spectrum(r.to(torch.bfloat16))
    assert s.shape == (2, 3, 16, 16) and s.dtype == torch.float32
    assert s.min() == 0 and s.max() == 1
    # a horizontal cosine puts its peaks on the centre row, symmetric about the centre
    x = torch.cos(2 * torch.pi * 3 * torch.arange(16) / 16).expand(1, 3, 16, 16)
    peak = log_spectrum(x)[0, 0]
    assert peak[8, 8 + 3] == 1 and peak[8, 8 - 3] == 1


def test_uint8_and_png_round_trip(tmp_path) -> None:
    t = torch.rand(3, 5, 7)
    arr = to_uint8_hwc(t)
    assert arr.dtype == torch.uint8 and arr.shape == (5, 7, 3)
    path = save_png(t[None], tmp_path / "sub" / "x.png")
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), arr.numpy())
    grey = save_png(torch.rand(1, 4, 4), tmp_path / "g.png")
    with Image.open(grey) as im:
        assert im.mode == "L"
    with pytest.raises(ValueError, match="t must be"):
        to_uint8_hwc(torch.rand(2, 3, 4, 4))


def _budget_trainer(tmp_path: Path, budget: CPUBudget, max_steps: int) -> Any:
    from lightning.pytorch import Trainer

    return Trainer(
        max_steps=max_steps,
        min_epochs=0,
        callbacks=[budget],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_cpu_budget_stops_training_and_a_resumed_run_continues_its_budget(
    tmp_path: Path,
) -> None:
    from lightning.pytorch.demos.boring_classes import BoringModel

    # 0.2 CPU seconds: reached long before 10^6 steps of the boring model.
    budget = CPUBudget(minutes=0.2 / 60)
    trainer = _budget_trainer(tmp_path, budget, max_steps=10**6)
    trainer.fit(BoringModel())
    assert 0 < trainer.global_step < 10**6
    assert budget.spent_seconds >= 0.2
    assert budget.state_dict()["spent_seconds"] >= 0.2
    # A run resumed with its budget already spent stops after its first iteration.
    resumed = CPUBudget(minutes=0.2 / 60)
    resumed.load_state_dict(budget.state_dict())
    trainer = _budget_trainer(tmp_path, resumed, max_steps=10**6)
    trainer.fit(BoringModel())
    assert trainer.global_step == 1
    # Off (null): nothing stops early.
    trainer = _budget_trainer(tmp_path, CPUBudget(minutes=None), max_steps=3)
    trainer.fit(BoringModel())
    assert trainer.global_step == 3


@pytest.mark.parametrize("minutes", [0, -1, float("nan"), True, "10"])
def test_cpu_budget_refuses_a_bad_budget_naming_its_key(minutes: Any) -> None:
    with pytest.raises(RCOTError, match=r"callbacks\.cpu_budget\.minutes"):
        CPUBudget(minutes=minutes)
