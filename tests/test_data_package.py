"""The data package exports its submodules' public names, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rcot_lightning.data as data
from rcot_lightning.data import datamodules, degradations, images


def test_every_public_name_of_the_submodules_is_exported_once() -> None:
    exported = data.__all__
    assert len(exported) == len(set(exported))
    for module in (datamodules, degradations, images):
        for name in module.__all__:
            assert name in exported
            assert getattr(data, name) is getattr(module, name)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        data.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("rcot_lightning.data.NoSuchThing did not raise")


@pytest.mark.integration
def test_torch_only_names_do_not_import_lightning() -> None:
    code = (
        "import sys, rcot_lightning.data as d; d.GaussianNoise; d.read_image; "
        "print('lightning' in sys.modules); d.SyntheticDataModule; "
        "print('lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
