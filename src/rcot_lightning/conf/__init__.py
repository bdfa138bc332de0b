"""Hydra configs of rcot-lightning (shipped in the wheel; see ``train.yaml``).

Importing this package registers the OmegaConf resolvers the configs use, so the configs also
compose from other Hydra apps (``initialize_config_module("rcot_lightning.conf")``):

* ``${rcot_run_dir:<parent>,<run_dir>,<ckpt_path>,<task>}``: this run's own folder under
  ``<parent>`` (claimed, never shared with another run; see :mod:`rcot_lightning.conf.run_dir`);
* ``${rcot_wandb_offline:}``: whether wandb must run offline (no API key configured);
* ``${rcot_recipe:${data},${model},${experiment}}``: the recipe ``train.yaml`` selects (see
  :func:`default_recipe`).

The model sizes are written once, in ``model/*.yaml``; ``MAP_PRESETS`` and ``POTENTIAL_PRESETS``
read them for code that builds the networks itself (:mod:`rcot_lightning.conf.presets`).
"""

from __future__ import annotations

import contextlib
import netrc
import os

from omegaconf import OmegaConf

from rcot_lightning.conf.presets import MAP_PRESETS, POTENTIAL_PRESETS
from rcot_lightning.conf.run_dir import run_folder

__all__ = [
    "DEMO_CHOICES",
    "MAP_PRESETS",
    "POTENTIAL_PRESETS",
    "default_recipe",
    "register_resolvers",
    "wandb_mode",
]

#: The choices of the default job: only these get ``recipe=demo``.
DEMO_CHOICES = {"data": "samples", "model": "rcot_small"}


def wandb_mode() -> str:
    """``WANDB_MODE`` as wandb reads it: ``"offline"`` (also for dryrun and disabled), ``"online"``
    or ``""`` (not set): the one place the variable is parsed."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    return "offline" if mode in ("offline", "dryrun", "disabled") else mode


def _wandb_offline() -> bool:
    """True unless an API key is configured (env, netrc) or ``WANDB_MODE=online`` is set."""
    mode = wandb_mode()
    if mode == "offline":
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    with contextlib.suppress(Exception):  # no or unreadable ~/.netrc: no key
        if netrc.netrc().authenticators("api.wandb.ai"):
            return False
    return True


def default_recipe(data: str | None, model: str | None, experiment: str | None) -> str:
    """The ``recipe`` option for these group choices, when the command line names none.

    The demo's settings (a narrowed potential, 300 iterations, patch 64) make sense only for the
    embedded sample photos and the small model; any other data or model gets the paper's recipe
    with that model (``standard``); an experiment is a whole recipe of its own (``none``).

    Example:
        >>> default_recipe("samples", "rcot_small", None), default_recipe("paired", "rcot", None)
        ('demo', 'standard')
        >>> default_recipe("samples", "rcot", None), default_recipe("paired", "rcot", "paper_sr")
        ('standard', 'none')
    """
    if experiment not in (None, "", "null"):
        return "none"
    if data == DEMO_CHOICES["data"] and model == DEMO_CHOICES["model"]:
        return "demo"
    return "standard"


def register_resolvers() -> None:
    """Register the resolvers of the module docstring (idempotent)."""
    if not OmegaConf.has_resolver("rcot_wandb_offline"):
        OmegaConf.register_new_resolver("rcot_wandb_offline", _wandb_offline)
    if not OmegaConf.has_resolver("rcot_run_dir"):
        # Cached: the folder is claimed once per config, however often run.dir is read.
        OmegaConf.register_new_resolver("rcot_run_dir", run_folder, use_cache=True)
    if not OmegaConf.has_resolver("rcot_recipe"):
        # Resolved in train.yaml's defaults list, where only the group choices are known.
        OmegaConf.register_new_resolver("rcot_recipe", default_recipe)


register_resolvers()
