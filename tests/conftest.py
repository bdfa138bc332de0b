"""Fixtures that compose the real Hydra configs shipped in ``rcot_lightning/conf``.

``compose_train(*overrides)`` returns the ``train`` config as the entry point would see it
(Hydra's runtime values included, outputs in the test's temporary folder), with settings that
keep a run to a few seconds on a 2-core CPU: the tiny model, small crops, no progress bar.
Tests that need a real command line (DDP relaunch, sweeps, exit codes) use ``run_cli``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import rcot_lightning.conf  # noqa: F401  (registers the config resolvers)
from tests import hostile

# One torch thread in the test process, as cli_env gives each command: on 2 cores shared with
# the commands a test starts (or another job), torch's default of one thread per core made the
# suite many times slower (a test of 2.7 s took 149 s), not faster.
# Set in the environment too, so a command run in this process keeps its threads whatever the
# machine's load (tests/test_hardware.py tests the busy-machine choice itself).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

CONFIG_MODULE = "rcot_lightning.conf"

#: Overrides that make a training run tiny: tiny model, 32x32 crops, 64x64 validation crops,
#: no test stage, and the default job's short recipe (any model but rcot_small would otherwise
#: get recipe=standard, 51 epochs).
TINY = (
    "model=rcot_tiny",
    "recipe=demo",
    "data.batch_size=2",
    "data.crops.patch_size=32",
    "data.samples_per_epoch=8",
    "data.crops.val_crop_size=64",
    "callbacks.rich_progress_bar=null",
    "trainer.enable_model_summary=false",
    "test=false",
)


def _compose(config_name: str, overrides: Sequence[str], output_dir: Path) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.paths.root_dir = str(output_dir)
        cfg.paths.output_dir = str(output_dir)
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture(autouse=True)
def _no_hydra_config_leaks() -> Iterator[None]:
    """Forget the HydraConfig a test set: code that asks ``HydraConfig.initialized()`` (is this
    a command?) must not see a config an earlier test composed."""
    yield
    HydraConfig.instance().cfg = None  # type: ignore[assignment]


@pytest.fixture
def compose_train(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """``compose_train(*overrides, tiny=True)``: the train config, outputs in ``tmp_path``."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return _compose("train", [*(TINY if tiny else ()), *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """``compose_config(name, *overrides)`` for ``eval`` and ``restore``."""

    def make(name: str, *overrides: str) -> DictConfig:
        return _compose(name, overrides, tmp_path)

    yield make
    GlobalHydra.instance().clear()


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a command under test: quiet, one thread per process, no wandb network."""
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
    }
    env.pop("HYDRA_FULL_ERROR", None)
    env.update(extra)
    return env


def run_cli(
    module: str,
    *args: str,
    cwd: Path,
    timeout: float = 600,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <module> <args>`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [python, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
    )


#: The TINY overrides as command-line arguments, plus a run short enough for a subprocess.
TINY_CLI = (*TINY, "trainer.max_steps=4", "trainer.val_check_interval=2")


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """A file that a hostile checkpoint must leave as it is (checked after the test), and
    must not create a file beside (tests/hostile.py)."""
    path = tmp_path / "marker.txt"
    path.write_text(hostile.MARKER_TEXT)
    yield path
    assert path.is_file() and path.read_text() == hostile.MARKER_TEXT, "the attack ran"
    assert not (path.parent / hostile.CREATED).exists(), "the pickle ran"
