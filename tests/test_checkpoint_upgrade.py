"""Checkpoints of older versions still load: version 0.1 (objective settings at the top,
3x3-only potential), version 0.2 (the EMA as a plain copy of the map) and version 0.3 (the
evaluation and clipping settings as separate module arguments)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rcot_lightning.checkpoints.keys import FORMAT_KEY, FORMAT_VERSION
from rcot_lightning.checkpoints.load import build_module, check_resumable, load_module
from rcot_lightning.checkpoints.spec import to_spec
from rcot_lightning.checkpoints.upgrade import (
    BUILD_CONFIG_KEY,
    NESTED_SETTINGS,
    nest_settings,
    upgrade_checkpoint,
    upgrade_config,
    upgrade_state_dict,
)
from rcot_lightning.cli.train import run
from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
from rcot_lightning.errors import RCOTError
from rcot_lightning.module import ClipSettings, EvalSettings, RCOTModule
from rcot_lightning.nets import Potential, TwoPassMap
from rcot_lightning.objective import FROTObjective
from rcot_lightning.pretrained import bundle, map_from_bundle
from tests import test_module


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


def _version_0_2_layout(state: dict) -> dict:
    """A state dict as version 0.2 saved it: the EMA was a copy of the map, without a count."""
    return {
        key.replace("map_ema.module.", "map_ema.", 1): value
        for key, value in state.items()
        if key != "map_ema.n_averaged"
    }


def test_a_version_0_2_checkpoint_loads_its_ema_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = build_module(
        {
            "_target_": "rcot_lightning.RCOTModule",
            "transport_map": {"_target_": "rcot_lightning.nets.TwoPassMap", **MAP_PRESETS["tiny"]},
            "potential": {"_target_": "rcot_lightning.nets.Potential", **POTENTIAL_PRESETS["tiny"]},
            "ema_decay": 0.9,
        }
    )
    assert module.map_ema is not None
    with torch.no_grad():  # an EMA that differs from the map
        for param in module.map_ema.parameters():
            param.add_(0.05 * torch.randn_like(param))
    ema = {k: v.clone() for k, v in module.map_ema.module.state_dict().items()}
    old = _version_0_2_layout(module.state_dict())
    assert any(k.startswith("map_ema.") for k in old)
    assert not any(k.startswith("map_ema.module.") for k in old)
    ckpt = tmp_path / "v0.2.ckpt"
    torch.save(
        {"state_dict": old, BUILD_CONFIG_KEY: module.build_config, "rcot_iteration": 7}, ckpt
    )

    loaded = load_module(ckpt)
    assert loaded.map_ema is not None
    for key, value in ema.items():
        assert torch.equal(loaded.map_ema.module.state_dict()[key], value), key
    assert int(loaded.map_ema.n_averaged) == 8  # the initial weights and 7 iterations
    bundled = map_from_bundle(torch.load(bundle(ckpt, tmp_path / "b.pt"), weights_only=True))
    for key, value in ema.items():
        assert torch.equal(bundled.state_dict()[key], value), key


def test_a_version_0_2_training_checkpoint_resumes_identically(tmp_path: Path) -> None:
    batches = [test_module.make_batch(i) for i in range(2)]
    straight = test_module.build_module()
    test_module.make_trainer(max_epochs=2).fit(straight, test_module.loader(batches))

    first = test_module.build_module()
    trainer = test_module.make_trainer(max_epochs=1)
    trainer.fit(first, test_module.loader(batches))
    ckpt = tmp_path / "v0.2.ckpt"
    trainer.save_checkpoint(ckpt)
    stored = torch.load(ckpt, weights_only=False)
    stored["state_dict"] = _version_0_2_layout(stored["state_dict"])
    del stored[FORMAT_KEY]  # version 0.2 wrote no format version
    torch.save(stored, ckpt)

    resumed = test_module.build_module(seed=123)
    check_resumable(ckpt, resumed)
    test_module.make_trainer(max_epochs=2).fit(resumed, test_module.loader(batches), ckpt_path=ckpt)
    assert resumed.iteration == straight.iteration == 4
    got, want = resumed.state_dict(), straight.state_dict()
    assert list(got) == list(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key


def test_current_state_dicts_are_left_alone() -> None:
    state = RCOTModule(
        TwoPassMap(**MAP_PRESETS["tiny"]), Potential(**POTENTIAL_PRESETS["tiny"]), ema_decay=0.9
    ).state_dict()
    upgraded = upgrade_state_dict(state, iteration=3)
    assert list(upgraded) == list(state)
    assert all(upgraded[k] is v for k, v in state.items())
    no_ema = {"transport_map.w": torch.zeros(1)}
    assert upgrade_state_dict(no_ema) == no_ema


def _flat_settings(config: dict) -> dict:
    """``config`` as version 0.3 stored it: the settings as separate arguments, no groups."""
    flat = {k: v for k, v in config.items() if k not in ("evaluation", "clipping")}
    for key, (argument, field) in NESTED_SETTINGS.items():
        flat[key] = config[argument][field]
    return flat


def test_flat_settings_move_under_evaluation_and_clipping() -> None:
    flat = {
        "n_critic": 1,
        "metric_y_channel": True,
        "metric_crop_border": 4,
        "metric_also_y": False,
        "val_tile_size": 64,
        "map_grad_clip": 0.5,
        "potential_grad_clip": None,
        "grad_clip_algorithm": "value",
    }
    nested = nest_settings(flat)
    assert nested == {
        "n_critic": 1,
        "evaluation": {"y_channel": True, "crop_border": 4, "also_y": False, "val_tile_size": 64},
        "clipping": {"map": 0.5, "potential": None, "algorithm": "value"},
    }
    assert nest_settings(nested) is nested
    # An older experiment file laid over today's model config: the key its user wrote wins.
    composed = nest_settings({**nested, "map_grad_clip": 2.0})
    assert composed["clipping"] == {"map": 2.0, "potential": None, "algorithm": "value"}
    assert _flat_settings(nested) == flat
    assert EvalSettings.of(nested["evaluation"]).crop_border == 4
    assert ClipSettings.of(nested["clipping"]).algorithm == "value"


@pytest.mark.integration
def test_a_version_0_3_checkpoint_loads_its_settings_and_resumes(
    compose_train, tmp_path: Path
) -> None:
    settings = ("model.clipping.map=0.7", "model.evaluation.crop_border=2")
    run(compose_train("trainer.max_steps=4", "trainer.val_check_interval=2", *settings))
    last = tmp_path / "checkpoints" / "last.ckpt"
    stored = torch.load(last, map_location="cpu", weights_only=True)
    stored[BUILD_CONFIG_KEY] = _flat_settings(stored[BUILD_CONFIG_KEY])
    stored["hyper_parameters"] = _flat_settings(stored["hyper_parameters"])
    assert stored["hyper_parameters"]["map_grad_clip"] == 0.7
    del stored[FORMAT_KEY]  # version 0.3 wrote no format version
    torch.save(stored, last)

    upgraded = upgrade_checkpoint(torch.load(last, map_location="cpu", weights_only=True))
    for key in (BUILD_CONFIG_KEY, "hyper_parameters"):
        assert not set(NESTED_SETTINGS) & set(upgraded[key]), key
        assert upgraded[key]["clipping"]["map"] == 0.7
        assert upgraded[key]["evaluation"]["crop_border"] == 2
    module = load_module(last)
    assert module.clipping == ClipSettings(map=0.7)
    assert module.evaluation == EvalSettings(crop_border=2)
    assert module.iteration == 2

    # A run whose last.ckpt was written before the settings objects continues from it.
    resumed = run(
        compose_train(
            "trainer.max_steps=6", "trainer.val_check_interval=2", "ckpt_path=last", *settings
        )
    )
    assert resumed.model.iteration == 3
    assert resumed.model.clipping.map == 0.7
    after = torch.load(last, weights_only=True)
    assert after["rcot_iteration"] == 3
    assert after["hyper_parameters"]["clipping"] == {
        "map": 0.7,
        "potential": None,
        "algorithm": "norm",
    }


def test_an_upgraded_checkpoint_records_todays_format_and_saves_as_it(tmp_path: Path) -> None:
    """A version 0.1 file resumed by a module built by hand (no build config of its own)
    carries the stored config on; upgraded, it is written as today's format and loads again."""
    old = {"state_dict": {}, BUILD_CONFIG_KEY: _legacy_config()}
    upgraded = upgrade_checkpoint(old)
    assert upgraded[FORMAT_KEY] == FORMAT_VERSION
    assert upgraded[BUILD_CONFIG_KEY]["_target_"] == "RCOTModule"  # registry names, as saved
    assert upgraded[BUILD_CONFIG_KEY]["objective"]["lambda_gp"] == 5.0

    torch.manual_seed(0)
    by_hand = RCOTModule(
        TwoPassMap(**MAP_PRESETS["tiny"]),
        Potential(**POTENTIAL_PRESETS["tiny"], layout="uniform"),
    )
    by_hand.on_load_checkpoint({"state_dict": {}, BUILD_CONFIG_KEY: _legacy_config()})
    saved: dict = {"state_dict": by_hand.state_dict()}
    by_hand.on_save_checkpoint(saved)
    assert saved[FORMAT_KEY] == FORMAT_VERSION
    torch.save(saved, tmp_path / "resumed.ckpt")
    assert load_module(tmp_path / "resumed.ckpt").objective.lambda_gp == 5.0


def test_a_format_version_that_is_no_version_is_one_line(tmp_path: Path) -> None:
    module = RCOTModule(TwoPassMap(**MAP_PRESETS["tiny"]), Potential(**POTENTIAL_PRESETS["tiny"]))
    for value, expected in (("1", "not a format version"), (FORMAT_VERSION + 1, "newer than")):
        stored: dict = {"state_dict": module.state_dict()}
        module.build_config = to_spec(_legacy_config())
        module.on_save_checkpoint(stored)
        stored[FORMAT_KEY] = value
        torch.save(stored, tmp_path / "odd.ckpt")
        with pytest.raises(RCOTError, match=expected):
            load_module(tmp_path / "odd.ckpt")
