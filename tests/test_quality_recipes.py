"""The quality recipes (experiment=unpaired_denoise, best_cpu_denoise, and issue 30's six task
recipes <task>_cpu) hold what docs/quality.md measured or the issue asks, and train with the tiny
model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from rcot_lightning.cli.train import run


def test_unpaired_recipe_is_pure_frot_on_disjoint_images(compose_train) -> None:
    cfg = compose_train("experiment=unpaired_denoise", tiny=False)
    objective = cfg.model.objective
    assert objective.supervised_weight == 0 and objective.potential_weight > 0
    assert objective.transport_cost == "l2" and objective.transport_weight == 200
    assert cfg.data.unpaired and cfg.data.dead_leaves == 256
    assert cfg.data.degradation.sigma == 25
    assert cfg.model.ema_decay == 0.995
    # Both learning rates decay per iteration (a constant rate drifts after the noise is gone).
    assert cfg.model.scheduler_interval == "step"
    for scheduler in (cfg.model.map_scheduler, cfg.model.potential_scheduler):
        assert scheduler.step_size == 1000 and scheduler.gamma == 0.5


def test_best_cpu_recipe_is_supervised_with_generated_variety(compose_train) -> None:
    cfg = compose_train("experiment=best_cpu_denoise", tiny=False)
    objective = cfg.model.objective
    assert objective.potential_weight == 0 and objective.supervised_weight > 0
    assert not cfg.data.unpaired and cfg.data.dead_leaves > 0
    # The learning-rate drops fall inside the run (potential off: one global step per iteration).
    assert cfg.model.map_scheduler.step_size < cfg.trainer.max_steps
    assert cfg.model.scheduler_interval == "step"


#: Issue 30's CPU recipes, one per task: experiment=<task>_cpu.
TASK_RECIPES = ("jpeg", "derain", "dehaze", "deblur", "lowlight", "sr")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "src/rcot_lightning/conf/experiment"


@pytest.mark.parametrize("task", TASK_RECIPES)
def test_task_cpu_recipe_is_denoise_blinds_recipe_on_the_tasks_blind_range(
    compose_train, task: str
) -> None:
    import torch

    from rcot_lightning.contract import DegradationId
    from rcot_lightning.data.degradations import (
        JPEG,
        Chain,
        Downscale,
        GaussianBlur,
        GaussianNoise,
        Haze,
        LowLight,
        MotionBlur,
        OneOf,
        RainStreaks,
    )
    from rcot_lightning.data.heldout import HELDOUT_PHOTOS

    cfg = compose_train(f"experiment={task}_cpu", tiny=False)
    blind = compose_train("experiment=denoise_blind", tiny=False)
    assert cfg.task.name == task and cfg.task_name == f"{task}_cpu"
    # The same map family and size, objective, EMA, data and checkpoints as denoise_blind ...
    assert cfg.model.transport_map == blind.model.transport_map
    differ = {"fourier_norms"}  # the task's norm (unused: the Fourier weight is 0)
    assert {k: v for k, v in cfg.model.objective.items() if k not in differ} == {
        k: v for k, v in blind.model.objective.items() if k not in differ
    }
    assert cfg.model.clipping == blind.model.clipping and cfg.model.ema_decay == 0.999
    assert cfg.model.map_optimizer == blind.model.map_optimizer
    for key in ("train_images", "scales", "dead_leaves", "batch_size", "samples_per_epoch"):
        assert cfg.data[key] == blind.data[key], key
    assert cfg.data.crops.patch_size == 64
    assert not set(cfg.data.train_images) & set(HELDOUT_PHOTOS)
    # Every 1000 iterations, after the validation there (epochs of 500), so names hold fresh PSNRs.
    assert cfg.callbacks.model_checkpoint.every_n_epochs == 2
    assert cfg.data.samples_per_epoch // cfg.data.batch_size == 500
    assert cfg.callbacks.model_checkpoint.get("every_n_train_steps") is None
    assert cfg.callbacks.model_checkpoint.save_top_k == -1
    # ... in fp32 on the CPU (no native bf16 here), for a budget of 45 CPU-minutes: the rate
    # halves inside it (about 3000 iterations).
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "32-true"
    assert cfg.callbacks.cpu_budget.minutes >= 45
    assert cfg.model.map_scheduler.step_size == 1000 and cfg.model.scheduler_interval == "step"
    assert cfg.trainer.max_steps > 3000
    # Blind within the task's range (issue 30).
    degradation = instantiate(cfg.data.degradation, _convert_="partial")
    expected = {
        "jpeg": JPEG,
        "derain": RainStreaks,
        "dehaze": Haze,
        "deblur": Chain,
        "lowlight": LowLight,
        "sr": Downscale,
    }[task]
    assert type(degradation) is expected
    if task == "jpeg":
        assert degradation.quality == (10.0, 90.0)
        # Real libjpeg files, low qualities favoured (the first, kornia-coded run plateaued).
        assert degradation.codec == "libjpeg" and degradation.quality_power == 2
    if task == "deblur":
        mix, noise = degradation.degradations
        assert isinstance(mix, OneOf) and isinstance(noise, GaussianNoise)
        assert noise.sigma == (0.0, 2.0) and noise.quantize
        gaussian, *motions = mix.degradations
        assert isinstance(gaussian, GaussianBlur) and gaussian.sigma == (0.5, 3.0)
        assert all(isinstance(m, MotionBlur) for m in motions)
        assert [m.kernel_size for m in motions] == list(range(3, 16, 2))
        assert mix.weights[0] == pytest.approx(0.5)
        _, ids = degradation.apply(torch.rand(4, 3, 32, 32), torch.Generator().manual_seed(0))
        assert set(ids.tolist()) == {int(DegradationId.BLUR)}
    if task == "sr":
        assert degradation.scale == 4 and degradation.upsample
        assert cfg.task.metric.y_channel and cfg.task.metric.crop_border == 4
    if task == "jpeg":
        assert cfg.task.metric.y_channel and cfg.task.metric.crop_border == 0
    # The header gives the commands to train and to resume.
    text = (EXPERIMENTS / f"{task}_cpu.yaml").read_text()
    train = f"OMP_NUM_THREADS=1 python -m rcot_lightning.train experiment={task}_cpu run_dir=<run>"
    assert train in text and f"{train} ckpt_path=last" in text


def test_allinone_cpu_recipe_draws_every_family_blind_with_the_specialists_map(
    compose_train,
) -> None:
    """Issue 31: one map for noise 0-50, JPEG 10-90, rain, haze, blur with light noise, low light
    and two mixtures (noise then JPEG, blur then noise), never told which, on the specialists'
    map, data and objective, for 3 CPU-hours."""
    import torch

    from rcot_lightning.contract import DegradationId
    from rcot_lightning.data.degradations import (
        JPEG,
        Chain,
        GaussianNoise,
        Haze,
        LowLight,
        OneOf,
        RainStreaks,
    )
    from rcot_lightning.data.heldout import HELDOUT_PHOTOS

    cfg = compose_train("experiment=allinone_cpu", tiny=False)
    specialist = compose_train("experiment=derain_cpu", tiny=False)
    assert cfg.model.transport_map == specialist.model.transport_map
    assert cfg.model.objective.supervised_loss == "l1" and cfg.model.objective.potential_weight == 0
    for key in ("train_images", "scales", "dead_leaves", "batch_size", "samples_per_epoch"):
        assert cfg.data[key] == specialist.data[key], key
    assert not set(cfg.data.train_images) & set(HELDOUT_PHOTOS)
    assert cfg.callbacks.cpu_budget.minutes == 180 and cfg.trainer.max_steps > 12000
    assert cfg.model.map_scheduler.step_size == 3000
    mix = instantiate(cfg.data.degradation, _convert_="partial")
    assert isinstance(mix, OneOf) and mix.weights == [pytest.approx(1 / 8)] * 8
    noise, jpeg, rain, haze, blur, dark, noise_jpeg, blur_noise = mix.degradations
    assert isinstance(noise, GaussianNoise) and noise.sigma == (0.0, 50.0)
    assert isinstance(jpeg, JPEG) and jpeg.quality == (10.0, 90.0) and jpeg.codec == "libjpeg"
    assert isinstance(rain, RainStreaks) and isinstance(haze, Haze) and isinstance(dark, LowLight)
    for chain in (blur, noise_jpeg, blur_noise):
        assert isinstance(chain, Chain)
    assert [type(d) for d in noise_jpeg.degradations] == [GaussianNoise, JPEG]
    assert [type(d) for d in blur_noise.degradations] == [OneOf, GaussianNoise]
    _, ids = mix.apply(torch.rand(256, 3, 16, 16), torch.Generator().manual_seed(0))
    families = {"noise", "jpeg", "rain", "haze", "blur", "lowlight", "other"}
    assert set(ids.tolist()) == {int(DegradationId.from_name(f)) for f in families}


@pytest.mark.parametrize(
    "recipe",
    ["unpaired_denoise", "best_cpu_denoise", *(f"{t}_cpu" for t in TASK_RECIPES), "allinone_cpu"],
)
@pytest.mark.integration
def test_recipe_trains_a_few_steps_with_the_tiny_model(compose_train, recipe: str) -> None:
    cfg = compose_train(
        f"experiment={recipe}",
        "data.dead_leaves=2",
        "data.dead_leaves_size=48",
        "trainer.max_steps=4",
        "++trainer.max_time=null",
        "trainer.limit_val_batches=1",
        "callbacks.image_logger=null",
    )
    datamodule = instantiate(cfg.data, _convert_="partial")
    assert type(datamodule).__name__ == "VarietyDataModule"
    result = run(cfg)
    assert result.model.iteration >= 2
    assert result.metric is None or result.metric > 0
