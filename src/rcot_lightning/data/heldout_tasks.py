"""Every task's fixed severities on the held-out photos: the inputs of the per-task figures.

The held-out photos (:mod:`rcot_lightning.data.heldout`: ``china``, ``flower``,
``grace_hopper``, never trained or validated on) are degraded by the library's own
degradations (:mod:`rcot_lightning.data.degradations`) at fixed severities inside each task's
training range (:data:`SEVERITIES`), seeded per (seed, task, severity, photo) and rounded to 8
bits as a user would save them:

* ``denoise``: ``GaussianNoise`` at sigma 15, 25 and 50, seeded as
  ``benchmarks/pretrained_quality.py`` seeds them (:func:`noise_seed`);
* ``jpeg``, ``derain``, ``dehaze``, ``deblur``, ``lowlight``, ``sr``: the severities of
  ``benchmarks/tasks.py`` (which imports them from here), seeded by :func:`seed_of`.

A model is given what it would be given in training (:func:`model_input`): the degraded photo,
and for ``sr`` the bicubic x4 up-sampling (8-bit) of the 8-bit low-resolution image, as
``conf/task/sr.yaml``'s ``Downscale(upsample=True)`` feeds it.

:class:`HeldoutTasksDataModule` (``data=heldout_tasks``) holds them for ``rcot-eval``: one
evaluation set per (task, severity), named ``<task>/<severity>``, each with its task's metric
conventions (``conf/task/<task>.yaml``), so one call prints a table per task with a row per
severity. The inputs are exactly ``benchmarks/tasks.py``'s (and ``pretrained_quality.py``'s for
noise), so the figures agree. Needs the quality extra: ``pip install "rcot-lightning[quality]"``.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from rcot_lightning.contract import DegradationId
from rcot_lightning.data.allinone import AllInOneDataModule
from rcot_lightning.data.datamodules import EvalSet, RestorationDataModule
from rcot_lightning.data.datasets import center_crop
from rcot_lightning.data.degradations import (
    JPEG,
    Degradation,
    Downscale,
    GaussianBlur,
    GaussianNoise,
    Haze,
    LowLight,
    MotionBlur,
    RainStreaks,
    _quantize,
)
from rcot_lightning.data.heldout import HELDOUT_PHOTOS, load_heldout
from rcot_lightning.data.sources import Crop, Pair, PairSource, crop_image, dihedral
from rcot_lightning.errors import MissingExtraError, RCOTError
from rcot_lightning.inference import bicubic_upscale
from rcot_lightning.values import positive_int

__all__ = [
    "ANCHORED_TASKS",
    "NOISE_SIGMAS",
    "SEVERITIES",
    "SR_SCALE",
    "TASKS",
    "Blur",
    "Case",
    "EightBit",
    "HeldoutTasksDataModule",
    "input_seed",
    "make_case",
    "model_input",
    "noise_seed",
    "seed_of",
    "task_metric",
    "to_8bit",
]

#: The tasks of ``benchmarks/tasks.py``, in its order (the order is part of :func:`seed_of`).
ANCHORED_TASKS = ("jpeg", "derain", "dehaze", "deblur", "lowlight", "sr")
SR_SCALE = 4
#: The noise levels of ``denoise`` (0-255 scale), the field's and ``pretrained_quality.py``'s.
NOISE_SIGMAS = (15, 25, 50)


def to_8bit(x: Tensor) -> Tensor:
    """Clip to [0, 1] and round to 256 levels, as saving a PNG does.

    Args:
        x: images ``(B, C, H, W)``.

    Returns:
        The 8-bit images as float in [0, 1], same shape.

    Example:
        >>> to_8bit(torch.tensor([-0.1, 0.5, 1.2])).mul(255).tolist()
        [0.0, 128.0, 255.0]
    """
    return _quantize(x.clamp(0.0, 1.0))


@dataclass(frozen=True)
class Blur:
    """A known blur kernel followed by sensor noise: the deblur degradation of issue 30.

    The library has the stages (:class:`GaussianBlur`, :class:`MotionBlur`,
    :class:`GaussianNoise`); this keeps the kernel so the non-blind anchors can be told it.

    Args:
        kind: ``"gaussian"`` (``size`` is sigma in pixels) or ``"motion"`` (``size`` is the odd
            length of the path in pixels).
        size: see ``kind``.
        noise: sensor noise sigma on the 0-255 scale (clipped and rounded to 8 bits).
        angle: motion direction in degrees (``kind="motion"``).
    """

    kind: str
    size: float
    noise: float
    angle: float = 0.0

    def blur(self) -> Degradation:
        if self.kind == "gaussian":
            return GaussianBlur(sigma=self.size)
        return MotionBlur(kernel_size=int(self.size), angle=self.angle, direction=0.0)

    def kernel(self) -> Tensor:
        """The correlation kernel ``(k, k)`` the degradation's ``filter2d`` applies."""
        from kornia.filters import get_gaussian_kernel2d, get_motion_kernel2d

        blur = self.blur()
        if isinstance(blur, GaussianBlur):
            k = blur.kernel_size
            sigma = torch.tensor([[self.size, self.size]])
            return get_gaussian_kernel2d((k, k), sigma)[0]
        return get_motion_kernel2d(int(self.size), self.angle, 0.0)[0]

    def __call__(self, clean: Tensor, generator: torch.Generator) -> Tensor:
        return GaussianNoise(sigma=self.noise)(self.blur()(clean, generator), generator)

    def __str__(self) -> str:
        what = (
            f"GaussianBlur(sigma={self.size:g})"
            if self.kind == "gaussian"
            else f"MotionBlur(kernel_size={int(self.size)}, angle={self.angle:g}, direction=0)"
        )
        return f"{what} then GaussianNoise(sigma={self.noise:g}), 8-bit"


