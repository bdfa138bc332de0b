"""Lightning's DDP process launch under Hydra, made correct for sweeps.

With ``trainer.devices=N > 1`` (and no cluster that starts the processes itself), Lightning's
default launcher re-runs the command line for ranks 1..N-1 with
``hydra.run.dir=<HydraConfig run.dir>`` appended. In a single run that is right. In a Hydra
multirun it is not: the command line still holds ``-m`` and the sweep (``lr=1e-3,1e-4``), so
every child starts a sweep of its own, and ``run.dir`` is not the job's folder.

:func:`hydra_ddp_launch` fixes both for the duration of one job: the command line the children
see becomes *this job's* overrides (Hydra records them in ``hydra.overrides``) with
``hydra.mode=RUN``, and ``run.dir`` becomes the job's output folder, so ranks 1..N-1 compose
exactly the job's config and write into the job's folder. Afterwards it restores the command
line, destroys the process group and removes the rank variables the launcher put in the
environment: with ``LOCAL_RANK`` left behind, Lightning would take the next job of the sweep for
a process started by an external launcher and wait forever for ranks nobody starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch

__all__ = ["child_argv", "hydra_ddp_launch"]

log = logging.getLogger(__name__)

# Hydra's command-line flags that take a value and must reach the children unchanged.
_VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")

# What Lightning's launcher (and seeding) put into os.environ of the launching process.
_LAUNCH_ENV = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "PL_GLOBAL_SEED",
    "PL_SEED_WORKERS",
)


def _config_flags(argv: Sequence[str]) -> list[str]:
    """The ``--config-path/--config-name/--config-dir`` flags of a command line, with values."""
    flags: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in _VALUE_FLAGS:
            if "=" in arg:
                flags.append(arg)
            elif i + 1 < len(args):
                flags += [arg, args[i + 1]]
                i += 1
        i += 1
    return flags


def child_argv(
    argv: Sequence[str], hydra_overrides: Sequence[str], task_overrides: Sequence[str]
) -> list[str]:
    """The command line that makes a DDP child compose exactly one job of a sweep.

    Args:
        argv: the original ``sys.argv``.
        hydra_overrides: the job's ``hydra.overrides.hydra``.
        task_overrides: the job's ``hydra.overrides.task`` (sweep values already chosen).

    Returns:
        ``[argv[0], <config flags>, <hydra overrides but the mode>, <job overrides>,
        "hydra.mode=RUN"]``.

    Example:
        >>> child_argv(["train.py", "-m", "-cd", "my_conf", "lr=1,2"],
        ...            ["hydra.mode=MULTIRUN", "hydra.sweep.dir=s"], ["lr=2"])
        ['train.py', '-cd', 'my_conf', 'hydra.sweep.dir=s', 'lr=2', 'hydra.mode=RUN']
    """
    kept_hydra = [o for o in hydra_overrides if not o.lstrip("+~").startswith("hydra.mode=")]
    return [argv[0], *_config_flags(argv[1:]), *kept_hydra, *task_overrides, "hydra.mode=RUN"]


def _multirun_job() -> Any | None:
    """Hydra's config of the running job when this process launches a multirun job's ranks."""
    if "LOCAL_RANK" in os.environ:  # a DDP child, or ranks started by torchrun/SLURM
        return None
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover
        return None
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return hydra_cfg if hydra_cfg.mode == RunMode.MULTIRUN else None


@contextlib.contextmanager
def hydra_ddp_launch() -> Iterator[None]:
    """Run one Hydra job's ``fit``/``test`` so that DDP children join *this* job.

    Use it around everything that may start DDP processes (``trainer.fit``, ``trainer.test``).
    Outside a Hydra multirun it only cleans up after the job.
    """
    from omegaconf import OmegaConf, read_write

    argv = list(sys.argv)
    environ = {key: os.environ.get(key) for key in _LAUNCH_ENV}
    hydra_cfg = _multirun_job()
    old_run_dir: Any = None
    if hydra_cfg is not None:
        sys.argv = child_argv(argv, list(hydra_cfg.overrides.hydra), list(hydra_cfg.overrides.task))
        with read_write(hydra_cfg):
            run = OmegaConf.to_container(hydra_cfg.run, resolve=False)  # resolving claims a folder
            assert isinstance(run, dict)
            old_run_dir = run["dir"]
            hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
        log.debug("DDP children of this sweep job run: %s", sys.argv)
    try:
        yield
    finally:
        sys.argv = argv
        if hydra_cfg is not None:
            with read_write(hydra_cfg):
                hydra_cfg.run.dir = old_run_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
