"""Held-out photos: natural colour photos that no training, validation or default job uses.

The embedded training and validation photos come from scikit-image
(:mod:`rcot_lightning.data.samples`). A figure of quality only counts on images the method never
saw, so the quality benchmark and the bundled models' figures are measured on photos that ship
inside two *other* packages, read from their files (no download):

* ``china`` and ``flower`` (427x640 JPEG): scikit-learn's ``load_sample_images`` photos;
* ``grace_hopper`` (600x512 JPEG): matplotlib's sample data.

They are optional: install them with ``pip install "rcot-lightning[quality]"``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import Tensor

from rcot_lightning.data.images import read_image
from rcot_lightning.errors import MissingExtraError, RCOTError

__all__ = ["HELDOUT_PHOTOS", "heldout_path", "load_heldout"]

#: Name -> (package that ships it, path of the file inside that package).
HELDOUT_PHOTOS: dict[str, tuple[str, str]] = {
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}


def heldout_path(name: str) -> Path:
    """The file of one held-out photo, without importing the package that ships it.

    Raises:
        RCOTError: unknown name.
        MissingExtraError: the package is not installed.
    """
    if name not in HELDOUT_PHOTOS:
        raise RCOTError(f"unknown held-out photo {name!r}; known: {', '.join(HELDOUT_PHOTOS)}")
    package, relative = HELDOUT_PHOTOS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"held-out photo {name!r} ships with the {package} package, which is not installed; "
            'install it with pip install "rcot-lightning[quality]"'
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise RCOTError(f"held-out photo {name!r}: {path} is missing from the {package} package")
    return path


def load_heldout(name: str) -> Tensor:
    """One held-out photo as ``(3, H, W)`` float32 in [0, 1].

    Example:
        >>> load_heldout("china").shape  # doctest: +SKIP
        torch.Size([3, 427, 640])
    """
    return read_image(heldout_path(name))