@dataclass(frozen=True)
class EightBit:
    """A library degradation whose output is rounded to 8 bits (a saved image).

    Args:
        degradation: the library's degradation at fixed parameters (for ``sr``,
            ``Downscale(upsample=False)``: the output is the low-resolution image).
    """

    degradation: Degradation

    def __call__(self, clean: Tensor, generator: torch.Generator) -> Tensor:
        return to_8bit(self.degradation(clean, generator))

    def __str__(self) -> str:
        return f"{self.degradation!r}, 8-bit"


Degrade = Callable[[Tensor, torch.Generator], Tensor]

#: Severity name -> degradation, per task: fixed points inside each task's training range
#: (conf/task/*.yaml and the classes' defaults; blur as issue 30 states it). ``GaussianNoise``
#: clips and rounds to 8 bits itself.
SEVERITIES: dict[str, dict[str, Degrade]] = {
    "denoise": {f"sigma{s}": GaussianNoise(sigma=float(s)) for s in NOISE_SIGMAS},
    "jpeg": {
        **{f"q{q}": EightBit(JPEG(quality=q)) for q in (10, 20, 40)},
        # What a user's saved file holds: libjpeg is harsher than kornia's codec at the same q.
        **{f"q{q}_libjpeg": JPEG(quality=q, codec="libjpeg") for q in (10, 20, 40)},
    },
    "derain": {
        "light": EightBit(RainStreaks(density=0.002, length=15, angle=-10.0, opacity=0.6)),
        "medium": EightBit(RainStreaks(density=0.006, length=21, angle=5.0, opacity=0.75)),
        "heavy": EightBit(RainStreaks(density=0.01, length=31, angle=20.0, opacity=0.9)),
    },
    "dehaze": {
        "light": EightBit(Haze(beta=0.6, airlight=0.7)),
        "medium": EightBit(Haze(beta=1.1, airlight=0.85)),
        "heavy": EightBit(Haze(beta=1.6, airlight=1.0)),
    },
    "deblur": {
        "gauss1_n1": Blur("gaussian", 1.0, noise=1.0),
        "gauss2.5_n2": Blur("gaussian", 2.5, noise=2.0),
        "motion9_n1": Blur("motion", 9, noise=1.0, angle=30.0),
        "motion15_n2": Blur("motion", 15, noise=2.0, angle=120.0),
    },
    "lowlight": {
        "mild": EightBit(LowLight(gamma=1.5, gain=0.5, sigma=2.0)),
        "medium": EightBit(LowLight(gamma=2.0, gain=0.35, sigma=5.0)),
        "severe": EightBit(LowLight(gamma=2.5, gain=0.2, sigma=8.0)),
    },
    "sr": {"x4": EightBit(Downscale(scale=SR_SCALE, upsample=False))},
}
#: Every task with held-out severities, in the order ``rcot-eval`` prints them.
TASKS = tuple(SEVERITIES)
#: The degradation id each task's rows carry (its ``conf/task/<task>.yaml``).
_IDS = {
    "denoise": DegradationId.NOISE,
    "jpeg": DegradationId.JPEG,
    "derain": DegradationId.RAIN,
    "dehaze": DegradationId.HAZE,
    "deblur": DegradationId.BLUR,
    "lowlight": DegradationId.LOWLIGHT,
    "sr": DegradationId.SR,
}


def model_input(task: str, degraded: Tensor) -> Tensor:
    """The image a model restores: the degraded photo; for ``sr`` its bicubic x4 up-sampling,
    8-bit, as ``rcot-restore`` feeds a super-resolution map
    (:func:`rcot_lightning.inference.bicubic_upscale`)."""
    return bicubic_upscale(degraded, SR_SCALE) if task == "sr" else degraded


