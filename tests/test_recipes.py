"""Recipes: which one a run gets, what the documented commands compose to, the paper's epochs.

The training commands of ``docs/training.md`` and ``docs/configs.md`` are composed here with
placeholder folders of 200 tiny images, and their key figures checked against ``DOCS_TABLE``
(the tables of those pages).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.utils import instantiate
from PIL import Image

from rcot_lightning.callbacks.recipe_report import RecipeFacts, describe, recipe_name
from rcot_lightning.cli.recipe import check_recipe
from rcot_lightning.cli.train import run
from rcot_lightning.errors import RCOTError
from tests.conftest import TINY, run_cli

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: The pages whose training commands and tables this file checks.
PAGES = (DOCS / "training.md", DOCS / "configs.md")

#: Images in every placeholder folder (the pages' table counts iterations for 200 images).
IMAGES = 200

#: The documented training commands, by a piece of text unique to each, and what they must
#: compose to: recipe, iterations per epoch, epochs (or the max_steps cap in iterations), patch,
#: last potential channel count, map optimiser and learning rate.
DOCS_TABLE = {
    "task=derain data=paired data.train": ("standard", 24_000, 51, 128, 256, "RMSprop", 5e-5),
    "model=rcot hardware=gpu": ("standard", 24_000, 51, 128, 512, "RMSprop", 5e-5),
    "task=dehaze data=unpaired": ("standard", 66, 51, 128, 256, "RMSprop", 5e-5),
    "task=deblur data=semipaired": ("standard", 333, 51, 128, 256, "RMSprop", 5e-5),
    "data=synthetic data.train_dir=BSD400/": ("standard", 333, 51, 128, 256, "RMSprop", 5e-5),
    "experiment=paper_derain": ("paper_derain", 24_000, 51, 128, 512, "RMSprop", 5e-5),
    "rcot_lightning.train # recipe=demo": ("demo", 50, 6, 64, 128, "Adam", 1e-3),
    "train model=rcot # recipe=standard": ("standard", 266, 51, 128, 512, "RMSprop", 5e-5),
    "clean/ recipe=demo": ("demo", 50, 6, 64, 128, "Adam", 1e-3),
    "model.clipping.map=1.0": ("demo", 50, 6, 64, 128, "Adam", 1e-3),
    "experiment=paper_denoise": ("paper_denoise", 333, 1000, 128, 512, "RMSprop", 5e-5),
}

#: The authors' file-list repeats and the training-set sizes docs/configs.md's paper table assumes:
#: task -> (repeat, images, iterations per epoch at batch 3, total over 51 epochs).
PAPER_EPOCHS = {
    "denoise": (5, 400 + 4744, 8573, 437_223),
    "derain": (360, 200, 24_000, 1_224_000),
    "dehaze": (1, 72_135, 24_045, 1_226_295),
    "deblur": (5, 2103, 3505, 178_755),
    "lowlight": (20, 485, 3233, 164_883),
    "sr": (5, 800, 1333, 67_983),
    "jpeg": (5, 800, 1333, 67_983),
    "custom": (5, 1000, 1666, 84_966),
}


def _documented_commands() -> list[str]:
    """Every ``python -m rcot_lightning.train`` command of the two pages."""
    chosen = "".join(page.read_text() for page in PAGES)
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", chosen, flags=re.S):
        joined = block.replace("\\\n", " ")
        commands += [
            " ".join(line.split())
            for line in joined.splitlines()
            if line.strip().startswith("python -m rcot_lightning.train")
        ]
    return commands


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of 200 tiny 128x128 images, standing in for every documented folder."""
    root = tmp_path_factory.mktemp("images")
    for i in range(IMAGES):
        Image.new("RGB", (128, 128), color=(i, 50, 100)).save(root / f"{i:03d}.png")
    return root


def _args(command: str, folder: Path) -> list[str]:
    """The command's overrides, every ``*_dir`` pointing at the placeholder folder."""
    args = shlex.split(command.split("#")[0])[3:]
    return [f"{a.split('=')[0]}={folder}" if a.split("=")[0].endswith("_dir") else a for a in args]


def test_documented_commands_are_all_in_the_table() -> None:
    commands = _documented_commands()
    assert len(commands) == len(DOCS_TABLE)
    for key in DOCS_TABLE:
        assert sum(key in c for c in commands) == 1, key


