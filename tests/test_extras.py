"""Optional extras (``tiff``, ``tensorboard``): missing ones end in one line naming the extra."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from omegaconf import OmegaConf

from rcot_lightning.cli.app import instantiate_group
from rcot_lightning.data.images import image_size, read_image
from rcot_lightning.data.sources import FolderImages
from rcot_lightning.errors import MissingExtraError


def test_a_tiff_without_tifffile_names_the_extra_and_is_never_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint8))
    assert image_size(path) == (8, 8)  # readable with tifffile
    monkeypatch.setitem(sys.modules, "tifffile", None)  # `import tifffile` now fails
    for read in (image_size, read_image):
        with pytest.raises(
            MissingExtraError, match=r"a\.tif: .*pip install 'rcot-lightning\[tiff\]'"
        ):
            read(path)
    # data.folders.skip_bad_images skips bad files, not files it merely cannot decode without an
    # extra.
    with pytest.raises(MissingExtraError, match="tifffile"):
        FolderImages(tmp_path, "data.train_dir", skip_bad_images=True)


def test_tensorboard_logger_without_tensorboard_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = OmegaConf.create(
        {
            "tensorboard": {
                "_target_": "lightning.pytorch.loggers.TensorBoardLogger",
                "save_dir": ".",
            }
        }
    )
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tensorboard", "tensorboardX") else find_spec(name, *a),
    )
    with pytest.raises(
        MissingExtraError,
        match=r"logger\.tensorboard \(TensorBoardLogger\) needs the tensorboard package: "
        r"pip install 'rcot-lightning\[tensorboard\]', or use logger=csv",
    ):
        instantiate_group(node, "logger")
