"""DataModules: the batch contract, sharding across simulated ranks, workers, configs, errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from rcot_lightning.contract import (
    CLEAN,
    DEGRADATION,
    DEGRADED,
    NAME,
    PAIRED,
    SAMPLE_KEY,
    TARGET,
)
from rcot_lightning.data.datamodules import (
    PairedFolderDataModule,
    RestorationDataModule,
    SamplesDataModule,
    SemiPairedDataModule,
    SyntheticDataModule,
    UnpairedDataModule,
)
from rcot_lightning.data.degradations import GaussianNoise, Haze, OneOf
from rcot_lightning.data.sampling import ShardedSampler
from rcot_lightning.data.sources import FolderPairs
from rcot_lightning.errors import RCOTError

CONF = Path(__file__).resolve().parents[1] / "src" / "rcot_lightning" / "conf"


def _images(folder: Path, n: int, size: tuple[int, int] = (40, 48), offset: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i + offset)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _on_rank(dm: RestorationDataModule, rank: int, world_size: int) -> RestorationDataModule:
    """What the trainer tells a DataModule under DDP, without starting processes."""
    dm.trainer = SimpleNamespace(global_rank=rank, world_size=world_size, accelerator=None)  # type: ignore[assignment]
    return dm


def _small_samples(**kwargs: Any) -> SamplesDataModule:
    options: dict[str, Any] = {
        "batch_size": 4,
        "crops": {"patch_size": 32},
        "samples_per_epoch": 16,
    }
    return SamplesDataModule(**(options | kwargs))


def _check_train_batch(batch: dict[str, Any], b: int, patch: int) -> None:
    assert set(batch) == {DEGRADED, CLEAN, TARGET, PAIRED, DEGRADATION, SAMPLE_KEY}
    for key in (DEGRADED, CLEAN, TARGET):
        assert batch[key].shape == (b, 3, patch, patch) and batch[key].dtype == torch.float32
        assert float(batch[key].min()) >= 0.0 and float(batch[key].max()) <= 1.0
    assert batch[PAIRED].shape == (b,) and batch[PAIRED].dtype == torch.bool
    assert batch[DEGRADATION].shape == (b,) and batch[DEGRADATION].dtype == torch.long


def test_samples_batches_follow_the_contract() -> None:
    dm = _small_samples()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    _check_train_batch(batch, 4, 32)
    assert batch[PAIRED].all() and torch.equal(batch[CLEAN], batch[TARGET])
    assert batch[DEGRADATION].tolist() == [0] * 4
    noise = (batch[DEGRADED] - batch[TARGET]).std() * 255
    assert 20 < float(noise) < 27  # sigma 25, slightly less where clipped
    val = list(dm.val_dataloader())
    assert [b[NAME] for b in val] == [["chelsea"], ["coffee"]]
    assert set(val[0]) == {DEGRADED, TARGET, NAME} and val[0][DEGRADED].shape == (1, 3, 256, 256)
    dm.setup("test")
    assert next(iter(dm.test_dataloader()))[DEGRADED].shape == (1, 3, 300, 451)  # full size
    dm.setup("predict")
    assert set(next(iter(dm.predict_dataloader()))) == {DEGRADED, NAME}


def test_validation_is_identical_across_epochs_ranks_and_instances() -> None:
    a = _on_rank(_small_samples(crops={"patch_size": 32, "val_crop_size": 64}), 0, 2)
    b = _on_rank(_small_samples(crops={"patch_size": 32, "val_crop_size": 64}), 1, 2)
    va = [x[DEGRADED] for x in a.val_dataloader()]
    vb = [x[DEGRADED] for x in b.val_dataloader()]
    assert all(torch.equal(x, y) for x, y in zip(va, vb, strict=True))
    assert all(torch.equal(x, y[DEGRADED]) for x, y in zip(va, a.val_dataloader(), strict=True))


def test_two_ranks_get_disjoint_deterministic_shards() -> None:
    shards = []
    for rank in (0, 1):
        loader = _on_rank(_small_samples(), rank, 2).train_dataloader()
        assert isinstance(loader.sampler, ShardedSampler)
        keys = [key.item for key in loader.sampler]
        again = [key.item for key in _on_rank(_small_samples(), rank, 2).train_dataloader().sampler]
        assert keys == again and len(keys) == 8
        shards.append((set(keys), next(iter(loader))[DEGRADED]))
    assert not shards[0][0] & shards[1][0] and shards[0][0] | shards[1][0] == set(range(16))
    assert not torch.equal(shards[0][1], shards[1][1])


def test_epochs_differ_and_workers_do_not_change_the_data() -> None:
    dm = _small_samples()
    loader = dm.train_dataloader()
    first = next(iter(loader))[DEGRADED]
    loader.sampler.set_epoch(1)
    assert not torch.equal(first, next(iter(loader))[DEGRADED])
    loader.sampler.set_epoch(0)
    with_workers = _small_samples(loader={"num_workers": 1}).train_dataloader()
    assert with_workers.persistent_workers and not with_workers.pin_memory
    assert torch.equal(first, next(iter(with_workers))[DEGRADED])


def test_too_few_samples_for_a_per_device_batch() -> None:
    dm = _on_rank(_small_samples(samples_per_epoch=6), 0, 2)
    with pytest.raises(RCOTError, match=r"each of 2 ranks 3, fewer than data.batch_size=4"):
        dm.train_dataloader()


def test_paired_folders_module(tmp_path: Path) -> None:
    deg, tgt = _images(tmp_path / "deg", 4), _images(tmp_path / "tgt", 4, offset=10)
    _images(tmp_path / "val_deg", 2, size=(30, 36))
    _images(tmp_path / "val_tgt", 2, size=(30, 36))
    dm = PairedFolderDataModule(
        str(deg),
        str(tgt),
        batch_size=2,
        crops={"patch_size": 16},
        val_sets={"degraded": str(tmp_path / "val_deg"), "target": str(tmp_path / "val_tgt")},
        folders={"degradation_id": "rain"},
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    _check_train_batch(batch, 2, 16)
    assert batch[DEGRADATION].tolist() == [1, 1]
    val = next(iter(dm.val_dataloader()))
    assert val[DEGRADED].shape == (1, 3, 30, 36) and val[NAME] == ["0"]
    with pytest.raises(RCOTError, match=r"no test data configured; set data\.test_sets"):
        dm.test_dataloader()
    with pytest.raises(RCOTError, match=r"set data\.predict_dir"):
        dm.predict_dataloader()


def test_eval_folder_of_clean_images_needs_a_degradation(tmp_path: Path) -> None:
    folder = _images(tmp_path / "x", 2)
    dm = PairedFolderDataModule(str(folder), str(folder), val_sets=str(folder))
    with pytest.raises(RCOTError, match=r"data.val_sets.target holds clean images, so data.degra"):
        dm.setup("validate")
    with pytest.raises(RCOTError, match=r"data.val_sets.degraded is set but data.val_sets.target"):
        PairedFolderDataModule(str(folder), str(folder), val_sets={"degraded": str(folder)})
    with pytest.raises(RCOTError, match=r"data.test_sets.kodak.degraded is set but data.test_s"):
        PairedFolderDataModule(str(folder), str(folder), test_sets={"kodak": {"degraded": "x"}})


def test_eval_sets_spellings_are_one_set_or_named_sets(tmp_path: Path) -> None:
    """A bare folder or one degraded/target pair is a set of one named after the stage; a
    mapping of names is several sets; a name set to None is left out."""
    folder = str(_images(tmp_path / "x", 2))
    one = PairedFolderDataModule(
        folder,
        folder,
        degradation=Haze(),
        val_sets={"degraded": folder, "target": folder},
        test_sets=[folder],
    )
    assert [s.name for s in one.eval_sets("val")] == ["val"]
    assert [s.name for s in one.eval_sets("test")] == ["test"]
    assert isinstance(one.eval_sets("val")[0].source, FolderPairs)
    named = PairedFolderDataModule(
        folder,
        folder,
        degradation=Haze(),
        test_sets={"a": folder, "b": {"target": folder, "degraded": folder}, "c": None},
    )
    assert [s.name for s in named.eval_sets("test")] == ["a", "b"]
    assert named.eval_sets("val") == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("val_target_dir", "data.val_sets"),
        ("val_degraded_dir", "data.val_sets"),
        ("test_target_dir", "data.test_sets"),
        ("test_degraded_dir", "data.test_sets"),
    ],
)
def test_an_old_eval_folder_key_names_its_new_spelling(old: str, new: str) -> None:
    with pytest.raises(RCOTError, match=rf"^data\.{old} was removed; use {new} \(") as err:
        PairedFolderDataModule("a", "b", **{old: "x"})
    assert "\n" not in str(err.value)


def test_synthetic_module_degrades_train_and_val_on_the_fly(tmp_path: Path) -> None:
    folder = _images(tmp_path / "clean", 3)
    dm = SyntheticDataModule(
        str(folder), Haze(), batch_size=3, crops={"patch_size": 24}, val_sets=str(folder)
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch[DEGRADATION].tolist() == [2, 2, 2] and batch[PAIRED].all()
    val = next(iter(dm.val_dataloader()))
    assert val[DEGRADED].shape == val[TARGET].shape == (1, 3, 40, 48)
    assert not torch.equal(val[DEGRADED], val[TARGET])
    missing = SyntheticDataModule(str(tmp_path / "nope"))
    with pytest.raises(RCOTError, match=r"data.train_dir: directory .*nope does not exist"):
        missing.setup("fit")


def test_all_in_one_batches_carry_per_row_ids(tmp_path: Path) -> None:
    folder = _images(tmp_path / "clean", 2)
    mix = OneOf([GaussianNoise(25), Haze()])
    dm = SyntheticDataModule(
        str(folder), mix, batch_size=16, crops={"patch_size": 16}, samples_per_epoch=16
    )
    ids = next(iter(dm.train_dataloader()))[DEGRADATION]
    assert set(ids.tolist()) == {0, 2}


def test_unpaired_module_splits_one_folder_into_disjoint_halves(tmp_path: Path) -> None:
    folder = _images(tmp_path / "clean", 7)
    dm = UnpairedDataModule(
        str(folder), degradation=GaussianNoise(25), batch_size=3, crops={"patch_size": 16}, seed=1
    )
    dm.setup("fit")
    assert dm.split is not None
    degraded_half, clean_half = dm.split
    assert len(degraded_half) == 3 and len(clean_half) == 4
    assert set(degraded_half).isdisjoint(clean_half)
    assert set(degraded_half) | set(clean_half) == {str(i) for i in range(7)}
    batch = next(iter(dm.train_dataloader()))
    _check_train_batch(batch, 3, 16)
    assert not batch[PAIRED].any() and float(batch[TARGET].abs().sum()) == 0
    with pytest.raises(
        RCOTError, match=r"data\.clean_dir holds clean images, so data\.degradation"
    ):
        UnpairedDataModule(str(folder)).setup("fit")


def test_unpaired_module_with_two_folders(tmp_path: Path) -> None:
    dm = UnpairedDataModule(
        str(_images(tmp_path / "clean", 3)),
        degraded_dir=str(_images(tmp_path / "hazy", 2, offset=5)),
        folders={"degradation_id": "haze"},
        batch_size=2,
        crops={"patch_size": 16},
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch[DEGRADATION].tolist() == [2, 2] and not batch[PAIRED].any()


def test_semi_paired_module_mask(tmp_path: Path) -> None:
    folder = _images(tmp_path / "clean", 8)
    dm = SemiPairedDataModule(
        str(folder),
        paired_fraction=0.5,
        degradation=GaussianNoise(15),
        batch_size=8,
        crops={"patch_size": 16},
    )
    batch = next(iter(dm.train_dataloader()))
    _check_train_batch(batch, 8, 16)
    paired = batch[PAIRED]
    assert int(paired.sum()) == 4
    assert torch.equal(batch[CLEAN][paired], batch[TARGET][paired])
    assert float(batch[TARGET][~paired].abs().sum()) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"data.batch_size must be a positive integer, got 0"),
        ({"crops": {"patch_size": -1}}, r"^data.crops.patch_size must be a positive integer"),
        ({"crops": {"val_crop_size": 0}}, r"^data.crops.val_crop_size must be a positive integ"),
        ({"crops": {"augment": 1}}, r"^data.crops.augment must be true or false, got 1"),
        ({"loader": {"num_workers": -1}}, r"^data.loader.num_workers must be an integer >= 0 or"),
        ({"loader": {"val_batch_size": 0}}, r"^data.loader.val_batch_size must be a positive"),
        ({"loader": {"pin_memory": "yes"}}, r"^data.loader.pin_memory must be true or false"),
        ({"patch_size": 32}, r"^data.patch_size was removed; use data.crops.patch_size instead$"),
        ({"num_workers": 2}, r"^data.num_workers was removed; use data.loader.num_workers inst"),
        ({"nonsense": 2}, r"^data.nonsense is not an option of this data module$"),
        ({"samples_per_epoch": 0}, r"data.samples_per_epoch must be a positive integer"),
        ({"degradation": {"sigma": 25}}, r"data.degradation must be a degradation node"),
        (
            {"folders": {"degradation_id": "smog"}},
            r"data.folders.degradation_id: unknown degradation 'smog'",
        ),
        ({"folders": {"scale": 0}}, r"^data.folders.scale must be a positive integer or null"),
        ({"folders": {"recursive": "yes"}}, r"^data.folders.recursive must be true or false"),
        ({"folders": {"pairing": [{"degraded": "x"}]}}, r"^data.folders.pairing\[0\] must have"),
        ({"folders": {"roots": "x"}}, r"^data.folders has no field roots; its fields: root, "),
        ({"folders": "x"}, r"^data.folders must be a FolderSpec or a mapping of root, layout"),
        ({"root": "/data"}, r"^data.root was removed; use data.folders.root instead$"),
        ({"many_to_one": True}, r"^data.many_to_one was removed; use data.folders.many_to_one"),
        ({"val_images": ["rocket"]}, r"data.val_images shares rocket with data.train_images"),
        ({"train_images": ["lena"]}, r"data.train_images: unknown sample photos \['lena'\]"),
    ],
)
def test_invalid_options_name_their_key(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RCOTError, match=message):
        SamplesDataModule(**kwargs).setup("fit")


def _config(name: str, **values: Any) -> Any:
    cfg = OmegaConf.create({"data": OmegaConf.load(CONF / "data" / f"{name}.yaml")})
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg


@pytest.mark.parametrize(
    ("name", "cls", "paths"),
    [
        ("samples", SamplesDataModule, {}),
        ("paired", PairedFolderDataModule, {"train_degraded_dir": "d", "train_target_dir": "t"}),
        ("synthetic", SyntheticDataModule, {"train_dir": "c"}),
        ("unpaired", UnpairedDataModule, {"clean_dir": "c"}),
        ("semipaired", SemiPairedDataModule, {"train_target_dir": "t"}),
    ],
)
def test_hydra_configs_instantiate(name: str, cls: type, paths: dict[str, str]) -> None:
    cfg = _config(name, **{f"data.{k}": v for k, v in paths.items()})
    for key in ("batch_size", "crops", "loader", "folders", "degradation", "seed"):
        assert key in cfg.data
    dm = instantiate(cfg.data)
    assert type(dm) is cls and dm.batch_size == 8 and dm.patch_size == 128


def test_hydra_degradation_node_follows_the_task_and_can_be_overridden() -> None:
    cfg = _config("samples")
    cfg.task = OmegaConf.create(
        {"degradation_id": "haze", "degradation": {"_target_": f"{Haze.__module__}.Haze"}}
    )
    dm = instantiate(cfg.data)
    assert isinstance(dm.degradation, Haze) and int(dm.degradation_id) == 2
    mix = {
        "_target_": f"{OneOf.__module__}.OneOf",
        "degradations": [
            {"_target_": f"{GaussianNoise.__module__}.GaussianNoise", "sigma": [15, 50]},
            {"_target_": f"{Haze.__module__}.Haze"},
        ],
    }
    cfg = _config("samples", **{"data.degradation": mix})
    dm = instantiate(cfg.data)
    assert isinstance(dm.degradation, OneOf) and dm.degradation.degradations[0].sigma == (15, 50)


def test_missing_required_path_is_reported_by_hydra() -> None:
    with pytest.raises(Exception, match=r"Missing mandatory value: data\.train_degraded_dir"):
        instantiate(_config("paired").data)


class _ContractChecker(L.LightningModule):
    """Records what the trainer feeds it; a single weight so that there is something to fit."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, float]] = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        _check_train_batch(batch, 2, 16)
        self.seen.append((self.current_epoch, float(batch[DEGRADED].sum())))
        return (self.weight * batch[DEGRADED].mean()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_keeps_our_sampler_and_advances_its_epoch(tmp_path: Path) -> None:
    folder = _images(tmp_path / "clean", 4)
    dm = PairedFolderDataModule(str(folder), str(folder), batch_size=2, crops={"patch_size": 16})
    model = _ContractChecker()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)  # no validation data: the empty val loader is skipped
    assert isinstance(trainer.train_dataloader.sampler, ShardedSampler)
    assert [epoch for epoch, _ in model.seen] == [0, 0, 1, 1]
    assert {s for e, s in model.seen if e == 0}.isdisjoint({s for e, s in model.seen if e == 1})