@pytest.mark.parametrize("key", list(DOCS_TABLE))
def test_documented_command_composes_to_its_figures(compose_train, folder: Path, key: str) -> None:
    command = next(c for c in _documented_commands() if key in c)
    recipe, per_epoch, epochs, patch, potential, optimizer, lr = DOCS_TABLE[key]
    cfg = compose_train(*_args(command, folder), tiny=False)
    from hydra.core.hydra_config import HydraConfig

    assert recipe_name(HydraConfig.get().runtime.choices) == recipe
    check_recipe({k: cfg[k] for k in ("trainer", "model", "data")}, [])
    datamodule = instantiate(cfg.data, _convert_="partial")
    assert len(datamodule.train_dataloader()) == per_epoch
    if cfg.trainer.max_steps > 0:  # the cap, in iterations
        assert cfg.trainer.max_steps // (cfg.model.n_critic + 1) == epochs
    else:
        assert cfg.trainer.max_epochs == epochs
    assert cfg.data.crops.patch_size == patch
    assert cfg.model.potential.channels[-1] == potential
    assert cfg.model.map_optimizer._target_ == f"torch.optim.{optimizer}"
    assert cfg.model.map_optimizer.lr == lr


def test_default_job_keeps_the_demo_recipe(compose_train) -> None:
    """``python -m rcot_lightning.train`` with no argument: the quickstart's settings, unchanged."""
    cfg = compose_train(tiny=False)
    named = compose_train("experiment=quickstart", tiny=False)
    for c in (cfg, named):
        assert (c.data.batch_size, c.data.crops.patch_size, c.data.samples_per_epoch) == (
            8,
            64,
            400,
        )
        assert c.data.crops.val_crop_size == 128 and c.trainer.max_epochs == 6
        assert list(c.model.potential.channels) == [16, 16, 32, 32, 64, 64, 128, 128]
        assert c.model.map_optimizer._target_ == "torch.optim.Adam"
        assert c.model.map_optimizer.lr == 1e-3 and c.model.map_scheduler is None
        assert c.model.objective.supervised_weight == 1000.0


@pytest.mark.parametrize(
    ("overrides", "recipe"),
    [
        ((), "demo"),
        (("data=paired",), "standard"),
        (("model=rcot",), "standard"),
        (("model=rcot_tiny",), "standard"),
        (("task=derain",), "demo"),  # still the sample photos: synthetic rain
        (("experiment=paper_sr",), "none"),
        (("data=paired", "recipe=demo"), "demo"),  # the command line wins over the pick
        (("recipe=standard",), "standard"),
    ],
)
def test_recipe_is_picked_from_the_choices(compose_train, overrides, recipe: str) -> None:
    from hydra.core.hydra_config import HydraConfig

    compose_train(*overrides, tiny=False)
    assert HydraConfig.get().runtime.choices["recipe"] == recipe


def test_a_model_choice_brings_its_own_potential_and_optimisers(compose_train) -> None:
    cfg = compose_train("model=rcot", tiny=False)
    assert list(cfg.model.potential.channels) == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert cfg.model.map_optimizer._target_ == "torch.optim.RMSprop"
    assert cfg.model.map_scheduler.step_size == 20


def test_a_key_on_the_command_line_wins_over_the_recipe(compose_train) -> None:
    cfg = compose_train(
        "data=paired", "data.crops.patch_size=96", "trainer.max_epochs=3", tiny=False
    )
    assert cfg.data.crops.patch_size == 96 and cfg.trainer.max_epochs == 3


@pytest.mark.parametrize("task", list(PAPER_EPOCHS))
def test_paper_recipes_iterate_per_epoch_as_the_authors(
    compose_train, folder: Path, task: str
) -> None:
    repeat, images, per_epoch, total = PAPER_EPOCHS[task]
    assert per_epoch == images * repeat // 3 and total == 51 * per_epoch  # docs/configs.md's table
    cfg = compose_train(f"experiment=paper_{task}", tiny=False)
    # `in` is False for a mandatory (???) value: look at the node's keys.
    keys = set(cfg.data.keys())
    dirs = [k for k in ("train_dir", "train_degraded_dir", "train_target_dir") if k in keys]
    cfg = compose_train(
        f"experiment=paper_{task}", *(f"data.{k}={folder}" for k in dirs), tiny=False
    )
    assert cfg.data.repeat == repeat and cfg.data.samples_per_epoch is None
    datamodule = instantiate(cfg.data, _convert_="partial")
    assert len(datamodule.train_dataloader()) == IMAGES * repeat // 3
    # The x0.1 drops at epochs 20 and 40: epoch-interval StepLR, 51 epochs.
    assert cfg.model.scheduler_interval == "epoch" and cfg.trainer.max_epochs == 51
    assert cfg.model.map_scheduler.step_size == 20 == cfg.model.potential_scheduler.step_size


