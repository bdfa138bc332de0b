"""All-in-one training: one transport map for several degradation tasks at once.

Each task is a DataModule of its own (a dataset preset, a folder pair, synthetic noise at one
sigma); :class:`AllInOneDataModule` mixes their training rows with a balanced or weighted
draw per row, and keeps every row's degradation id, so the Fourier norm of the residual cost
is chosen per row. Evaluation keeps the tasks apart: every task's sets are named
``<task>`` or ``<task>/<set>`` with the task's metric conventions, so one ``rcot-eval`` call
prints a table per task.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from rcot_lightning.data.datamodules import EvalSet, RestorationDataModule
from rcot_lightning.data.datasets import SampleKey
from rcot_lightning.errors import MissingExtraError, RCOTError
from rcot_lightning.seeding import derive_seed, seeded_generator

__all__ = ["AllInOneDataModule", "MixtureDataset"]


class MixtureDataset(Dataset[dict[str, Tensor]]):
    """Training rows drawn from several datasets, each row's task drawn by ``weights``.

    The plan of an epoch (which task each item comes from, and which of that task's items) is
    a function of ``(seed, epoch)`` only, so it is the same in every rank and worker, and the
    rows keep their own dataset's seeding, degradation id and ``sample_key``. Within an epoch a
    task's items are drawn without repetition (a fresh permutation per epoch).

    Args:
        datasets: the tasks' training datasets, indexable by :class:`SampleKey`; each must be
            at least ``length`` items long (so that any share of the epoch fits).
        weights: relative probability of each task (``None``: balanced).
        length: items per epoch.
        seed: seed of the plan.

    Example:
        >>> from rcot_lightning.data.datasets import PairedDataset
        >>> from rcot_lightning.data.degradations import GaussianNoise, Haze
        >>> from rcot_lightning.data.sources import MemoryImages, Synthesized
        >>> clean = MemoryImages({"a": torch.rand(3, 16, 16)})
        >>> tasks = [PairedDataset(Synthesized(clean, d), 8, length=8)
        ...          for d in (GaussianNoise(), Haze())]
        >>> mix = MixtureDataset(tasks, [1.0, 1.0], length=8)
        >>> sorted({int(mix[SampleKey(i, 0)]["degradation"]) for i in range(8)})
        [0, 2]
    """

    def __init__(
        self,
        datasets: list[Any],
        weights: list[float] | None,
        length: int,
        seed: int = 0,
    ) -> None:
        if not datasets:
            raise RCOTError("data.tasks: all-in-one training needs at least one task")
        weights = [1.0] * len(datasets) if weights is None else [float(w) for w in weights]
        if len(weights) != len(datasets) or min(weights) < 0 or sum(weights) <= 0:
            raise RCOTError(
                f"data.weights must be {len(datasets)} non-negative numbers with a positive "
                f"sum, got {weights!r}"
            )
        short = [i for i, d in enumerate(datasets) if len(d) < length]
        if short:
            raise RCOTError(f"tasks {short} have fewer than {length} items per epoch")
        self.datasets, self.weights = datasets, weights
        self.length, self.seed = length, seed
        self._plan: tuple[int, tuple[list[int], list[int]]] | None = None

    def __len__(self) -> int:
        return self.length

    def plan(self, epoch: int) -> tuple[list[int], list[int]]:
        """``(task, task item)`` of every item of ``epoch`` (kept for the current epoch)."""
        if self._plan is not None and self._plan[0] == epoch:
            return self._plan[1]
        generator = seeded_generator(self.seed, "mixture", epoch)
        probs = torch.tensor(self.weights, dtype=torch.float64)
        tasks = torch.multinomial(probs, self.length, replacement=True, generator=generator)
        orders = [torch.randperm(len(d), generator=generator) for d in self.datasets]
        seen = [0] * len(self.datasets)
        items = []
        for task in tasks.tolist():
            items.append(int(orders[task][seen[task]]))
            seen[task] += 1
        self._plan = (epoch, (tasks.tolist(), items))
        return self._plan[1]

    def __getitem__(self, key: int | SampleKey) -> dict[str, Tensor]:
        index, epoch = key if isinstance(key, tuple) else (int(key), 0)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        tasks, items = self.plan(epoch)
        return self.datasets[tasks[index]][SampleKey(items[index], epoch)]


@contextlib.contextmanager
def _task_keys(name: str) -> Iterator[None]:
    """A task's errors name its keys as the user sets them: ``data.tasks.<name>.folders.root``.

    Each task's data module names its own keys (``data.folders.root``), which do not exist here.
    """
    try:
        yield
    except MissingExtraError:
        raise
    except RCOTError as err:
        message = re.sub(r"\bdata\.(?!tasks\.)", f"data.tasks.{name}.", str(err))
        raise RCOTError(message) from err


class AllInOneDataModule(RestorationDataModule):
    """Several restoration tasks in one training set (DA-RCOT's all-in-one setting).

    Args:
        tasks: task name -> DataModule (any of this package's, e.g. a dataset preset). The
            all-in-one module sets their ``patch_size``, ``augment``, ``val_crop_size`` and
            ``samples_per_epoch``, and gives each its own seed derived from ``seed``; their
            batch sizes and workers are unused.
        weights: task name -> relative share of training rows (``None``: balanced; missing
            tasks weigh 1).
        samples_per_epoch: training rows per epoch over all ranks (``None``: ``repeat`` rows
            per training image of all tasks together).
        kwargs: the options of :class:`RestorationDataModule` (batch size, patch size, ...).

    Example:
        >>> from rcot_lightning.data.datamodules import SamplesDataModule
        >>> from rcot_lightning.data.degradations import GaussianNoise, Haze
        >>> dm = AllInOneDataModule(
        ...     {"noise": SamplesDataModule(degradation=GaussianNoise(25)),
        ...      "haze": SamplesDataModule(degradation=Haze())},
        ...     batch_size=8, samples_per_epoch=16, crops={"patch_size": 32, "val_crop_size": 32})
        >>> sorted(set(next(iter(dm.train_dataloader()))["degradation"].tolist()))
        [0, 2]
        >>> [s.name for s in dm.eval_sets("val")]
        ['noise', 'haze']
    """

    def __init__(
        self,
        tasks: Mapping[str, RestorationDataModule],
        weights: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(tasks, Mapping) or not tasks:
            raise RCOTError("data.tasks must map task names to data modules, e.g. {noise: ...}")
        for name, task in tasks.items():
            if not isinstance(task, RestorationDataModule):
                raise RCOTError(
                    f"data.tasks.{name} must be a data module (a node with a `_target_` such as "
                    f"rcot_lightning.data.datamodules.PairedFolderDataModule), got {task!r}"
                )
        unknown = sorted(set(weights or {}) - set(tasks))
        if unknown:
            raise RCOTError(f"data.weights names unknown tasks {unknown}; tasks: {list(tasks)}")
        self.tasks = dict(tasks)
        self.task_weights = {name: float((weights or {}).get(name, 1.0)) for name in self.tasks}
        for name, task in self.tasks.items():
            task.patch_size, task.augment = self.patch_size, self.augment
            task.val_crop_size = self.val_crop_size
            task.seed = derive_seed(self.seed, "task", name) % 2**31

    def build_train(self) -> Dataset[Any]:
        datasets: list[Any] = []
        for name, task in self.tasks.items():
            task.samples_per_epoch = None
            with _task_keys(name):
                datasets.append(task.build_train())
        length = self.epoch_length(sum(len(d.source) for d in datasets))
        for dataset in datasets:
            # Item i of a task reads its image i % count, so any share of the epoch fits and
            # the epoch's permutation of the items draws every image about equally often.
            dataset.length = max(len(dataset), length)
        return MixtureDataset(datasets, list(self.task_weights.values()), length, self.seed)

    def eval_sets(self, stage: str) -> list[EvalSet]:
        sets = []
        for name, task in self.tasks.items():
            with _task_keys(name):
                task_sets = task.eval_sets(stage)
            for item in task_sets:
                label = name if item.name == stage else f"{name}/{item.name}"
                sets.append(EvalSet(label, item.source, item.metric or task.metric))
        return sets + super().eval_sets(stage)
