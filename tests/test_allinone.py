"""All-in-one training and multi-set evaluation through the real configs.

``experiment=allinone`` trains a few iterations on generated BSD400+WED, Rain100L and RESIDE
trees (one per task), ``experiment=allinone_samples`` on the embedded photos; ``rcot-eval``
then prints a table per task and, with ``sigmas``, every noisy set at each level.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from rcot_lightning.cli.eval import evaluate
from rcot_lightning.cli.train import run
from rcot_lightning.contract import DEGRADATION, SAMPLE_KEY, DegradationId
from rcot_lightning.data.allinone import AllInOneDataModule
from rcot_lightning.data.datamodules import SamplesDataModule
from rcot_lightning.data.degradations import GaussianNoise, Haze, RainStreaks
from rcot_lightning.errors import RCOTError
from rcot_lightning.nets import TwoPassMap
from tests.test_presets import bsd400_wed, rain100l, reside_ots

SHORT = ("data.loader.num_workers=0", "trainer.max_steps=4", "trainer.limit_val_batches=2")


def _roots(tmp_path: Path) -> tuple[str, ...]:
    return (
        f"data.tasks.noise.folders.root={bsd400_wed(tmp_path / 'denoise')}",
        f"data.tasks.rain.folders.root={rain100l(tmp_path / 'rain')}",
        f"data.tasks.haze.folders.root={reside_ots(tmp_path / 'reside')}",
    )


def test_allinone_trains_on_the_three_presets(compose_train, tmp_path: Path) -> None:
    cfg = compose_train("experiment=allinone", *_roots(tmp_path), *SHORT, "data.batch_size=6")
    assert cfg.model.transport_map.conditioning == "decoder"
    result = run(cfg)
    assert result.trainer.state.finished and result.model.iteration == 2
    assert isinstance(result.model.transport_map, TwoPassMap)
    assert result.model.transport_map.conditioning == "decoder"
    dm = result.datamodule
    ids = torch.cat([batch[DEGRADATION] for batch in dm.train_dataloader()])
    assert set(ids.tolist()) == {DegradationId.NOISE, DegradationId.RAIN, DegradationId.HAZE}
    # each row's Fourier norm follows its own id: l2 for noise rows, l1 for rain and haze
    exponents = result.model.objective.exponents(ids, len(ids))
    assert torch.equal(exponents, torch.where(ids == DegradationId.NOISE, 2, 1))


def test_a_user_folder_task_joins_and_weights_shift_the_mix(compose_train, tmp_path: Path) -> None:
    from tests.test_presets import gopro

    cfg = compose_train(
        "experiment=allinone",
        *_roots(tmp_path),
        "+data@data.tasks.deblur=gopro",
        f"data.tasks.deblur.folders.root={gopro(tmp_path / 'gopro')}",
        "data.weights={noise: 0, rain: 0, haze: 1, deblur: 3}",
        "data.samples_per_epoch=400",
    )
    dm = instantiate(cfg.data, _convert_="partial")
    dm.setup("fit")
    data = dm.datasets["train"]
    counts = Counter(int(data[(i, 0)][DEGRADATION]) for i in range(400))
    assert set(counts) == {DegradationId.HAZE, DegradationId.BLUR}
    assert 2.3 < counts[DegradationId.BLUR] / counts[DegradationId.HAZE] < 3.9
    keys = [int(data[(i, 0)][SAMPLE_KEY]) for i in range(50)]
    assert len(set(keys)) == 50  # a task's images are not repeated with the same crop


def test_mixture_plan_is_balanced_seeded_and_the_same_on_every_rank() -> None:
    def make() -> AllInOneDataModule:
        return AllInOneDataModule(
            {
                d: SamplesDataModule(degradation=deg)
                for d, deg in (
                    ("noise", GaussianNoise(25)),
                    ("rain", RainStreaks()),
                    ("haze", Haze()),
                )
            },
            batch_size=4,
            crops={"patch_size": 32},
            samples_per_epoch=300,
        )

    first, second = make(), make()
    first.setup("fit")
    second.setup("fit")
    plan = first.datasets["train"].plan(0)
    assert plan == second.datasets["train"].plan(0) != first.datasets["train"].plan(1)
    shares = Counter(plan[0])
    assert all(70 < shares[t] < 130 for t in range(3))
    row = first.datasets["train"][(7, 0)]
    assert torch.equal(row["degraded"], second.datasets["train"][(7, 0)]["degraded"])


def test_unknown_weight_and_non_module_task_are_named() -> None:
    with pytest.raises(RCOTError, match=r"data.weights names unknown tasks \['snow'\]"):
        AllInOneDataModule({"noise": SamplesDataModule()}, weights={"snow": 1.0})
    with pytest.raises(RCOTError, match=r"data.tasks.noise must be a data module"):
        AllInOneDataModule({"noise": "/data/bsd"})  # type: ignore[dict-item]


@pytest.fixture(scope="module")
def allinone_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of 2 iterations of experiment=allinone_samples with the tiny model."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from tests.conftest import CONFIG_MODULE, TINY

    out = tmp_path_factory.mktemp("allinone")
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["experiment=allinone_samples", *TINY, *SHORT],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.paths.output_dir = str(out)
    HydraConfig().set_config(cfg)
    result = run(cfg)
    GlobalHydra.instance().clear()
    assert result.model.transport_map.conditioning == "decoder"
    return out / "checkpoints" / "last.ckpt"


def test_eval_prints_one_table_per_task(
    allinone_checkpoint: Path, compose_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = compose_config(
        "eval",
        f"ckpt_path={allinone_checkpoint}",
        "data=samples_allinone",
        "split=val",
        "data.crops.val_crop_size=64",
    )
    mean = evaluate(cfg)
    out = capsys.readouterr().out
    assert "task haze" in out and "task noise" in out and "task rain" in out
    rain_line = next(line for line in out.splitlines() if line.startswith("rain "))
    assert rain_line.split()[1] == "2" and rain_line.endswith("RGB")  # the authors' derain
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    means = [r for r in rows if r["name"] == "mean"]
    assert [r["set"] for r in means] == ["noise", "rain", "haze"]
    assert float(mean) == pytest.approx(sum(float(r["psnr"]) for r in means) / 3)
    assert (tmp_path / "restored" / "rain" / "chelsea.png").is_file()


def test_eval_uses_each_sets_own_conventions(
    allinone_checkpoint: Path, compose_config, capsys: pytest.CaptureFixture[str]
) -> None:
    # the super-resolution convention where a task sets it
    cfg = compose_config(
        "eval",
        f"ckpt_path={allinone_checkpoint}",
        "data=samples_allinone",
        "split=val",
        "data.crops.val_crop_size=64",
        "data.tasks.rain.metric.y_channel=true",
        "data.tasks.rain.metric.crop_border=4",
        "save_images=false",
    )
    evaluate(cfg)
    out = capsys.readouterr().out
    assert next(line for line in out.splitlines() if line.startswith("rain ")).endswith("Y, crop 4")


def test_eval_noise_levels_stay_in_their_task_table(
    allinone_checkpoint: Path, compose_config, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = compose_config(
        "eval",
        f"ckpt_path={allinone_checkpoint}",
        "data=samples_allinone",
        "split=val",
        "data.crops.val_crop_size=64",
        "sigmas=[15,50]",
    )
    evaluate(cfg)
    out = capsys.readouterr().out
    titles = [line for line in out.splitlines() if line.startswith("task ")]
    assert titles == ["task noise", "task rain", "task haze"]
    labels = [line.split()[0] for line in out.splitlines() if line.startswith(("noise", "rain "))]
    assert labels == ["noise@sigma15", "noise@sigma50", "rain"]


def test_eval_scores_every_noise_level_in_one_table(
    allinone_checkpoint: Path, compose_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = compose_config(
        "eval",
        f"ckpt_path={allinone_checkpoint}",
        "split=val",
        "data.crops.val_crop_size=64",
        "sigmas=[15,50]",
    )
    evaluate(cfg)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if "@sigma" in line}
    assert sorted(rows) == ["val@sigma15", "val@sigma50"]
    # the input gets worse with more noise
    assert float(rows["val@sigma15"][2]) > float(rows["val@sigma50"][2]) + 5


def test_eval_several_named_test_sets(
    allinone_checkpoint: Path, compose_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = bsd400_wed(tmp_path / "denoise")
    cfg = compose_config(
        "eval",
        f"ckpt_path={allinone_checkpoint}",
        "data=bsd400_wed",
        f"data.folders.root={root}",
        "data.loader.num_workers=0",
        "sigmas=[15,25,50]",
    )
    evaluate(cfg)
    out = capsys.readouterr().out
    labels = [line.split()[0] for line in out.splitlines() if "@sigma" in line]
    assert labels == [
        f"{s}@sigma{n}" for s in ("cbsd68", "kodak24", "mcmaster") for n in (15, 25, 50)
    ]
    assert out.count("test sets") == 1  # one table