def centre_crop(image: Tensor, size: int | None) -> Tensor:
    """The central ``size`` x ``size`` window of ``(..., H, W)`` (``None``: the whole image)."""
    return crop_image(image, center_crop((image.shape[-2], image.shape[-1]), size or None))


def mod_crop(image: Tensor, scale: int) -> Tensor:
    """Crop the bottom and right so the sides are multiples of ``scale`` (SR convention)."""
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale]


def seed_of(seed: int, task: str, severity: int, photo: int) -> int:
    """The seed of one input of ``benchmarks/tasks.py``: (seed, task, severity index, photo
    index among the photos scored).

    Example:
        >>> seed_of(0, "derain", 2, 1)
        10210
    """
    return seed * 1_000_003 + ANCHORED_TASKS.index(task) * 10_007 + severity * 101 + photo


def noise_seed(seed: int, sigma: float, photo: int) -> int:
    """The seed of one noisy photo of ``benchmarks/pretrained_quality.py``: (seed, sigma, photo
    index among the photos scored).

    Example:
        >>> noise_seed(0, 25, 2)
        2527
    """
    return seed * 1_000_003 + int(sigma) * 101 + photo


def input_seed(seed: int, task: str, severity: str, photo: int) -> int:
    """The seed of the input of ``task`` at ``severity`` (a key of :data:`SEVERITIES`) for the
    ``photo``-th photo scored: :func:`noise_seed` for ``denoise``, else :func:`seed_of`."""
    names = list(SEVERITIES[task])
    if task == "denoise":
        return noise_seed(seed, NOISE_SIGMAS[names.index(severity)], photo)
    return seed_of(seed, task, names.index(severity), photo)


@dataclass
class Case:
    """One degraded photo of one severity: the clean target, the anchors' input and the model's."""

    clean: Tensor
    degraded: Tensor  # what the anchors read: 8-bit (sr: the low-resolution image)
    model_input: Tensor  # what a model reads (sr: bicubic x4 up-sampling, 8-bit)


def make_case(task: str, degrade: Degrade, clean: Tensor, seed: int) -> Case:
    """Degrade ``clean`` ``(1, 3, H, W)`` (for ``sr`` cropped to multiples of 4 first) with a
    generator seeded by ``seed``."""
    if task == "sr":
        clean = mod_crop(clean, SR_SCALE)
    degraded = degrade(clean, torch.Generator().manual_seed(seed))
    return Case(clean, degraded, model_input(task, degraded))


def heldout_case(task: str, severity: str, clean: Tensor, index: int, seed: int = 0) -> Case:
    """The benchmarks' input of ``task`` at ``severity`` (a key of :data:`SEVERITIES`) for the
    ``index``-th photo scored, ``clean`` ``(1, 3, H, W)``: :func:`make_case` seeded by
    :func:`input_seed`."""
    degrade = SEVERITIES[task][severity]
    return make_case(task, degrade, clean, input_seed(seed, task, severity, index))


def task_metric(task: str) -> dict[str, Any]:
    """The ``metric`` section of ``conf/task/<task>.yaml`` (the field's convention per task).

    Example:
        >>> task_metric("sr")
        {'y_channel': True, 'also_y': False, 'crop_border': 4}
    """
    from omegaconf import OmegaConf

    resource = importlib.resources.files("rcot_lightning.conf") / "task" / f"{task}.yaml"
    config = OmegaConf.to_container(OmegaConf.create(resource.read_text()))
    metric = config.get("metric") or {} if isinstance(config, dict) else {}
    return {
        "y_channel": bool(metric.get("y_channel", False)),
        "also_y": bool(metric.get("also_y", False)),
        "crop_border": int(metric.get("crop_border", 0)),
    }


# --------------------------------------------------------------------------------------------
# rcot-eval: data=heldout_tasks.


class _HeldoutPairs(PairSource):
    """The held-out photos at one (task, severity): the model's input and the clean target.

    The input is :func:`make_case`'s, seeded by :func:`input_seed` (the generator a dataset
    passes is not used), so it is exactly the benchmarks' input.
    """

    def __init__(self, task: str, severity: str, photos: Mapping[str, Tensor], seed: int) -> None:
        self.task, self.severity, self.seed = task, severity, seed
        self.photos = dict(photos)
        self.names = list(self.photos)

    def _clean(self, index: int) -> Tensor:
        clean = self.photos[self.names[index]]
        return mod_crop(clean, SR_SCALE) if self.task == "sr" else clean

    def size(self, index: int) -> tuple[int, int]:
        h, w = self._clean(index).shape[-2:]
        return int(h), int(w)

    def describe(self, index: int) -> str:
        return f"held-out photo {self.names[index]!r} ({self.task} {self.severity})"

    def case(self, index: int) -> Case:
        """The photo's input and target, as ``benchmarks/tasks.py`` makes them."""
        clean = self.photos[self.names[index]]
        return heldout_case(self.task, self.severity, clean, index, self.seed)

    def pair(
        self, index: int, crop: Crop | None, mode: int, generator: torch.Generator | None
    ) -> Pair:
        case = self.case(index)
        degraded = dihedral(crop_image(case.model_input[0], crop), mode)
        target = dihedral(crop_image(case.clean[0], crop), mode)
        return Pair(degraded, target, int(_IDS[self.task]))

    def target(self, index: int, crop: Crop | None, mode: int) -> Tensor:
        return dihedral(crop_image(self._clean(index)[0], crop), mode)


