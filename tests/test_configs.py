"""Composition of every shipped config: groups, the paper recipes, strategy choice, packaging."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

import rcot_lightning
from rcot_lightning.cli.app import DDP_STRATEGY, build_trainer
from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
from rcot_lightning.conf.presets import MAP_SIZE_KEYS, PRESET_CONFIGS, model_config
from rcot_lightning.errors import RCOTError
from tests.test_train import TASKS

CONF = Path(rcot_lightning.__file__).parent / "conf"
GROUPS = {
    "task": set(TASKS),
    "model": {"rcot", "rcot_small", "rcot_tiny"},
    "hardware": {"auto", "cpu", "gpu", "ddp", "bf16", "fp16"},
    "data": {"samples", "paired", "unpaired", "semipaired", "synthetic", "allinone"}
    | {"samples_allinone", "rain100l", "rain100h", "reside_ots", "reside_its"}
    | {"reside_sots_outdoor", "bsd400_wed", "lol", "gopro", "div2k_x4"},
    "logger": {"csv", "tensorboard", "wandb", "many_loggers"},
    "experiment": {"quickstart", "allinone", "allinone_samples"} | {f"paper_{t}" for t in TASKS},
    "hparams_search": {"optuna", "optuna_unpaired"},
}


def _names(group: str) -> set[str]:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_group_has_its_options(group: str) -> None:
    assert GROUPS[group] <= _names(group)


def test_default_job_is_denoising_samples_with_the_small_model(compose_train) -> None:
    cfg = compose_train(tiny=False)
    assert cfg.task.name == "denoise"
    assert cfg.data._target_.endswith("SamplesDataModule")
    assert cfg.data.degradation.sigma == 25
    assert cfg.trainer.accelerator == "auto" and cfg.trainer.devices == 1
    assert cfg.trainer.precision == "32-true"
    small = MAP_PRESETS["small"]
    assert cfg.model.transport_map.dim == small["dim"]
    assert tuple(cfg.model.transport_map.num_blocks) == small["num_blocks"]
    assert cfg.logger.keys() == {"csv"}
    assert cfg.optimized_metric == "val/psnr"
    assert cfg.callbacks.model_checkpoint.monitor == "val/psnr"
    assert cfg.callbacks.model_checkpoint.mode == "max"


@pytest.mark.parametrize(("preset", "config"), sorted(PRESET_CONFIGS.items()))
def test_the_python_presets_are_read_from_the_model_configs(
    compose_train, preset: str, config: str
) -> None:
    """The sizes are written once, in ``conf/model/<config>.yaml``: the presets of the Python API
    are what Hydra composes from that file (its defaults list applied), read on lookup."""
    cfg = compose_train(f"model={config}", "recipe=none", tiny=False)
    composed = {
        key: OmegaConf.to_container(cfg.model[key], resolve=True)
        for key in ("transport_map", "potential")
    }
    assert model_config(config) == composed
    tmap, potential = composed["transport_map"], composed["potential"]
    assert isinstance(tmap, dict) and isinstance(potential, dict)
    assert list(MAP_PRESETS[preset]) == list(MAP_SIZE_KEYS)
    for key, value in MAP_PRESETS[preset].items():
        assert tmap[key] == (list(value) if isinstance(value, tuple) else value), key
    assert POTENTIAL_PRESETS[preset] == {"channels": tuple(potential["channels"])}
    # A lookup is a copy: changing it changes neither the configs nor the next lookup.
    MAP_PRESETS[preset]["dim"] = -1
    assert MAP_PRESETS[preset]["dim"] == tmap["dim"]


def test_an_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: paper, small, tiny"):
        MAP_PRESETS["huge"]
    assert "huge" not in POTENTIAL_PRESETS and len(POTENTIAL_PRESETS) == 3


@pytest.mark.parametrize("task", TASKS)
def test_task_sets_degradation_fourier_norm_and_metrics(compose_train, task: str) -> None:
    cfg = compose_train(f"task={task}")
    assert cfg.task.name == task
    assert cfg.data.folders.degradation_id == cfg.task.degradation_id
    norms = OmegaConf.to_container(cfg.model.objective.fourier_norms)
    assert norms == {cfg.task.degradation_id: 2 if task == "denoise" else 1}
    assert cfg.model.evaluation.y_channel == cfg.task.metric.y_channel
    if cfg.task.degradation is not None:
        degradation = instantiate(cfg.data.degradation)
        assert degradation.degradation_id.name.lower() == cfg.task.degradation_id


@pytest.mark.parametrize("task", TASKS)
def test_paper_experiments_hold_the_reference_recipe(compose_train, task: str) -> None:
    folders = [
        "data.train_dir=/d",
        "data.train_degraded_dir=/d",
        "data.train_target_dir=/d",
    ]
    cfg = compose_train(f"experiment=paper_{task}", tiny=False)
    present = [f for f in folders if f.split("=")[0].split(".")[1] in cfg.data]
    cfg = compose_train(f"experiment=paper_{task}", *present, tiny=False)
    assert cfg.task.name == task
    assert cfg.data.batch_size == 3 and cfg.data.crops.patch_size == 128
    m = cfg.model
    assert m.transport_map.dim == MAP_PRESETS["paper"]["dim"]
    assert m.map_optimizer._target_ == "torch.optim.RMSprop" and m.map_optimizer.lr == 5e-5
    assert m.potential_optimizer._target_ == "torch.optim.RMSprop"
    assert m.potential_optimizer.lr == 1e-4
    for scheduler in (m.map_scheduler, m.potential_scheduler):
        assert scheduler.step_size == 20 and scheduler.gamma == 0.1
    assert m.scheduler_interval == "epoch"
    assert m.objective.lambda_gp == 10 and m.n_critic == 1 and m.objective.supervised_weight == 1e4
    assert cfg.trainer.max_epochs == 51


def test_optuna_search_maximises_validation_psnr(compose_train) -> None:
    cfg = compose_train("hparams_search=optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize"
    assert cfg.optimized_metric == "val/psnr"
    assert "model.map_optimizer.lr" in sweeper.params


def test_slurm_launcher_config_composes(compose_train) -> None:
    cfg = compose_train(
        "hydra/launcher=slurm", "hardware=ddp", "trainer.devices=4", "trainer.num_nodes=2"
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.nodes == 2 and launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4
    assert cfg.trainer.strategy == DDP_STRATEGY


@pytest.mark.parametrize("name", ["eval", "restore"])
def test_eval_and_restore_configs_compose(compose_config, name: str) -> None:
    extra = ["input=a.png", "output=out"] if name == "restore" else []
    cfg = compose_config(name, "ckpt_path=x.ckpt", *extra)
    assert cfg.ckpt_path == "x.ckpt"


def test_user_config_dir_joins_the_search_path(compose_train, tmp_path: Path) -> None:
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: rcot_tiny\n"
        "model:\n  objective:\n    lambda_gp: 3.5\n"
    )
    cfg = compose_train(f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "experiment=mine")
    assert cfg.model.objective.lambda_gp == 3.5


def _trainer(**settings: object) -> object:
    node = OmegaConf.create({"_target_": "lightning.pytorch.Trainer", **settings})
    return build_trainer(node, logger=False, enable_checkpointing=False)


@pytest.mark.parametrize(
    ("trainer", "processes", "find_unused"),
    [
        ({"accelerator": "cpu", "devices": 1}, 1, None),
        ({"accelerator": "cpu", "devices": 2}, 2, True),
        ({"accelerator": "cpu", "devices": "4"}, 4, True),
        ({"accelerator": "cpu", "devices": 1, "num_nodes": 2}, 2, True),
        ({"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}, 2, None),
    ],
)
def test_strategy_resolution(trainer: dict, processes: int, find_unused: bool | None) -> None:
    """Several processes with ``strategy: auto``: DDP that tolerates unused parameters."""
    strategy = _trainer(**trainer).strategy
    assert strategy.world_size == processes
    assert getattr(strategy, "_ddp_kwargs", {}).get("find_unused_parameters") is find_unused


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"accelerator": "cpu", "devices": 0}, r"^trainer.devices=0: .*; use a positive number"),
        ({"accelerator": "cpu", "devices": "zero"}, r"^trainer.devices=zero: .*; use a positive"),
        ({"accelerator": "cpu", "devices": []}, r"^trainer.devices=\[\]: "),
        ({"accelerator": "cpu", "num_nodes": 0}, r"^trainer.num_nodes=0: .*; use an integer >= 1"),
        ({"accelerator": "foo"}, r"^trainer.accelerator=foo: .*; use hardware=auto"),
        ({"strategy": "foo"}, r"^trainer.strategy=foo: .*; use auto"),
        ({"precision": 13}, r"^trainer.precision=13: .*; use 32-true, bf16-mixed"),
        ({"max_epoch": 3}, r"^trainer.max_epoch=3: .*not an argument of lightning.pytorch.Trainer"),
        ({"accelerator": "cpu", "precision": "16-mixed"}, "hardware=bf16"),
        ({"accelerator": "cpu", "gradient_clip_val": 1.0}, "model.clipping.map"),
    ],
)
def test_bad_trainer_values_raise_rcot_errors(trainer: dict, message: str) -> None:
    """What Lightning rejects, in one line that names the key, with what to do."""
    with pytest.raises(RCOTError, match=message) as info:
        _trainer(**trainer)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "You requested gpu: [0, 1, 2, 3]\n But your machine only has: [0]",
            "trainer.devices=4: You requested gpu: [0, 1, 2, 3]; But your machine only has: [0]; "
            "use a positive number of devices, a list of device ids, or 'auto'",
        ),
        ("No supported gpu backend found!", "trainer.accelerator=gpu: No supported gpu backend"),
        ("Something else went wrong.", "trainer: Something else went wrong"),
    ],
)
def test_lightning_errors_that_name_no_argument(error: str, expected: str) -> None:
    """GPU-machine messages of Lightning that do not name the argument they are about."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from rcot_lightning.cli.app import trainer_error_message

    trainer = {"accelerator": "gpu", "devices": 4, "precision": "32-true"}
    assert trainer_error_message(MisconfigurationException(error), trainer).startswith(expected)


