"""Bundled pretrained maps: restore images without training first.

Each entry is two files in the package's ``weights/`` folder: ``<name>.pt``, the transport map
alone (its weights, the EMA copy when the run kept one, and the config that rebuilds it), and
``<name>.yaml``, what it is: what it was trained on, with which config and overrides, for how
long, and its figures on held-out photos. No potential, optimiser state or objective setting is
shipped, so an entry loads the same whatever the training code's objective settings become.

>>> from rcot_lightning.pretrained import available
>>> "denoise-blind" in available()
True
>>> available()["denoise-blind"].info["task"]
'denoise'

Restoring with one (any size; tiles bound the memory)::

    from rcot_lightning.inference import restore_image
    from rcot_lightning.pretrained import load

    net = load("denoise-blind")
    restored = restore_image(net, noisy, tile=512).clamp(0, 1)  # (B, 3, H, W)

Add an entry with :func:`bundle` (from a checkpoint of ``rcot_lightning.cli.train``) and a YAML file
next to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rcot_lightning.errors import RCOTError

if TYPE_CHECKING:
    from rcot_lightning.detect import DegradationDetector

__all__ = [
    "DEFAULT_MODEL",
    "WEIGHTS_DIR",
    "Pretrained",
    "available",
    "bundle",
    "load",
    "load_detector",
]

#: The folder of the bundled entries, inside the installed package.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: The entry ``rcot-restore`` and ``rcot-export`` use when given no checkpoint and no model.
DEFAULT_MODEL = "denoise-blind"

#: Version of the ``.pt`` layout written by :func:`bundle`: 2 stores the map's class by its
#: registry name (:mod:`rcot_lightning.checkpoints.spec`), 1 by its import path; both are read.
BUNDLE_FORMAT = 2
_READ_FORMATS = (1, 2)


@dataclass(frozen=True)
class Pretrained:
    """One bundled entry.

    Attributes:
        name: what :func:`load` takes.
        description: one line.
        weights: the ``.pt`` file.
        info: everything else its YAML file says (task, trained_on, config, overrides,
            iterations, cpu_minutes, heldout figures, ...).
    """

    name: str
    description: str
    weights: Path
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def upscale(self) -> int:
        """How much the map's input is bicubic-enlarged first (``upscale`` in its YAML; 4 for a
        x4 super-resolution map); 1 for a map that keeps the size."""
        return int(self.info.get("upscale", 1))

    def summary(self) -> str:
        """``name: description (trained ...)`` on one line, for listings and reports."""
        trained = self.info.get("iterations")
        extra = f", {trained} iterations" if trained is not None else ""
        return f"{self.name}: {self.description}{extra}"


def _entry(path: Path) -> Pretrained:
    from omegaconf import OmegaConf

    info = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(info, dict):
        raise RCOTError(f"{path}: a bundled model's YAML must be a mapping")
    fields: dict[str, Any] = {str(k): v for k, v in info.items()}
    name = path.stem
    weights = path.with_name(str(fields.pop("weights", f"{name}.pt")))
    return Pretrained(name, str(fields.pop("description", "")), weights, fields)


def available() -> dict[str, Pretrained]:
    """The bundled entries by name (one per ``weights/<name>.yaml``), sorted by name."""
    return {p.stem: _entry(p) for p in sorted(WEIGHTS_DIR.glob("*.yaml"))}


def _known(name: str) -> Pretrained:
    entries = available()
    if name not in entries:
        known = ", ".join(entries) or "none (the package was installed without its weights)"
        raise RCOTError(f"model: no bundled model named {name!r}; known: {known}")
    return entries[name]


def load(name: str = DEFAULT_MODEL, map_location: Any = "cpu") -> nn.Module:
    """The transport map of a bundled entry, in eval mode and without gradients.

    Args:
        name: a key of :func:`available`.
        map_location: passed to :func:`torch.load`.

    Returns:
        The map: ``(B, 3, H, W) -> (B, 3, H, W)`` in [0, 1]; any size (it pads to its multiple
        of 8 inside); use :func:`rcot_lightning.inference.restore_image` to tile large images.

    Raises:
        RCOTError: unknown name (the message lists the known ones), or a missing or unreadable
            weights file.

    Example:
        >>> net = load("denoise-blind")
        >>> net(torch.rand(1, 3, 21, 30)).shape
        torch.Size([1, 3, 21, 30])
    """
    return _load_map_and_detector(name, map_location)[0]


def load_detector(name: str) -> DegradationDetector | None:
    """The degradation detector a bundled entry ships (its ``.pt``'s ``detector``, written by
    ``benchmarks/probe.py --bundle-into``), or None when it ships none.

    Example:
        >>> load_detector("denoise-blind") is None
        True
    """
    return _detector_of(name, _read_bundle(name, "cpu"))


def _read_bundle(name: str, map_location: Any) -> dict[str, Any]:
    """The stored dict of a bundled entry's ``.pt`` (tensors and plain containers: the safe
    unpickler suffices)."""
    entry = _known(name)
    if not entry.weights.is_file():
        raise RCOTError(
            f"model={name}: its weights {entry.weights} are missing; reinstall rcot-lightning"
        )
    try:
        stored = torch.load(entry.weights, map_location=map_location, weights_only=True)
    except Exception as err:
        raise RCOTError(f"model={name}: cannot read {entry.weights} ({err})") from err
    if not isinstance(stored, dict):
        raise RCOTError(f"model={name}: {entry.weights} is not a bundle; reinstall rcot-lightning")
    return stored


def _detector_of(name: str, stored: Mapping[str, Any]) -> DegradationDetector | None:
    from rcot_lightning.detect import DegradationDetector

    if "detector" not in stored:
        return None
    return DegradationDetector.from_dict(
        stored["detector"], f"model={name}: {_known(name).weights}"
    )


def _load_map_and_detector(
    name: str, map_location: Any = "cpu"
) -> tuple[nn.Module, DegradationDetector | None]:
    """The map and the detector of a bundled entry from one read of its ``.pt``
    (``rcot-restore`` needs both)."""
    stored = _read_bundle(name, map_location)
    source = f"model={name}: {_known(name).weights}"
    try:
        net = map_from_bundle(stored, source=source)
    except RCOTError:
        raise
    except Exception as err:
        raise RCOTError(f"{source} cannot be rebuilt ({err})") from err
    return net, _detector_of(name, stored)


def map_from_bundle(
    stored: Mapping[str, Any],
    trusted_targets: Iterable[str] | None = None,
    source: str = "bundle",
) -> nn.Module:
    """Rebuild a map from what :func:`bundle` saved (``transport_map`` spec + ``state_dict``).

    The spec is checked whole and built from the library's registry, never instantiated as the
    file says (:mod:`rcot_lightning.checkpoints.spec`; ``trusted_targets`` names further
    modules of your own); ``source`` names the file in errors.
    """
    from rcot_lightning.checkpoints.spec import build_spec, check_spec

    if stored.get("format") not in _READ_FORMATS:
        raise RCOTError(
            f"{source}: bundle format {stored.get('format')!r}; this version reads "
            f"{', '.join(map(str, _READ_FORMATS))}"
        )
    config = stored.get("transport_map")
    spec = check_spec(config, trusted_targets, f"{source}: transport_map", kind="map")
    net = build_spec(spec, trusted_targets, f"{source}: transport_map", kind="map")
    if not isinstance(net, nn.Module):
        raise RCOTError(f"transport_map built a {type(net).__name__}, not a torch module")
    net.load_state_dict(stored["state_dict"])
    return net.eval().requires_grad_(False)


def bundle(
    ckpt_path: str | Path,
    output: str | Path,
    trust_checkpoint: bool = False,
    trusted_targets: Iterable[str] | None = None,
) -> Path:
    """Write the map of a training checkpoint as a bundle (``.pt``) for this registry.

    Keeps the EMA weights when the run kept them (``model.ema_decay``), else the trained map,
    with the ``model.transport_map`` config that rebuilds it; drops the potential, the
    optimisers and every objective setting.

    Args:
        ckpt_path: a checkpoint written by ``rcot_lightning.cli.train``.
        output: the ``.pt`` file to write.
        trust_checkpoint: unpickle the checkpoint in full (it can then run code); by default it
            is read weights-only (:mod:`rcot_lightning.checkpoints.trust`).
        trusted_targets: modules of your own whose classes its stored config may build.

    Returns:
        ``output``.
    """
    from rcot_lightning.checkpoints.load import stored_spec
    from rcot_lightning.checkpoints.spec import check_spec, to_spec
    from rcot_lightning.checkpoints.trust import read_checkpoint
    from rcot_lightning.checkpoints.upgrade import upgrade_checkpoint

    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path, "cpu", trust=trust_checkpoint)
    if not isinstance(checkpoint, dict):
        raise RCOTError(f"ckpt_path: {path} is not a checkpoint of rcot_lightning.train")
    config = stored_spec(checkpoint)
    weights = upgrade_checkpoint(checkpoint).get("state_dict")
    if not isinstance(config, Mapping) or "transport_map" not in config or weights is None:
        raise RCOTError(f"ckpt_path: {path} is not a checkpoint of rcot_lightning.train")
    # The whole stored spec, as every reader of a checkpoint checks it; only the map is kept.
    check_spec(config, trusted_targets, f"ckpt_path: {path}: its stored model")
    ema = "map_ema.module."
    prefix = ema if any(k.startswith(ema) for k in weights) else "transport_map."
    state = {k[len(prefix) :]: v.clone() for k, v in weights.items() if k.startswith(prefix)}
    spec = config["transport_map"]
    stored = {
        "format": BUNDLE_FORMAT,
        "transport_map": to_spec(spec) if isinstance(spec, Mapping) else spec,
    }
    stored["state_dict"] = state
    # Fails here, not in a user's hands, if it does not rebuild.
    map_from_bundle(stored, trusted_targets, f"ckpt_path: {path}")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    torch.save(stored, output)
    return Path(output)
