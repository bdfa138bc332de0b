"""Which transport map a command runs: a training checkpoint, or a bundled pretrained entry.

``rcot-restore`` and ``rcot-export`` take ``ckpt_path=`` (a checkpoint of
``rcot-train``) or ``pretrained=`` (a name of :func:`rcot_lightning.pretrained.available`;
``model=`` on their command lines means the same); with neither they use
:data:`~rcot_lightning.pretrained.DEFAULT_MODEL`. A checkpoint wins over a model name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from torch import nn

from rcot_lightning.cli.checks import probe_map
from rcot_lightning.errors import RCOTError

if TYPE_CHECKING:
    from rcot_lightning.detect import DegradationDetector

__all__ = ["ChosenMap", "choose_map", "model_alias"]

log = logging.getLogger(__name__)


class ChosenMap(NamedTuple):
    """The map to run (eval mode; EMA weights when the run kept them) and where it came from."""

    #: Declares its size multiple (``size_multiple``) and pads to it itself.
    net: nn.Module
    #: For the user: ``bundled model denoise-blind (...)`` or ``checkpoint <path>``.
    source: str
    #: The bicubic enlargement its input gets first (a bundled super-resolution entry's
    #: ``upscale``); 1 for checkpoints, which do not record their task.
    upscale: int = 1
    #: Names the degradation of each image from the map's residual (a bundled entry that ships
    #: one, :func:`rcot_lightning.pretrained.load_detector`); None otherwise.
    detector: DegradationDetector | None = None


def _from_checkpoint(
    ckpt_path: str | Path, map_location: Any, trust: bool, trusted_targets: Any
) -> ChosenMap:
    from hydra.errors import HydraException

    from rcot_lightning.checkpoints.load import load_module

    try:
        module = load_module(ckpt_path, map_location, trust, trusted_targets)
    except RCOTError:
        raise
    except (HydraException, ImportError, AttributeError, TypeError, KeyError) as err:
        # The stored config names a class or an argument this version does not have.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RCOTError(
            f"ckpt_path: {ckpt_path}: its stored model config cannot be rebuilt by this "
            f"version of rcot-lightning ({reason}); retrain, or load it with the version that "
            "wrote it"
        ) from err
    return ChosenMap(module.map_for_inference.eval(), f"checkpoint {ckpt_path}")


def model_alias(argv: Sequence[str]) -> list[str]:
    """Command-line arguments with ``model=NAME`` spelled ``pretrained=NAME``.

    The configs share their folder with the training config, where ``model`` is a config group,
    so Hydra would read ``model=NAME`` as a group choice and fail; the config key is therefore
    ``pretrained``, and this keeps ``model=NAME`` working on the command line.

    >>> model_alias(["rcot-restore", "model=denoise-blind", "input=a.png", "model.x=1"])
    ['rcot-restore', 'pretrained=denoise-blind', 'input=a.png', 'model.x=1']
    """
    return [f"pretrained={a[len('model=') :]}" if a.startswith("model=") else a for a in argv]


def choose_map(
    ckpt_path: str | Path | None,
    pretrained: str | None,
    map_location: Any = "cpu",
    trust_checkpoint: bool = False,
    trusted_targets: Sequence[str] | None = None,
) -> ChosenMap:
    """The map of ``ckpt_path`` if given, else of the bundled ``pretrained`` entry (the default
    entry if None), checked to return finite values (:func:`rcot_lightning.cli.checks.probe_map`).

    ``trust_checkpoint`` and ``trusted_targets``: as for
    :func:`rcot_lightning.checkpoints.load.load_module`.

    Raises:
        RCOTError: a missing or unreadable checkpoint, one whose stored config this version
            cannot rebuild, or an unknown model name (the message lists the known ones).
    """
    from rcot_lightning.pretrained import DEFAULT_MODEL, _known, _load_map_and_detector

    if ckpt_path is not None and str(ckpt_path) != "":
        if pretrained is not None:
            log.warning("ckpt_path=%s given: pretrained=%s is ignored", ckpt_path, pretrained)
        chosen = _from_checkpoint(ckpt_path, map_location, trust_checkpoint, trusted_targets)
        probe_map(chosen.net, f"ckpt_path: {ckpt_path}")
        return chosen
    name = DEFAULT_MODEL if pretrained is None else str(pretrained)
    entry = _known(name)
    net, detector = _load_map_and_detector(name, map_location)
    chosen = ChosenMap(net, f"bundled model {entry.summary()}", entry.upscale, detector)
    probe_map(chosen.net, f"model={name}")
    return chosen