_TORCHRUN = {
    "TORCHELASTIC_RUN_ID": "job42",
    "WORLD_SIZE": "4",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "GROUP_RANK": "0",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}
_SLURM = {
    "SLURM_JOB_ID": "123",
    "SLURM_JOB_NAME": "rcot",
    "SLURM_NTASKS": "4",
    "SLURM_NTASKS_PER_NODE": "2",
    "SLURM_NODELIST": "node[1-2]",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
}


@pytest.mark.parametrize(
    ("env", "environment", "run_id"),
    [
        (_TORCHRUN, "TorchElasticEnvironment", "torchrun-job42"),
        (_SLURM, "SLURMEnvironment", "slurm-123-0"),
    ],
    ids=["torchrun", "slurm"],
)
def test_multi_node_configs_meet_lightning_cluster_environments(
    compose_train, monkeypatch: pytest.MonkeyPatch, env: dict, environment: str, run_id: str
) -> None:
    """2 nodes x 2 processes as torchrun or SLURM would start them: composition and Trainer only."""
    for key in list(os.environ):
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in _TORCHRUN:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = compose_train("hardware=cpu", "trainer.devices=2", "trainer.num_nodes=2")
    assert cfg.hydra.run.dir.endswith(run_id)  # every rank of the job finds the same folder
    trainer = build_trainer(cfg.trainer, logger=False, enable_checkpointing=False)
    assert type(trainer.strategy.cluster_environment).__name__ == environment
    assert trainer.world_size == 4 and trainer.num_nodes == 2
    assert trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True


def test_paper_recipes_use_the_authors_fourier_strength(compose_train) -> None:
    for task in ("denoise", "derain", "dehaze", "deblur", "lowlight", "sr", "jpeg", "custom"):
        objective = compose_train(f"experiment=paper_{task}").model.objective
        assert objective.reference_fourier is True and objective.fourier_weight == 1.0, task


def test_derain_reports_rgb_with_the_y_channel_alongside(compose_train) -> None:
    model = compose_train("task=derain").model
    assert model.evaluation.y_channel is False and model.evaluation.also_y is True
