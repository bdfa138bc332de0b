"""LightningDataModules that yield the batch contract of :mod:`rcot_lightning.contract`.

* :class:`SamplesDataModule`: the embedded scikit-image photos (the default, offline);
* :class:`PairedFolderDataModule`: a degraded folder and a target folder;
* :class:`SyntheticDataModule`: a clean folder degraded on the fly;
* :class:`UnpairedDataModule`: degraded and clean images drawn independently;
* :class:`SemiPairedDataModule`: a seeded fraction of pairs keeps its targets.

Common behaviour (:class:`RestorationDataModule`):

* ``batch_size`` is **per device**: the global batch is ``batch_size * devices * num_nodes``.
* Training uses :class:`~rcot_lightning.data.sampling.ShardedSampler`: each rank reads a
  disjoint, deterministic shard, and every item's crop, flip and degradation are seeded by
  ``(seed, epoch, index)``, so runs are reproducible for any number of workers and ranks differ.
  Rank and world size are read from the trainer when the loader is built.
* Validation and test are full-size images (``val_batch_size`` 1 by default, sizes differ);
  their synthetic degradations are seeded per image name. Under DDP Lightning shards them
  with its DistributedSampler, which repeats a few images when their number does not divide
  by the world size (validate on one device for exact set averages).
* ``pin_memory`` defaults to on exactly when the trainer runs on a CUDA GPU; workers persist
  across epochs when ``num_workers > 0``.
* Validation / test data: ``val_sets`` / ``test_sets``, each a folder of targets (degraded on
  the fly by ``degradation``), a ``{degraded, target}`` pair of folders, or a mapping of set
  names to either (see :func:`eval_set_specs`); ``predict_dir`` holds images to restore (no
  targets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from rcot_lightning.contract import DegradationId
from rcot_lightning.data.datasets import (
    EvalDataset,
    PairedDataset,
    SemiPairedDataset,
    UnpairedDataset,
    derive_seed,
)
from rcot_lightning.data.degradations import Degradation, GaussianNoise, resolve_degradation_id
from rcot_lightning.data.samples import TRAIN_PHOTOS, VAL_PHOTOS, sample_images
from rcot_lightning.data.sampling import ShardedSampler
from rcot_lightning.data.sources import (
    DegradedOnly,
    FolderImages,
    FolderPairs,
    PairSource,
    Subset,
    Synthesized,
)
from rcot_lightning.data.specs import CropSpec, FolderSpec, LoaderSpec, refuse_options
from rcot_lightning.errors import RCOTError
from rcot_lightning.values import as_settings, positive_int

__all__ = [
    "PairedFolderDataModule",
    "RestorationDataModule",
    "SamplesDataModule",
    "SemiPairedDataModule",
    "SyntheticDataModule",
    "UnpairedDataModule",
    "auto_workers",
]


# The datasets each Lightning stage needs.
class EvalSet(NamedTuple):
    """A named evaluation set: its pairs and its metric conventions (``None``: the task's)."""

    name: str
    source: PairSource
    metric: Mapping[str, Any] | None = None


#: The keys of one evaluation set's spec.
_SET_KEYS = frozenset({"target", "degraded", "metric"})


def _one_set(item: Any, where: str) -> dict[str, Any]:
    """A set's spec ``{target, degraded?, metric?}`` from a folder or a mapping."""
    if isinstance(item, str | Path) or (
        isinstance(item, Sequence) and not isinstance(item, Mapping) and item
    ):
        return {"target": item}
    if isinstance(item, Mapping) and "target" not in item and "degraded" in item:
        raise RCOTError(
            f"{where}.degraded is set but {where}.target is not; evaluation needs ground truth: "
            "set it, or restore the images with data.predict_dir instead"
        )
    if not isinstance(item, Mapping) or "target" not in item or not set(item) <= _SET_KEYS:
        raise RCOTError(
            f"{where} must be a folder or a mapping with target and optionally degraded and "
            f"metric, got {item!r}"
        )
    return dict(item)


def eval_set_specs(spec: Any, stage: str) -> dict[str, tuple[dict[str, Any], str]]:
    """The sets ``data.{stage}_sets`` names: ``{name: (set spec, config key)}``.

    A bare folder (a path, glob or list of alternatives) or one ``{degraded, target}`` pair is
    a set of one, named after the stage; otherwise ``spec`` maps names to either form (a name
    mapped to ``None`` is left out).

    Example:
        >>> eval_set_specs("clean/", "val")
        {'val': ({'target': 'clean/'}, 'data.val_sets')}
        >>> sorted(eval_set_specs({"kodak": "Kodak24", "mcm": None}, "test"))
        ['kodak']
    """
    key = f"data.{stage}_sets"
    if spec is None:
        return {}
    if not isinstance(spec, Mapping) or (set(spec) & {"target", "degraded"}):
        return {stage: (_one_set(spec, key), key)}
    sets: dict[str, tuple[dict[str, Any], str]] = {}
    for name, item in spec.items():
        if item is None:  # a set left out: data.test_sets.mcmaster=null
            continue
        sets[str(name)] = (_one_set(item, f"{key}.{name}"), f"{key}.{name}")
    return sets


_NEEDS: dict[str | None, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("predict",),
    None: ("train", "val", "test", "predict"),
}


#: The most loader workers ``num_workers="auto"`` starts per device: crops and synthetic
#: degradations are light next to a training step.
MAX_AUTO_WORKERS = 4


def auto_workers(devices: int = 1) -> int:
    """Loader workers per device for ``num_workers="auto"``: at most :data:`MAX_AUTO_WORKERS`,
    and at most the CPUs this process may use, per device, less one for the training process
    (Lightning's suggestion; torch warns when a loader starts more workers than CPUs).

    Example:
        >>> 1 <= auto_workers(1) <= MAX_AUTO_WORKERS
        True
    """
    from lightning.fabric.utilities.data import suggested_max_num_workers

    return min(MAX_AUTO_WORKERS, suggested_max_num_workers(max(1, devices)))


class RestorationDataModule(L.LightningDataModule):
    """Loaders, sharding, seeding and pinning shared by all DataModules; subclasses build data.

    Args:
        degradation: synthesises degraded images from clean ones where a source has none.
        batch_size: training images **per device** (global = ``batch_size * devices *
            num_nodes``).
        samples_per_epoch: training items per epoch over all ranks (``None``: ``repeat`` per
            training image).
        repeat: with ``samples_per_epoch`` unset, an epoch draws ``repeat`` random crops of
            every training image (the reference's file lists repeat 5x for denoising, 360x for
            Rain100L, ...), so that epoch-based schedules mean what they mean there.
        seed: base seed of crops, flips, degradations and data splits.
        crops: training and validation crops, a :class:`~rcot_lightning.data.specs.CropSpec`
            or a mapping of its fields (``patch_size``, ``val_crop_size``, ``augment``).
        loader: how the loaders run, a :class:`~rcot_lightning.data.specs.LoaderSpec` or a
            mapping of its fields (``num_workers``: per device, ``"auto"``:
            :func:`auto_workers`; ``pin_memory``; ``val_batch_size``).
        folders: where the folders are and how their images are read, paired and tagged: a
            :class:`~rcot_lightning.data.specs.FolderSpec` or a mapping of its fields
            (``root``, ``layout``, ``pairing``, ``many_to_one``, ``recursive``, ``scale``,
            ``degradation_id``, ``skip_bad_images``).
        predict_dir: images to restore with ``trainer.predict``.
        val_sets, test_sets: evaluation data: a folder of targets (degraded on the fly), a
            pair ``{degraded: folder, target: folder}`` (both a set of one, named after the
            stage), or named sets ``{name: folder or {target: folder, degraded: folder or null,
            metric: {y_channel, crop_border} or null}}``; training validates and tests on all of
            them together, ``rcot-eval`` scores each one separately.
        metric: metric conventions of this data's evaluation sets (``None``: the task's).
        removed: options of earlier versions (``val_target_dir``, ...) raise an error that
            names their spelling today (:data:`~rcot_lightning.data.specs.RENAMED_OPTIONS`).

    Example:
        >>> dm = SamplesDataModule(batch_size=2, crops={"patch_size": 32}, samples_per_epoch=4)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
        >>> sorted(batch), tuple(batch["degraded"].shape)
        (['clean', 'degradation', 'degraded', 'paired', 'sample_key', 'target'], (2, 3, 32, 32))
    """

    def __init__(
        self,
        *,
        degradation: Degradation | None = None,
        batch_size: int = 8,
        samples_per_epoch: int | None = None,
        repeat: int = 1,
        seed: int = 0,
        crops: CropSpec | Mapping[str, Any] | None = None,
        loader: LoaderSpec | Mapping[str, Any] | None = None,
        folders: FolderSpec | Mapping[str, Any] | None = None,
        val_sets: Any = None,
        test_sets: Any = None,
        predict_dir: str | None = None,
        metric: Mapping[str, Any] | None = None,
        **removed: Any,
    ) -> None:
        super().__init__()
        refuse_options(removed)
        if degradation is not None and not isinstance(degradation, Degradation):
            raise RCOTError(
                "data.degradation must be a degradation node with a `_target_` such as "
                f"rcot_lightning.data.degradations.GaussianNoise, got {degradation!r}"
            )
        self.degradation = degradation
        self.batch_size = positive_int(batch_size, "data.batch_size", keyed=True)
        if samples_per_epoch is not None:
            positive_int(samples_per_epoch, "data.samples_per_epoch", keyed=True)
        self.samples_per_epoch = samples_per_epoch
        self.repeat = positive_int(repeat, "data.repeat", keyed=True)
        self.seed = int(seed)
        # The specs are checked as a whole; the module keeps their plain values (the all-in-one
        # module sets its tasks' crops).
        crop = as_settings(CropSpec, crops, "data.crops")
        self.patch_size, self.val_crop_size = crop.patch_size, crop.val_crop_size
        self.augment = crop.augment
        loading = as_settings(LoaderSpec, loader, "data.loader")
        self.num_workers, self.pin_memory = loading.num_workers, loading.pin_memory
        self.val_batch_size = loading.val_batch_size
        folder = as_settings(FolderSpec, folders, "data.folders")
        self.root, self.layout = folder.root, folder.layout
        self.rules = folder.rules
        self.many_to_one, self.recursive = folder.many_to_one, folder.recursive
        self.scale, self.skip_bad_images = folder.scale, folder.skip_bad_images
        default_id = DegradationId.OTHER if degradation is None else degradation.degradation_id
        self.degradation_id = resolve_degradation_id(
            folder.degradation_id, default_id, "data.folders.degradation_id"
        )
        self.predict_dir = predict_dir
        self.named_sets = {
            "val": eval_set_specs(val_sets, "val"),
            "test": eval_set_specs(test_sets, "test"),
        }
        self.metric = None if metric is None else dict(metric)
        self.datasets: dict[str, Dataset[Any]] = {}

    # -- what subclasses provide ---------------------------------------------------------------

    def build_train(self) -> Dataset[Any]:
        """The training dataset (rows with ``degraded``, ``clean``, ``target``, ``paired``...)."""
        raise NotImplementedError

    def eval_source(self, stage: str) -> PairSource | None:
        """A subclass's own evaluation pairs of ``stage``, named after it (``None``: none; the
        sets of ``{stage}_sets`` come in addition)."""
        return None

    def eval_sets(self, stage: str) -> list[EvalSet]:
        """The named evaluation sets of ``"val"`` or ``"test"``: the subclass's own
        (:meth:`eval_source`) and those of ``{stage}_sets``."""
        sets = []
        source = self.eval_source(stage)
        if source is not None:
            sets.append(EvalSet(stage, source, self.metric))
        for name, (spec, where) in self.named_sets[stage].items():
            source = self.pairs(
                spec.get("degraded"), spec["target"], f"{where}.degraded", f"{where}.target"
            )
            sets.append(EvalSet(name, source, spec.get("metric") or self.metric))
        return sets

    def predict_source(self) -> PairSource | None:
        """Images to restore: ``predict_dir`` (``None`` when unset)."""
        if self.predict_dir is None:
            return None
        return DegradedOnly(self.folder(self.predict_dir, "data.predict_dir"), self.degradation_id)

    # -- helpers for subclasses ------------------------------------------------------------------

    def epoch_length(self, images: int) -> int:
        """Training items per epoch for ``images`` training images (or pairs).

        Example:
            >>> RestorationDataModule(repeat=5).epoch_length(200)
            1000
            >>> RestorationDataModule(samples_per_epoch=64, repeat=5).epoch_length(200)
            64
        """
        if self.samples_per_epoch is not None:
            return self.samples_per_epoch
        return self.repeat * images

    def folder(self, directory: Any, key: str) -> FolderImages:
        """The images a folder spec names, under ``root`` when it is set."""
        return FolderImages(
            directory,
            key,
            skip_bad_images=self.skip_bad_images,
            recursive=self.recursive,
            root=self.root,
            layout=self.layout,
        )

    def pairs(self, degraded: Any, target: Any, degraded_key: str, target_key: str) -> PairSource:
        """Folder pairs matched by the pairing rules, or the ``target`` images degraded on the
        fly when ``degraded`` is ``None``; the keys name the folders in errors."""
        target_images = self.folder(target, target_key)
        if degraded is None:
            return Synthesized(target_images, self.require_degradation(target_key))
        return FolderPairs(
            self.folder(degraded, degraded_key),
            target_images,
            self.degradation_id,
            rules=self.rules,
            many_to_one=self.many_to_one,
            scale=self.scale,
        )

    def require_degradation(self, key: str) -> Degradation:
        if self.degradation is None:
            raise RCOTError(
                f"{key} holds clean images, so data.degradation must say how to degrade them; "
                "set it to a node such as {_target_: rcot_lightning.data.degradations."
                "GaussianNoise, sigma: 25}"
            )
        return self.degradation

    # -- Lightning hooks -------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets a stage needs (cheap: file headers only), on every rank."""
        for name in _NEEDS[stage]:
            self._get(name)

    def _get(self, name: str) -> Dataset[Any] | None:
        """The ``train``/``val``/``test``/``predict`` dataset, built once; ``None`` if unset."""
        if name not in self.datasets:
            dataset: Dataset[Any] | None
            if name == "train":
                dataset = self.build_train()
            elif name == "predict":
                source = self.predict_source()
                dataset = None if source is None else EvalDataset(source, self.seed, targets=False)
            else:
                dataset = self.eval_dataset(self.eval_sets(name), name)
            if dataset is None:
                return None
            self.datasets[name] = dataset
        return self.datasets[name]

    def eval_dataset(self, sets: Sequence[EvalSet], stage: str) -> Dataset[Any] | None:
        """All ``sets`` as one dataset (names prefixed by the set's when there are several)."""
        crop = self.val_crop_size if stage == "val" else None
        parts = [
            EvalDataset(s.source, self.seed, crop, prefix=f"{s.name}/" if len(sets) > 1 else "")
            for s in sets
        ]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def rank_and_world_size(self) -> tuple[int, int]:
        """This process's global rank and the number of processes, from the trainer."""
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _loader_options(self) -> dict[str, Any]:
        pin = self.pin_memory
        if pin is None:
            trainer = self.trainer
            pin = trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)
        workers = self.workers()
        return {
            "num_workers": workers,
            "pin_memory": pin and torch.cuda.is_available(),
            "persistent_workers": workers > 0,
        }

    def workers(self) -> int:
        """Loader workers per device: ``num_workers``, with ``"auto"`` resolved for the trainer."""
        if self.num_workers != "auto":
            return int(self.num_workers)
        return auto_workers(int(self.trainer.num_devices) if self.trainer is not None else 1)

    def _required(self, name: str) -> Dataset[Any]:
        dataset = self._get(name)
        if dataset is None:
            if name == "predict":
                hint = "set data.predict_dir to a folder of images to restore"
            else:
                hint = f"set data.{name}_sets (a folder, or {{degraded: ..., target: ...}})"
            raise RCOTError(f"no {name} data configured; {hint}")
        return dataset

    def train_dataloader(self) -> DataLoader[Any]:
        dataset = self._required("train")
        rank, world_size = self.rank_and_world_size()
        sampler = ShardedSampler(
            dataset,  # type: ignore[arg-type]
            rank=rank,
            world_size=world_size,
            shuffle=True,
            seed=self.seed,
        )
        if len(sampler) < self.batch_size:
            raise RCOTError(
                f"data.samples_per_epoch: {len(dataset)} training items give each of "  # type: ignore[arg-type]
                f"{world_size} ranks {len(sampler)}, fewer than data.batch_size="
                f"{self.batch_size}; raise data.samples_per_epoch or lower data.batch_size"
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            **self._loader_options(),
        )

    def eval_loader(self, dataset: Dataset[Any]) -> DataLoader[Any]:
        """A loader of evaluation rows (``val_batch_size``, in order, the module's workers)."""
        return DataLoader(
            dataset, batch_size=self.val_batch_size, shuffle=False, **self._loader_options()
        )

    def val_dataloader(self) -> DataLoader[Any] | list[Any]:
        dataset = self._get("val")
        # An empty list makes Lightning skip validation when no validation data is configured.
        return [] if dataset is None else self.eval_loader(dataset)

    def test_dataloader(self) -> DataLoader[Any]:
        return self.eval_loader(self._required("test"))

    def predict_dataloader(self) -> DataLoader[Any]:
        return self.eval_loader(self._required("predict"))


