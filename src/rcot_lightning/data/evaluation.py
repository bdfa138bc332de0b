"""The evaluation sets of a data module as the field reports them: named, per noise level.

``rcot-eval`` scores every set of a split separately: the ``{split}_*_dir`` folders, the named
``{split}_sets`` (CBSD68, Kodak24, McMaster), and, for all-in-one data, every task's sets
(named ``<task>/<set>``). With noise levels (``sigmas``) every set synthesised with Gaussian
noise is scored once per level, seeded per image exactly as at its own level alone; folder
pairs (rain, haze) are scored once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from rcot_lightning.data.datamodules import RestorationDataModule
from rcot_lightning.data.datasets import EvalDataset
from rcot_lightning.data.degradations import Degradation, GaussianNoise, OneOf
from rcot_lightning.data.sources import Synthesized
from rcot_lightning.errors import RCOTError

__all__ = ["ScoredSet", "scored_sets"]


class ScoredSet(NamedTuple):
    """One table row's data: its label, its task, its images and its metric conventions."""

    label: str
    task: str
    dataset: EvalDataset
    metric: Mapping[str, Any] | None


def _is_noise(degradation: Degradation | None) -> bool:
    if isinstance(degradation, OneOf):
        return all(isinstance(d, GaussianNoise) for d in degradation.degradations)
    return isinstance(degradation, GaussianNoise)


def _modules(datamodule: RestorationDataModule) -> list[RestorationDataModule]:
    return [datamodule, *getattr(datamodule, "tasks", {}).values()]


def scored_sets(
    datamodule: RestorationDataModule, split: str, sigmas: Sequence[float] | None = None
) -> list[ScoredSet]:
    """The sets of ``split`` (``"test"`` or ``"val"``), once per noise level where they have one.

    Args:
        datamodule: any of this package's data modules (all-in-one included).
        split: ``"test"`` or ``"val"``.
        sigmas: Gaussian noise levels (0-255 scale) for the sets synthesised with noise
            (``None``: their own degradation).

    Raises:
        RCOTError: ``sigmas`` is given but no set is synthesised with Gaussian noise.

    Example:
        >>> from rcot_lightning.data.datamodules import SamplesDataModule
        >>> data = SamplesDataModule(crops={"val_crop_size": 32})
        >>> sets = scored_sets(data, "val", sigmas=[15, 50])
        >>> [s.label for s in sets]
        ['val@sigma15', 'val@sigma50']
    """
    crop = datamodule.val_crop_size if split == "val" else None
    several_tasks = hasattr(datamodule, "tasks")

    def as_scored(item: Any, label: str) -> ScoredSet:
        task = item.name.split("/")[0] if several_tasks else ""
        dataset = EvalDataset(item.source, datamodule.seed, crop, prefix=f"{label}/")
        return ScoredSet(label, task, dataset, item.metric)

    if not sigmas:
        return [as_scored(item, item.name) for item in datamodule.eval_sets(split)]
    noisy = [m for m in _modules(datamodule) if _is_noise(m.degradation)]
    if not noisy:
        raise RCOTError(
            "sigmas: no evaluation set of this data is degraded with Gaussian noise; leave "
            "sigmas unset, or use data with clean test images (data=bsd400_wed, data=samples)"
        )
    originals = [m.degradation for m in noisy]
    scored: list[ScoredSet] = []
    try:
        for k, sigma in enumerate(sigmas):
            level = GaussianNoise(sigma=float(sigma))
            for module in noisy:
                module.degradation = level
            for item in datamodule.eval_sets(split):
                varies = isinstance(item.source, Synthesized) and item.source.degradation is level
                if varies:
                    scored.append(as_scored(item, f"{item.name}@sigma{sigma:g}"))
                elif k == 0:
                    scored.append(as_scored(item, item.name))
    finally:
        for module, original in zip(noisy, originals, strict=True):
            module.degradation = original
    # A set's noise levels side by side, sets in the data's order.
    first: dict[str, int] = {}
    for k, scored_set in enumerate(scored):
        first.setdefault(scored_set.label.split("@")[0], k)
    return sorted(scored, key=lambda s: first[s.label.split("@")[0]])
