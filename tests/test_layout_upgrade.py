"""Checkpoints written before the package layout (cli/, callbacks/, checkpoints/, metrics/) still
load and resume: their stored ``_target_`` names of moved modules are read as the new ones."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from rcot_lightning.checkpoints.load import load_module
from rcot_lightning.checkpoints.spec import FORMAT_KEY, check_spec
from rcot_lightning.checkpoints.upgrade import MOVED, upgrade_checkpoint, upgrade_target
from rcot_lightning.cli.train import run
from rcot_lightning.errors import RCOTError

#: Classes as rcot-lightning 0.3 (before the layout) named them in configs and checkpoints.
OLD_CLASSES = {
    "rcot_lightning.checkpoint_callback.RunCheckpoint": "RunCheckpoint",
    "rcot_lightning.preemption.PreemptionCheckpoint": "PreemptionCheckpoint",
    "rcot_lightning.cpu_budget.CPUBudget": "CPUBudget",
    "rcot_lightning.progress_bar.RCOTProgressBar": "RCOTProgressBar",
    "rcot_lightning.callbacks.RestorationImageLogger": "RestorationImageLogger",
    "rcot_lightning.atomic.AtomicCSVLogger": "AtomicCSVLogger",
    "rcot_lightning.atomic.AtomicCheckpointIO": "AtomicCheckpointIO",
    "rcot_lightning.recipe.RecipeReport": "RecipeReport",
    "rcot_lightning.eval.OptionalScores": "OptionalScores",
    "rcot_lightning.eval.RestoredImageWriter": "RestoredImageWriter",
    "rcot_lightning.metrics.RandomFeatureDistances": "RandomFeatureDistances",
}


def _resolve(target: str) -> object:
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("new", sorted(set(MOVED.values())))
def test_every_new_name_of_the_table_exists(new: str) -> None:
    try:
        importlib.import_module(new)
    except ImportError:
        _resolve(new)  # a class named by its package


@pytest.mark.parametrize("old", sorted(OLD_CLASSES))
def test_old_class_names_resolve_to_the_same_class(old: str) -> None:
    assert _resolve(upgrade_target(old)).__name__ == OLD_CLASSES[old]


def test_an_unmoved_name_is_kept_and_no_callback_is_buildable_from_a_file() -> None:
    assert upgrade_target("rcot_lightning.nets.TwoPassMap") == "rcot_lightning.nets.TwoPassMap"
    assert upgrade_target("torch.optim.Adam") == "torch.optim.Adam"
    # Callbacks have side effects at construction (signal handlers, files): a stored config
    # builds only the module's networks, objective, optimisers and schedulers.
    for name in (
        "rcot_lightning.checkpoint_callback.RunCheckpoint",
        *map(upgrade_target, OLD_CLASSES),
    ):
        with pytest.raises(RCOTError, match="is not a map this version of rcot-lightning builds"):
            check_spec({"_target_": "RCOTModule", "transport_map": {"_target_": name}})


def _write_pre_layout_targets(path: Path) -> None:
    """Make ``path`` look as the code before the layout wrote it: old module names stored."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    del checkpoint[FORMAT_KEY]  # files of before the format version had none
    old = [{"_target_": target} for target in OLD_CLASSES]
    checkpoint["hyper_parameters"]["stored_callbacks"] = old
    checkpoint.setdefault("datamodule_hyper_parameters", {})["stored_callbacks"] = old
    torch.save(checkpoint, path)


@pytest.mark.integration
def test_a_pre_layout_checkpoint_loads_and_resumes_with_ckpt_path_last(
    compose_train, tmp_path: Path
) -> None:
    run(compose_train("trainer.max_steps=4", "trainer.val_check_interval=2"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    _write_pre_layout_targets(last)

    stored = torch.load(last, map_location="cpu", weights_only=True)
    upgraded = upgrade_checkpoint(stored)
    names = [n["_target_"] for n in upgraded["hyper_parameters"]["stored_callbacks"]]
    assert names == [upgrade_target(t) for t in OLD_CLASSES]
    assert names[0] == "rcot_lightning.callbacks.run_checkpoint.RunCheckpoint"
    assert load_module(last).iteration == 2

    # A training run started before the move continues from its last.ckpt after it.
    resumed = run(
        compose_train("trainer.max_steps=6", "trainer.val_check_interval=2", "ckpt_path=last")
    )
    assert resumed.model.iteration == 3
    assert torch.load(last, weights_only=True)["rcot_iteration"] == 3


def test_checkpoints_hold_no_data_options_so_renamed_data_keys_need_no_upgrade(
    compose_train, tmp_path: Path
) -> None:
    """The data modules save no hyper-parameters: evaluation and resume build the data from the
    config given, so a checkpoint written before data.folders / data.crops / data.loader /
    data.val_sets holds no data key to rename, and its model config holds plain values only."""
    from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY

    result = run(compose_train("trainer.max_steps=2", "trainer.val_check_interval=2"))
    assert not result.datamodule.hparams
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert "datamodule_hyper_parameters" not in stored
    for key in ("hyper_parameters", BUILD_CONFIG_KEY):
        text = repr(stored.get(key))
        assert "Spec(" not in text and "val_target_dir" not in text, key