class _HeldoutTask(RestorationDataModule):
    """One task of :class:`HeldoutTasksDataModule`: a set per severity, its metric conventions."""

    def __init__(self, task: str, photos: Mapping[str, Tensor], heldout_seed: int) -> None:
        metric = task_metric(task)
        super().__init__(metric={k: metric[k] for k in ("y_channel", "crop_border")})
        self.task, self.photos, self.heldout_seed = task, dict(photos), heldout_seed

    def build_train(self) -> Dataset[Any]:
        raise _eval_only()

    def eval_sets(self, stage: str) -> list[EvalSet]:
        return [
            EvalSet(severity, _HeldoutPairs(self.task, severity, self.photos, self.heldout_seed))
            for severity in SEVERITIES[self.task]
        ] + super().eval_sets(stage)


def _eval_only() -> RCOTError:
    return RCOTError(
        "data=heldout_tasks holds the held-out photos, which no job trains or validates on: it "
        "is for rcot-eval only; train with another data config (data=samples, a dataset preset)"
    )


def _names(value: Any, known: Sequence[str], key: str) -> list[str]:
    """``value`` as a non-empty list of distinct names of ``known``, checked (key named)."""
    names = [value] if isinstance(value, str) else list(value or [])
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise RCOTError(
            f"{key} must list distinct names from {', '.join(known)}; got {value!r}"
            + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else "")
        )
    return names


class HeldoutTasksDataModule(AllInOneDataModule):
    """Every task's fixed severities on the held-out photos, for ``rcot-eval`` (evaluation only).

    The evaluation sets (the same for ``split=test`` and ``split=val``) are named
    ``<task>/<severity>`` (``jpeg/q20``, ``sr/x4``), one per key of :data:`SEVERITIES`, each
    with its task's metric conventions (``conf/task/<task>.yaml``: Y channel for jpeg and sr,
    crop 4 for sr), so ``rcot-eval`` prints a table per task with a row per severity.

    Args:
        tasks: the tasks scored, names of :data:`TASKS` (default: all).
        photos: the held-out photos, names of
            :data:`~rcot_lightning.data.heldout.HELDOUT_PHOTOS` (default: all three). A photo's
            seed depends on its place in this list, as in the benchmarks.
        crop: centre-crop the clean photos to this side before degrading them, as
            ``benchmarks/tasks.py --crop`` does (``None``: whole photos, the published figures).
        seed: the benchmarks' ``--seed`` (0: the published figures).
        kwargs: the options of :class:`~rcot_lightning.data.datamodules.RestorationDataModule`
            (the loader's; ``val_batch_size`` must stay 1: the photos differ in size).

    Raises:
        MissingExtraError: the photos' packages are not installed (the quality extra).
        RCOTError: an unknown task or photo, a bad crop.

    Example:
        >>> data = HeldoutTasksDataModule(tasks=["sr"], photos=["china"], crop=64)  # doctest: +SKIP
        >>> [s.name for s in data.eval_sets("test")]  # doctest: +SKIP
        ['sr/x4']
    """

    def __init__(
        self,
        *,
        tasks: Sequence[str] = TASKS,
        photos: Sequence[str] = tuple(HELDOUT_PHOTOS),
        crop: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        task_names = _names(tasks, TASKS, "data.tasks")
        photo_names = _names(photos, list(HELDOUT_PHOTOS), "data.photos")
        positive_int(crop, "data.crop", allow_none=True, keyed=True)
        try:
            clean = {name: centre_crop(load_heldout(name)[None], crop) for name in photo_names}
        except RCOTError as err:
            kind = MissingExtraError if isinstance(err, MissingExtraError) else RCOTError
            raise kind(
                "data=heldout_tasks restores the held-out photos, which ship with scikit-learn "
                f"and matplotlib: {err}"
            ) from err
        modules = {name: _HeldoutTask(name, clean, int(seed)) for name in task_names}
        super().__init__(modules, seed=seed, **kwargs)

    def build_train(self) -> Dataset[Any]:
        raise _eval_only()