def test_run_prints_saves_and_logs_its_recipe_block(
    compose_train, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = compose_train(
        *[t for t in TINY if not t.startswith(("recipe=", "data."))],
        "task=derain",
        "data=paired",
        f"data.train_degraded_dir={folder}",
        f"data.train_target_dir={folder}",
        "data.batch_size=4",
        "data.crops.patch_size=32",
        "data.loader.num_workers=0",
        "trainer.max_steps=4",
        tiny=False,
    )
    run(cfg)
    block = (tmp_path / "recipe.txt").read_text()
    assert block.strip() in capsys.readouterr().out
    lines = block.splitlines()
    assert lines[0] == "Recipe: standard (task derain, data paired, model rcot_tiny)"
    # 200 pairs x 360 = 72,000 crops = 18,000 batches of 4; max_steps=4 stops after 2.
    assert "2 (trainer.max_steps=4, n_critic + 1 = 2 steps each) of 51 epochs x 18,000" in block
    assert "72,000 crops = 360 x 200 training images (data.repeat)" in block
    assert "batch      : 4 per device, 4 global (1 device)" in block
    assert "patch      : 32 x 32, precision 32-true" in block
    assert "map T      : RMSprop lr 5e-05, StepLR x0.1 every 20 epochs" in block
    assert "supervised l1 x10000" in block and "parameters : map T 70.7 K" in block
    hparams = (tmp_path / "csv" / "version_0" / "hparams.yaml").read_text()
    assert "recipe/total_iterations: 2" in hparams and "recipe/name: standard" in hparams


def test_describe_shows_an_uncapped_recipe() -> None:
    facts = RecipeFacts(
        name="paper_derain",
        task="derain",
        data="paired",
        model="rcot",
        total_iterations=1_224_000,
        epochs=51,
        iterations_per_epoch=24_000,
        max_steps=-1,
        epoch="72,000 crops = 360 x 200 training images (data.repeat)",
        batch_per_device=3,
        batch_global=3,
        devices=1,
        patch_size=128,
        precision="32-true",
        map_optimizer="RMSprop lr 5e-05, StepLR x0.1 every 20",
        potential_optimizer="RMSprop lr 0.0001, StepLR x0.1 every 20",
        n_critic=1,
        loss="transport rms x1",
        map_parameters=44_290_000,
        potential_parameters=9_410_000,
    )
    text = describe(facts)
    assert "iterations : 1,224,000 = 51 epochs x 24,000" in text
    assert "StepLR x0.1 every 20 epochs" in text
    assert "parameters : map T 44.29 M, potential 9.41 M" in text


@pytest.mark.parametrize(
    ("cfg", "overrides", "message"),
    [
        ({"trainer": {"max_steps": 1}, "model": {"n_critic": 1}}, [], "max_steps=1 is less"),
        ({"trainer": {"max_steps": 2}, "model": {"n_critic": 2}}, [], "n_critic \\+ 1 = 3"),
        ({"trainer": {"max_steps": 5}, "model": {"n_critic": 1}}, [], "max_steps=4 \\(2 it"),
        (
            {"data": {"_target_": "x.UnpairedDataModule"}},
            ["model.objective.supervised_weight=10"],
            "no effect with unpaired data",
        ),
        ({"data": {"samples_per_epoch": 800}}, ["data.repeat=10"], "samples_per_epoch=null"),
    ],
)
def test_meaningless_settings_are_refused(cfg: dict, overrides: list, message: str) -> None:
    with pytest.raises(RCOTError, match=message):
        check_recipe(cfg, overrides)


def test_settings_that_mean_something_pass() -> None:
    check_recipe({"trainer": {"max_steps": 2}, "model": {"n_critic": 1}})
    paired = {"data": {"_target_": "x.PairedFolderDataModule"}}
    check_recipe(paired, ["model.objective.supervised_weight=1"])
    check_recipe({"data": {"samples_per_epoch": None}}, ["data.repeat=10"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["trainer.max_steps=1"],
            "rcot-train: error: trainer.max_steps=1 is less than one iteration: an iteration is "
            "model.n_critic + 1 = 2 optimizer steps; use trainer.max_steps=2*N for N iterations",
        ),
        (
            ["trainer.max_steps=5"],
            "rcot-train: error: trainer.max_steps=5 is not a whole number of iterations: an "
            "iteration is model.n_critic + 1 = 2 optimizer steps; use trainer.max_steps=4 (2 "
            "iterations) or trainer.max_steps=6 (3 iterations)",
        ),
        (
            ["data=unpaired", "data.clean_dir=FOLDER", "model.objective.supervised_weight=100"],
            "rcot-train: error: model.objective.supervised_weight=100 has no effect with unpaired "
            "data (data=unpaired has no targets, so the supervised term never applies); use "
            "data=paired, or data=semipaired with data.paired_fraction, to train with targets "
            "(an Optuna sweep on unpaired data: hparams_search=optuna_unpaired)",
        ),
        (
            ["data=paired", "data.train_degraded_dir=FOLDER", "data.train_target_dir=FOLDER"],
            "rcot-train: error: 200 images are smaller than data.crops.patch_size=256",
        ),
    ],
    ids=["max_steps", "odd-max_steps", "unpaired-supervised", "patch"],
)
@pytest.mark.integration
def test_meaningless_settings_end_in_one_line(
    args: list[str], expected: str, folder: Path, tmp_path: Path
) -> None:
    args = [a.replace("FOLDER", str(folder)) for a in args]
    if args[0] == "data=paired":
        args.append("data.crops.patch_size=256")
    proc = run_cli(
        "rcot_lightning.train", *args, "data.loader.num_workers=0", cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_collect_counts_the_global_batch_over_devices() -> None:
    """Four processes: the epoch is the same crops, split four ways (global batch 4 x 3)."""
    from types import SimpleNamespace

    import torch

    from rcot_lightning.callbacks.recipe_report import collect

    class Crops(list):  # 10 images x 6 crops
        source = range(10)

    datamodule = SimpleNamespace(
        datasets={"train": Crops(range(60))}, samples_per_epoch=None, repeat=6, batch_size=3
    )
    trainer = SimpleNamespace(
        num_training_batches=5,  # 60 crops / (3 x 4 ranks)
        max_epochs=51,
        max_steps=-1,
        world_size=4,
        precision="bf16-mixed",
        datamodule=datamodule,
    )
    module = SimpleNamespace(transport_map=torch.nn.Linear(2, 2), potential=torch.nn.Linear(3, 1))
    cfg = {
        "task": {"name": "denoise"},
        "data": {
            "_target_": "x.SyntheticDataModule",
            "batch_size": 3,
            "crops": {"patch_size": 128},
        },
        "model": {"n_critic": 2, "objective": {"supervised_weight": 0.0}},
    }
    facts = collect(trainer, module, cfg, {"recipe": "standard", "data": "synthetic"})
    assert facts.batch_global == 12 and facts.devices == 4
    assert facts.total_iterations == 51 * 5 and facts.n_critic == 2
    assert facts.map_parameters == 6 and facts.potential_parameters == 4
    assert "batch      : 3 per device, 12 global (4 devices)" in describe(facts)
    assert "precision bf16-mixed" in describe(facts)
    assert facts.epoch == "60 crops = 6 x 10 training images (data.repeat)"
    # Only the terms that act: a supervised weight of 0 is left out.
    assert facts.loss == "transport rms x1, Fourier x1, gradient penalty x10"
    # Unpaired data has no targets: a supervised weight does nothing, so it is not listed.
    cfg["model"]["objective"]["supervised_weight"] = 1e4
    cfg["data"]["_target_"] = "rcot_lightning.data.datamodules.UnpairedDataModule"
    facts = collect(trainer, module, cfg, {"recipe": "standard", "data": "unpaired"})
    assert "supervised" not in facts.loss


def test_a_run_without_the_potential_counts_one_step_per_iteration(compose_train) -> None:
    """best_cpu_denoise: potential_weight 0, so max_steps=6000 is 6,000 iterations, not 3,000."""
    from types import SimpleNamespace

    from rcot_lightning.callbacks.recipe_report import collect, steps_per_iteration

    cfg = compose_train("experiment=best_cpu_denoise", tiny=False)
    model = {"n_critic": 1, "objective": {"potential_weight": 0.0}}
    assert steps_per_iteration(model) == 1
    assert cfg.model.objective.potential_weight == 0 and cfg.trainer.max_steps == 6000
    datamodule = SimpleNamespace(datasets={}, samples_per_epoch=800, batch_size=8)
    trainer = SimpleNamespace(
        num_training_batches=100,
        max_epochs=-1,
        max_steps=6000,
        world_size=1,
        datamodule=datamodule,
        precision="32-true",
    )
    facts = collect(trainer, None, {"model": model, "data": {"batch_size": 8}}, {})
    assert facts.total_iterations == 6000 and not facts.potential_trained
    text = describe(facts)
    assert "6,000 (trainer.max_steps=6000, 1 step each: the potential is off)" in text
    assert "potential  : off (model.objective.potential_weight=0" in text
    assert "gradient penalty" not in text  # no potential, no penalty
    with pytest.raises(RCOTError, match="an iteration is one map step"):
        check_recipe({"trainer": {"max_steps": 0}, "model": model})
