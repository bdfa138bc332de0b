"""Checkpoints of version 0.1 (objective settings at the top, 3x3-only potential) still load."""

from __future__ import annotations

from pathlib import Path

import torch

from rcot_lightning.checkpoint import BUILD_CONFIG_KEY, load_module, upgrade_config
from rcot_lightning.module import RCOTModule
from rcot_lightning.nets import MAP_PRESETS, POTENTIAL_PRESETS, Potential, TwoPassMap
from rcot_lightning.objective import FROTObjective


def _legacy_config() -> dict:
    return {
        "_target_": "rcot_lightning.RCOTModule",
        "transport_map": {"_target_": "rcot_lightning.nets.TwoPassMap", **MAP_PRESETS["tiny"]},
        "potential": {"_target_": "rcot_lightning.nets.Potential", **POTENTIAL_PRESETS["tiny"]},
        "lambda_gp": 5.0,
        "supervised_weight": 1000.0,
        "fourier_norms": {"noise": 2},
        "n_critic": 1,
    }


def test_a_version_0_1_checkpoint_rebuilds_and_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    old = RCOTModule(
        TwoPassMap(**MAP_PRESETS["tiny"]),
        Potential(**POTENTIAL_PRESETS["tiny"], layout="uniform"),
        FROTObjective(lambda_gp=5.0, supervised_weight=1000.0),
    )
    ckpt = tmp_path / "old.ckpt"
    torch.save({"state_dict": old.state_dict(), BUILD_CONFIG_KEY: _legacy_config()}, ckpt)
    module = load_module(ckpt)
    assert module.objective.lambda_gp == 5.0 and module.objective.supervised_weight == 1000.0
    for key, value in old.state_dict().items():
        assert torch.equal(module.state_dict()[key], value), key


def test_current_configs_are_left_alone() -> None:
    config = upgrade_config(_legacy_config())
    assert upgrade_config(config) == config
    assert config["potential"]["layout"] == "uniform"
    assert "lambda_gp" not in config and config["objective"]["lambda_gp"] == 5.0
