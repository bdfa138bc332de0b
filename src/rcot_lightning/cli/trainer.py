"""The Lightning Trainer of a command, built from ``cfg.trainer`` with one-line errors.

RCOT optimises two networks by hand, so some of Lightning's defaults do not fit: several
processes need DDP with ``find_unused_parameters=True`` (:data:`DDP_STRATEGY`, chosen for
``strategy: auto``), ``gradient_clip_val`` is refused (``model.clipping`` clips), and bf16 on a
CPU without native bf16 runs in fp32. A setting Lightning rejects is one line naming its key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from rcot_lightning.cli.checks import check_trainer_values
from rcot_lightning.cli.config import as_dict
from rcot_lightning.cli.one_line import single_line
from rcot_lightning.errors import RCOTError

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

log = logging.getLogger(__name__)

#: The only strategy RCOT can use with DDP out of the box: each of the two alternating backward
#: passes reaches the parameters of one network only.
DDP_STRATEGY = "ddp_find_unused_parameters_true"


#: What to do about a Trainer setting that Lightning rejects, by config key.
_TRAINER_HINTS = {
    "accelerator": "use hardware=auto (a GPU if there is one, else the CPU), hardware=cpu, or "
    "hardware=bf16 for mixed precision on a CPU",
    "devices": "use a positive number of devices, a list of device ids, or 'auto'",
    "num_nodes": "use an integer >= 1",
    "precision": "use 32-true, bf16-mixed, 16-mixed (GPU) or 64-true, or pick a hardware config "
    "(hardware=cpu, bf16, gpu, fp16)",
    "strategy": f"use auto (several processes get {DDP_STRATEGY})",
}

#: Lightning errors that name no Trainer argument: (text of the message, the argument).
_UNNAMED = (
    ("gpu backend", "accelerator"),
    ("machine only has", "devices"),
    ("timer(duration=", "max_time"),
)


def trainer_error_message(err: BaseException, trainer: Mapping[str, Any]) -> str:
    """Lightning's error about ``trainer`` (the resolved config) as one line naming the key.

    Example:
        >>> error = ValueError("`Trainer(num_nodes=0)` is invalid.")
        >>> trainer_error_message(error, {"devices": 1, "num_nodes": 0})
        'trainer.num_nodes=0: `Trainer(num_nodes=0)` is invalid; use an integer >= 1'
    """
    text = single_line(str(err)).rstrip(".")
    named = [(m.start(), str(k)) for k in trainer if (m := re.search(rf"\b{k}\b", text, re.I))]
    key = min(named)[1] if named else next((k for w, k in _UNNAMED if w in text.lower()), None)
    if key is None:
        return f"trainer: {text}"
    if "unexpected keyword argument" in text:
        hint = "not an argument of lightning.pytorch.Trainer: remove it or correct its name"
    else:
        hint = _TRAINER_HINTS.get(key, "")
    return f"trainer.{key}={trainer.get(key)}: {text}" + (f"; {hint}" if hint else "")


def _drop(record: logging.LogRecord) -> bool:
    return False


def _emulated_bf16(settings: Mapping[str, Any]) -> bool:
    """Whether ``settings`` ask for bf16 on a CPU that has no native bf16 arithmetic."""
    import torch

    from rcot_lightning.hardware import native_bf16

    if not str(settings.get("precision", "32-true")).startswith("bf16"):
        return False
    accelerator = str(settings.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    return on_cpu and not native_bf16()


def _override(node: DictConfig, **values: Any) -> DictConfig:
    """``node`` with ``values`` replacing its keys (a new config; ``node`` is left as it is)."""
    merged = OmegaConf.merge(node, values)
    assert isinstance(merged, DictConfig)
    return merged


def build_trainer(node: DictConfig, **kwargs: Any) -> Trainer:
    """The Trainer of config ``node`` (``cfg.trainer``) with ``kwargs`` (callbacks, logger, ...).

    With ``strategy: auto`` and more than one process (devices or nodes), and with
    ``strategy: ddp``, the strategy is DDP with ``find_unused_parameters=True``: RCOT's potential
    and map backward passes each reach one network only, which plain DDP treats as an error.

    Raises:
        RCOTError: a setting of the wrong type (``trainer.max_steps=abc``, checked here:
            :func:`~rcot_lightning.cli.checks.check_trainer_values`), a setting Lightning rejects
            (the key and its value, Lightning's reason, what to do), ``16-mixed`` on a CPU
            (Lightning would run bf16-mixed instead), or ``gradient_clip_val`` set (Lightning
            rejects it only inside ``fit``, since RCOT optimises manually).
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.accelerators import CPUAccelerator

    settings = as_dict(node)
    check_trainer_values(settings)
    if settings.get("gradient_clip_val") not in (None, 0, 0.0):
        raise RCOTError(
            "trainer.gradient_clip_val cannot be used with RCOT's two manual optimisers; "
            "set model.clipping.map and/or model.clipping.potential instead"
        )
    strategy = settings.get("strategy", "auto")
    if strategy == "ddp":
        # Plain DDP stops at the first step (each backward reaches one network only): the
        # launchers' usual `trainer.strategy=ddp` (torchrun, SLURM) gets the DDP that works.
        log.info(
            "trainer.strategy=ddp: using %s (RCOT's backward passes each reach one network)",
            DDP_STRATEGY,
        )
        node, strategy = _override(node, strategy=DDP_STRATEGY), DDP_STRATEGY
    elif strategy == "ddp_spawn":
        log.warning(
            "trainer.strategy=%s: RCOTModule's alternating backward passes need "
            "find_unused_parameters=True; use %s (strategy: auto picks it)",
            strategy,
            DDP_STRATEGY,
        )

    if _emulated_bf16(settings):  # many times slower than fp32 there, never faster
        from rcot_lightning.hardware import bf16_fallback_note

        log.warning(bf16_fallback_note("trainer.precision"))
        node = _override(node, precision="32-true")

    def build(**extra: Any) -> Trainer:
        try:
            return instantiate(node, _convert_="all", **kwargs, **extra)
        except InstantiationException as err:
            cause = err.__cause__
            if isinstance(cause, (MisconfigurationException, ValueError, TypeError)):
                raise RCOTError(trainer_error_message(cause, settings)) from cause
            raise

    trainer = build()
    if strategy == "auto" and trainer.world_size > 1:
        # Built again without repeating Lightning's lines about the devices.
        lightning_info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        lightning_info.addFilter(_drop)
        try:
            trainer = build(strategy=DDP_STRATEGY)
        finally:
            lightning_info.removeFilter(_drop)
    precision = str(settings.get("precision"))
    if precision in ("16", "16-mixed") and isinstance(trainer.accelerator, CPUAccelerator):
        raise RCOTError(
            f"trainer.precision={precision} (hardware=fp16) needs a CUDA GPU and this run uses "
            "the CPU; use hardware=bf16 for mixed precision on a CPU"
        )
    return trainer