class SamplesDataModule(RestorationDataModule):
    """The default: random crops of scikit-image's offline photos, degraded on the fly.

    Validation is the held-out photos (centre-cropped to ``val_crop_size`` for speed), test the
    same photos at full size, prediction their degraded versions. See
    :mod:`rcot_lightning.data.samples` for the split.

    Args:
        degradation: default ``GaussianNoise(sigma=25)``.
        samples_per_epoch: random crops per epoch over all ranks.
        crops: as :class:`RestorationDataModule`'s, with ``val_crop_size`` 256 unless given
            (``None`` validates at full size).
        train_images, val_images: names from :data:`~rcot_lightning.data.samples.SAMPLE_PHOTOS`.
        kwargs: the options of :class:`RestorationDataModule`.

    Example:
        >>> dm = SamplesDataModule(crops={"val_crop_size": 64})
        >>> dm.setup("validate")
        >>> row = dm.datasets["val"][0]
        >>> row["name"], tuple(row["degraded"].shape)
        ('chelsea', (3, 64, 64))
    """

    def __init__(
        self,
        *,
        degradation: Degradation | None = None,
        samples_per_epoch: int | None = 800,
        crops: CropSpec | Mapping[str, Any] | None = None,
        train_images: Sequence[str] = TRAIN_PHOTOS,
        val_images: Sequence[str] = VAL_PHOTOS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            degradation=GaussianNoise(sigma=25.0) if degradation is None else degradation,
            samples_per_epoch=samples_per_epoch,
            crops=as_settings(CropSpec, crops, "data.crops", val_crop_size=256),
            **kwargs,
        )
        self.train_images = list(train_images)
        self.val_images = list(val_images)
        overlap = sorted(set(self.train_images) & set(self.val_images))
        if overlap:
            raise RCOTError(
                f"data.val_images shares {', '.join(overlap)} with data.train_images; "
                "validate on held-out photos"
            )

    def _synthesized(self, names: Sequence[str], key: str) -> Synthesized:
        return Synthesized(sample_images(names, key), self.require_degradation("data"))

    def build_train(self) -> Dataset[Any]:
        source = self._synthesized(self.train_images, "data.train_images")
        return PairedDataset(
            source, self.patch_size, self.epoch_length(len(source)), self.seed, self.augment
        )

    def eval_source(self, stage: str) -> PairSource | None:
        return self._synthesized(self.val_images, "data.val_images")

    def predict_source(self) -> PairSource | None:
        return self._synthesized(self.val_images, "data.val_images")


