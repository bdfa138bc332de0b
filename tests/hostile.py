"""Hostile files for the entry points' tests: checkpoints that try to run code, maps that
overflow, old checkpoints holding OmegaConf nodes.

A *marker* is a file the attack would create, delete or empty; after each refused load it must
be exactly as it was.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from rcot_lightning.checkpoints.load import build_module
from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY
from rcot_lightning.cli import app
from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS

#: The text a marker file holds; an attack that empties or deletes it shows.
MARKER_TEXT = "untouched"


def tiny_config() -> dict[str, Any]:
    """The build config of the tiny model, as ``rcot_lightning.cli.train`` stores it."""
    return {
        "_target_": "rcot_lightning.RCOTModule",
        "transport_map": {"_target_": "rcot_lightning.nets.TwoPassMap", **MAP_PRESETS["tiny"]},
        "potential": {"_target_": "rcot_lightning.nets.Potential", **POTENTIAL_PRESETS["tiny"]},
        "map_optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4},
    }


class LocalMap(torch.nn.Module):
    """conv 3x3, GELU, conv 3x3: a map with a local receptive field (tiling must be exact).

    A user's own class: a stored config builds it only with ``trusted_targets=[tests.hostile]``.
    """

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1),
            torch.nn.GELU(),
            torch.nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_module(tiny_config()).state_dict()


def save_checkpoint(path: Path, config: Any, state: dict[str, Any] | None = None, **extra: Any):
    """A checkpoint as ``rcot_lightning.cli.train`` writes one (enough of it to resume or load)."""
    torch.save(
        {
            "state_dict": tiny_state() if state is None else state,
            "optimizer_states": [],
            BUILD_CONFIG_KEY: config,
            **extra,
        },
        path,
    )
    return path


class _TouchesOnUnpickle:
    """Unpickling it calls ``Path(marker).touch()``: a stand-in for ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


#: The file a pickle attack would create beside the marker.
CREATED = "created-by-unpickling"


def pickle_attack(path: Path, marker: Path) -> Path:
    """A checkpoint whose unpickling would create a file beside ``marker``."""
    return save_checkpoint(path, tiny_config(), payload=_TouchesOnUnpickle(marker.parent / CREATED))


def config_attacks(folder: Path, marker: Path) -> dict[str, Path]:
    """Weights-only checkpoints whose stored config would delete or empty ``marker``."""
    unlink = {"_target_": "pathlib.Path.unlink", "_args_": [str(marker)]}
    truncate = {"_target_": "builtins.open", "_args_": [str(marker), "w"]}
    through_module = {"_target_": "rcot_lightning.cli.app.os.remove", "_args_": [str(marker)]}
    attacks = {
        "nested-unlink": tiny_config() | {"transport_map": unlink},
        "top-open": truncate,
        "partial-open": tiny_config() | {"map_optimizer": truncate | {"_partial_": True}},
        "through-a-module": tiny_config() | {"potential": through_module},
    }
    return {name: save_checkpoint(folder / f"{name}.ckpt", c) for name, c in attacks.items()}


def overflowing(path: Path) -> Path:
    """Finite weights that overflow to infinity/NaN in the map (weights x 1e30)."""
    state = {
        k: v * 1e30 if v.is_floating_point() and k.startswith("transport_map.") else v
        for k, v in tiny_state().items()
    }
    return save_checkpoint(path, tiny_config(), state)


def old_style(path: Path) -> Path:
    """A checkpoint as 0.3 could write it: the stored config and hyper-parameters as DictConfig."""
    return save_checkpoint(
        path,
        OmegaConf.create(tiny_config()),
        hyper_parameters=OmegaConf.create({"n_critic": 1}),
    )


def image(path: Path, size: tuple[int, int] = (12, 16), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def one_line_exit(
    prog: str, run: Callable[[], Any], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run an entry point's work as its command does; its exit status and its one stderr line."""
    with pytest.raises(SystemExit) as info, app.exit_on_user_error(prog):
        run()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: ")
    return int(info.value.code or 0), err[0]
