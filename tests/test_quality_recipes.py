"""The quality recipes (experiment=unpaired_denoise, best_cpu_denoise) hold what docs/quality.md
measured, and train with the tiny model."""

from __future__ import annotations

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


@pytest.mark.parametrize("recipe", ["unpaired_denoise", "best_cpu_denoise"])
def test_recipe_trains_a_few_steps_with_the_tiny_model(compose_train, recipe: str) -> None:
    cfg = compose_train(
        f"experiment={recipe}",
        "data.dead_leaves=2",
        "data.dead_leaves_size=48",
        "trainer.max_steps=4",
        "trainer.max_time=null",
        "trainer.limit_val_batches=1",
        "callbacks.image_logger=null",
    )
    datamodule = instantiate(cfg.data, _convert_="partial")
    assert type(datamodule).__name__ == "VarietyDataModule"
    result = run(cfg)
    assert result.model.iteration >= 2
    assert result.metric is None or result.metric > 0
