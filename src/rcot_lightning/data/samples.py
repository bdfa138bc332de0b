"""The embedded default dataset: natural colour photos that ship inside scikit-image.

They need no download, so the default training command runs offline. The split keeps training
and validation content apart:

* training (the larger photos, the most distinct crops): ``astronaut`` (512x512, a portrait
  with fabric and metal), ``rocket`` (427x640, sky and structure; stored as JPEG),
  ``motorcycle_left`` and ``motorcycle_right`` (the 500x741 stereo pair: fine mechanical detail);
* validation: ``chelsea`` (300x451, cat fur) and ``coffee`` (400x600, smooth gradients and
  specular highlights), textures absent from the training photos, so the validation score
  measures generalisation rather than memorisation.

Five colour photos are little variety: expect a model trained on them to denoise well but to
stay below models trained on a real dataset (see docs/quality.md). For more structure,
scikit-image's natural grayscale photos (:data:`GREY_PHOTOS`: ``camera``, ``coins``, ``moon``,
``brick``, ``grass``, ``gravel``) can be named too; they load as RGB with three equal channels
(the noise added to them is still independent per channel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
from torch import Tensor

from rcot_lightning.data.images import to_tensor
from rcot_lightning.data.sources import MemoryImages
from rcot_lightning.errors import RCOTError

__all__ = [
    "GREY_PHOTOS",
    "SAMPLE_PHOTOS",
    "TRAIN_PHOTOS",
    "VAL_PHOTOS",
    "load_photo",
    "sample_images",
]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data  # imported on use: it is slow to import

        return getattr(data, name)()

    return load


def _motorcycle(side: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return data.stereo_motorcycle()[side]

    return load


#: scikit-image's offline natural grayscale photos (``clock`` is left out: it is motion-blurred;
#: ``page`` and ``text`` are scanned text).
GREY_PHOTOS = ("camera", "coins", "moon", "brick", "grass", "gravel")

#: Name -> loader of every offline photo of scikit-image usable for training: the colour photos,
#: then the grayscale ones (read as RGB).
SAMPLE_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "rocket": _skimage("rocket"),
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    **{name: _skimage(name) for name in GREY_PHOTOS},
}
TRAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right")
VAL_PHOTOS = ("chelsea", "coffee")


@cache
def load_photo(name: str) -> Tensor:
    """One sample photo as ``(3, H, W)`` float32 in [0, 1] (cached per process).

    Example:
        >>> load_photo("chelsea").shape
        torch.Size([3, 300, 451])
    """
    if name not in SAMPLE_PHOTOS:
        raise RCOTError(f"unknown sample photo {name!r}; known: {', '.join(SAMPLE_PHOTOS)}")
    return to_tensor(np.ascontiguousarray(SAMPLE_PHOTOS[name]()))


def sample_images(names: Sequence[str], key: str) -> MemoryImages:
    """The named sample photos as an image list.

    Args:
        names: keys of :data:`SAMPLE_PHOTOS`.
        key: the config key the names came from, for error messages.

    Example:
        >>> sample_images(["coffee"], "data.val_images").size(0)
        (400, 600)
    """
    names = list(names)
    unknown = [n for n in names if n not in SAMPLE_PHOTOS]
    if unknown or not names:
        raise RCOTError(
            f"{key}: unknown sample photos {unknown or names!r}; choose from "
            f"{', '.join(SAMPLE_PHOTOS)}"
        )
    return MemoryImages({n: load_photo(n) for n in names}, location=f"scikit-image photos ({key})")