class PairedFolderDataModule(RestorationDataModule):
    """Training pairs from a degraded folder and a target folder, matched by file stem.

    Args:
        train_degraded_dir: degraded training images.
        train_target_dir: their ground truth (same stems, same sizes).
        kwargs: the options of :class:`RestorationDataModule`.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for sub in ("rain", "clean"):
        ...     (root / sub).mkdir()
        ...     for i in range(2):
        ...         Image.new("RGB", (40, 40)).save(root / sub / f"{i}.png")
        >>> dm = PairedFolderDataModule(root / "rain", root / "clean", batch_size=2,
        ...     crops={"patch_size": 32}, folders={"degradation_id": "rain"})
        >>> batch = next(iter(dm.train_dataloader()))
        >>> batch["paired"].tolist(), batch["degradation"].tolist()
        ([True, True], [1, 1])
    """

    def __init__(
        self,
        train_degraded_dir: Any = None,
        train_target_dir: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.train_degraded_dir = train_degraded_dir
        self.train_target_dir = train_target_dir

    def build_train(self) -> Dataset[Any]:
        if self.train_degraded_dir is None or self.train_target_dir is None:
            raise RCOTError(
                "data.train_degraded_dir and data.train_target_dir: this data has no training "
                "split (an evaluation-only preset); use it with rcot-eval, or set both folders"
            )
        source = self.pairs(
            self.train_degraded_dir,
            self.train_target_dir,
            "data.train_degraded_dir",
            "data.train_target_dir",
        )
        return PairedDataset(
            source, self.patch_size, self.epoch_length(len(source)), self.seed, self.augment
        )


class SyntheticDataModule(RestorationDataModule):
    """Clean training images degraded on the fly (the reference's denoising setting).

    Args:
        train_dir: clean training images.
        degradation: how to degrade them (and the folders of ``val_sets`` / ``test_sets`` given
            without degraded images);
            default ``GaussianNoise(sigma=25)``.
        kwargs: the options of :class:`RestorationDataModule`.
    """

    def __init__(
        self, train_dir: Any, degradation: Degradation | None = None, **kwargs: Any
    ) -> None:
        super().__init__(
            degradation=GaussianNoise(sigma=25.0) if degradation is None else degradation,
            **kwargs,
        )
        self.train_dir = train_dir

    def build_train(self) -> Dataset[Any]:
        clean = self.folder(self.train_dir, "data.train_dir")
        source = Synthesized(clean, self.require_degradation("data.train_dir"))
        return PairedDataset(
            source, self.patch_size, self.epoch_length(len(source)), self.seed, self.augment
        )


class UnpairedDataModule(RestorationDataModule):
    """Degraded and clean training images drawn independently (``paired`` is all False).

    Either two folders (``degraded_dir`` and ``clean_dir``), or, with ``degraded_dir`` unset,
    one clean folder split by ``seed`` into two disjoint halves: the first half is degraded by
    ``degradation`` and the second half serves as clean images (the usual way to build an
    unpaired benchmark from a paired one: no image is seen both degraded and clean).

    Args:
        clean_dir: clean images.
        degraded_dir: degraded images (``None``: split ``clean_dir``).
        kwargs: the options of :class:`RestorationDataModule`.
    """

    def __init__(self, clean_dir: Any, degraded_dir: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clean_dir = clean_dir
        self.degraded_dir = degraded_dir
        #: Names in the degraded and the clean half when ``clean_dir`` is split.
        self.split: tuple[list[str], list[str]] | None = None

    def build_train(self) -> Dataset[Any]:
        if self.many_to_one:
            raise RCOTError(
                "data.folders.many_to_one: unpaired training data (data=unpaired) draw degraded "
                "and clean images independently, so a many-to-one rule cannot keep a scene out of "
                "both sides; to train without pairs on a many-to-one set such as RESIDE use "
                "data=semipaired with data.paired_fraction=0 (its unpaired rows only see other "
                "scenes)"
            )
        clean = self.folder(self.clean_dir, "data.clean_dir")
        degraded: PairSource
        if self.degraded_dir is not None:
            images = self.folder(self.degraded_dir, "data.degraded_dir")
            degraded = DegradedOnly(images, self.degradation_id)
        else:
            if len(clean) < 2:
                raise RCOTError(
                    f"data.clean_dir: splitting into degraded and clean halves needs at least 2 "
                    f"images, {clean.location} has {len(clean)}; add images or set "
                    "data.degraded_dir"
                )
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "unpaired split"))
            order = torch.randperm(len(clean), generator=generator).tolist()
            half = len(order) // 2
            degraded_half, clean_half = Subset(clean, order[:half]), Subset(clean, order[half:])
            self.split = (degraded_half.names, clean_half.names)
            degraded = Synthesized(degraded_half, self.require_degradation("data.clean_dir"))
            clean = clean_half  # type: ignore[assignment]
        return UnpairedDataset(
            degraded,
            clean,
            self.patch_size,
            self.epoch_length(len(degraded)),
            self.seed,
            self.augment,
        )


class SemiPairedDataModule(RestorationDataModule):
    """Pairs of which a fixed, seeded fraction keeps its targets; the rest trains unpaired.

    Args:
        train_target_dir: clean training targets.
        train_degraded_dir: degraded training images (``None``: degrade the targets with
            ``degradation`` on the fly).
        paired_fraction: fraction in [0, 1] of training pairs whose target is used.
        kwargs: the options of :class:`RestorationDataModule`.
    """

    def __init__(
        self,
        train_target_dir: Any,
        train_degraded_dir: Any = None,
        paired_fraction: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.train_target_dir = train_target_dir
        self.train_degraded_dir = train_degraded_dir
        self.paired_fraction = paired_fraction

    def build_train(self) -> Dataset[Any]:
        source = self.pairs(
            self.train_degraded_dir,
            self.train_target_dir,
            "data.train_degraded_dir",
            "data.train_target_dir",
        )
        return SemiPairedDataset(
            source,
            self.paired_fraction,
            self.patch_size,
            self.epoch_length(len(source)),
            self.seed,
            self.augment,
        )
