"""The held-out photos: present when the quality extra is installed, never in the training set."""

from __future__ import annotations

import importlib.util

import pytest

from rcot_lightning.data.heldout import HELDOUT_PHOTOS, heldout_path, load_heldout
from rcot_lightning.data.samples import SAMPLE_PHOTOS
from rcot_lightning.errors import RCOTError


def test_heldout_names_are_disjoint_from_the_embedded_photos() -> None:
    assert not set(HELDOUT_PHOTOS) & set(SAMPLE_PHOTOS)


@pytest.mark.parametrize("name", sorted(HELDOUT_PHOTOS))
def test_heldout_photo_loads(name: str) -> None:
    package = HELDOUT_PHOTOS[name][0]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (the quality extra)")
    image = load_heldout(name)
    assert image.shape[0] == 3 and min(image.shape[1:]) >= 400
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert float(image.std()) > 0.1  # a photo, not a blank image


def test_unknown_heldout_photo_names_the_known_ones() -> None:
    with pytest.raises(RCOTError, match="known: china, flower, grace_hopper"):
        heldout_path("lena")


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RCOTError, match=r"rcot-lightning\[quality\]"):
        heldout_path("china")
