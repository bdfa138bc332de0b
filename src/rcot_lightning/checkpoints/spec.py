"""A stored model is a declarative spec: registry names and plain values, never instructions.

A checkpoint of ``rcot-train`` stores the config that rebuilds its module
(``"rcot_build_config"``); a bundle stores its map's. Read from a file, that config is data
somebody else may have written, so it is never given to Hydra or OmegaConf (whose
``_target_``, ``_args_`` and interpolations such as ``${oc.create:...}`` would run code) but
checked whole by :func:`check_spec` and then built by :func:`build_spec`:

* Nodes that build something sit only where the library builds something: the module at the
  top, and its ``transport_map``, ``potential``, ``objective``, optimisers and schedulers
  (:data:`SLOTS`). Each names a class of the library's own :data:`REGISTRY` by its name
  (``TwoPassMap``, ``RMSprop``), or by one of the import paths configs write
  (``rcot_lightning.nets.TwoPassMap``), of the kind its slot takes: a potential cannot be an
  optimiser. Optimisers and schedulers are ``_partial_`` factories, nothing else is.
* A user's own classes are built only from modules the user names (``trusted_targets``), and
  inside their nodes only further nodes of those modules or the registry's networks.
* Every other value is a plain number, string, bool, None, list or dict. A string holding
  ``${`` is refused, never resolved; so are Hydra's other instructions (``_args_``,
  ``_recursive_``, ``_convert_``) and private or dunder names, at any depth.

Nothing is built unless the whole spec passes, and every refusal is one line naming the key.
Checkpoints of this format record :data:`~rcot_lightning.checkpoints.keys.FORMAT_VERSION` under
:data:`~rcot_lightning.checkpoints.keys.FORMAT_KEY`; older ones go through
:mod:`rcot_lightning.checkpoints.upgrade` first.

Example:
    >>> spec = {"_target_": "TwoPassMap", "dim": 4, "num_blocks": [1, 1, 1, 1],
    ...         "heads": [1, 1, 1, 1]}
    >>> type(build_spec(check_spec(spec, kind="map"), kind="map")).__name__
    'TwoPassMap'
    >>> check_spec({"_target_": "TwoPassMap", "dim": "${oc.env:HOME}"}, kind="map")
    Traceback (most recent call last):
    ...
    rcot_lightning.errors.RCOTError: the stored config: dim='${oc.env:HOME}' is an interpolat...
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rcot_lightning.checkpoints.keys import FORMAT_KEY, FORMAT_VERSION
from rcot_lightning.checkpoints.trust import TARGETS_KEY, resolve_within
from rcot_lightning.errors import RCOTError

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "REGISTRY",
    "SLOTS",
    "build_spec",
    "check_spec",
    "import_paths",
    "registry_name",
    "to_spec",
]

_TARGET, _PARTIAL = "_target_", "_partial_"

#: What each kind of node builds from, and whether it is stored as a ``_partial_`` factory.
_PARTIAL_KINDS = frozenset({"optimizer", "scheduler"})


@dataclass(frozen=True)
class Entry:
    """A class a stored config may build by name.

    Attributes:
        kind: ``module``, ``map``, ``potential``, ``objective``, ``optimizer`` or ``scheduler``.
        where: ``package.module:Class``, imported only when the entry is built.
        aliases: the import paths configs and older checkpoints write for it.
    """

    kind: str
    where: str
    aliases: tuple[str, ...] = ()

    def load(self) -> Any:
        module, name = self.where.split(":")
        return getattr(importlib.import_module(module), name)


def _torch(kind: str, module: str, names: Iterable[str]) -> dict[str, Entry]:
    return {n: Entry(kind, f"{module}:{n}", (f"{module}.{n}",)) for n in names}


#: The classes a stored config may build without ``trusted_targets``, by registry name. None of
#: them touches files, signals, the network or the environment when it is constructed.
REGISTRY: dict[str, Entry] = {
    "RCOTModule": Entry(
        "module",
        "rcot_lightning.module:RCOTModule",
        ("rcot_lightning.RCOTModule", "rcot_lightning.module.RCOTModule"),
    ),
    "TwoPassMap": Entry(
        "map",
        "rcot_lightning.nets.two_pass:TwoPassMap",
        (
            "rcot_lightning.TwoPassMap",
            "rcot_lightning.nets.TwoPassMap",
            "rcot_lightning.nets.two_pass.TwoPassMap",
        ),
    ),
    "RestormerUNet": Entry(
        "map",
        "rcot_lightning.nets.restormer:RestormerUNet",
        ("rcot_lightning.nets.RestormerUNet", "rcot_lightning.nets.restormer.RestormerUNet"),
    ),
    "Potential": Entry(
        "potential",
        "rcot_lightning.nets.potential:Potential",
        (
            "rcot_lightning.Potential",
            "rcot_lightning.nets.Potential",
            "rcot_lightning.nets.potential.Potential",
        ),
    ),
    "FROTObjective": Entry(
        "objective",
        "rcot_lightning.objective:FROTObjective",
        ("rcot_lightning.FROTObjective", "rcot_lightning.objective.FROTObjective"),
    ),
    **_torch(
        "optimizer",
        "torch.optim",
        ("Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "SGD"),
    ),
    **_torch(
        "scheduler",
        "torch.optim.lr_scheduler",
        (
            "ConstantLR",
            "CosineAnnealingLR",
            "CosineAnnealingWarmRestarts",
            "ExponentialLR",
            "LinearLR",
            "MultiStepLR",
            "OneCycleLR",
            "PolynomialLR",
            "StepLR",
        ),
    ),
}

_BY_ALIAS = {alias: name for name, entry in REGISTRY.items() for alias in (name, *entry.aliases)}

#: The module's arguments that hold a built object, and the kind each takes.
SLOTS = {
    "transport_map": "map",
    "potential": "potential",
    "objective": "objective",
    "map_optimizer": "optimizer",
    "potential_optimizer": "optimizer",
    "map_scheduler": "scheduler",
    "potential_scheduler": "scheduler",
}

#: Kinds a user's own class may stand for (with ``trusted_targets``).
_NESTED_KINDS = ("map", "potential")


def registry_name(target: str) -> str | None:
    """The registry name of ``target`` (a name or an alias), or None if the registry lacks it.

    Example:
        >>> registry_name("torch.optim.RMSprop"), registry_name("os.remove")
        ('RMSprop', None)
    """
    return _BY_ALIAS.get(target)


def _with_targets(config: Mapping[str, Any], rename: Callable[[str], str]) -> dict[str, Any]:
    """A copy of ``config`` with every text ``_target_`` passed through ``rename``."""

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {
                k: rename(v) if k == _TARGET and isinstance(v, str) else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        return node

    return dict(walk(config))


def import_paths(config: Mapping[str, Any]) -> dict[str, Any]:
    """A spec with every registry name as the import path of its class (for Hydra).

    Example:
        >>> import_paths({"_target_": "TwoPassMap", "dim": 4})
        {'_target_': 'rcot_lightning.nets.two_pass.TwoPassMap', 'dim': 4}
    """

    return _with_targets(
        config, lambda t: REGISTRY[t].where.replace(":", ".") if t in REGISTRY else t
    )


def to_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """A build config (plain containers) with every known target under its registry name.

    The form a checkpoint stores: it does not change when a class moves between modules.
    Targets the registry lacks (a user's own class) keep their import path.

    Example:
        >>> to_spec({"_target_": "rcot_lightning.RCOTModule",
        ...          "map_optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}})
        {'_target_': 'RCOTModule', 'map_optimizer': {'_target_': 'Adam', '_partial_': True}}
    """

    return _with_targets(config, lambda t: registry_name(t) or t)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """One walk over a spec: refuses the first value that is not plain or not allowed."""

    def __init__(self, trusted: Sequence[str], source: str) -> None:
        self.trusted = tuple(trusted)
        self.source = source

    def fail(self, key: str, problem: str) -> RCOTError:
        return RCOTError(f"{self.source}: {key}{problem}")

    def value(self, value: Any, key: str) -> None:
        if value is None or isinstance(value, bool | int | float):
            return
        if isinstance(value, str):
            if "${" in value:
                raise self.fail(
                    key,
                    f"={_short(value)} is an interpolation, which is never resolved from a "
                    "file: refused (a stored config holds plain values only; rcot-lightning "
                    "writes none, so the file was made or edited elsewhere)",
                )
            return
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, Mapping) and _TARGET in item:
                    raise self.fail(f"{key}[{i}]", self._misplaced())
                self.value(item, f"{key}[{i}]")
            return
        if isinstance(value, Mapping):
            if _TARGET in value:
                raise self.fail(f"{key}.{_TARGET}", self._misplaced())
            for k, v in value.items():
                self.value(v, self.key(k, key))
            return
        raise self.fail(
            key,
            f" holds a {type(value).__name__}; a stored config holds only numbers, strings, "
            "bools, null, lists and dicts",
        )

    def _misplaced(self) -> str:
        return (
            f" builds an object, which a stored config may do only for the module, "
            f"{', '.join(SLOTS)}: refused"
        )

    def key(self, name: Any, where: str) -> str:
        here = f"{where}.{name}" if where else str(name)
        if not isinstance(name, str):
            raise self.fail(here, " is not a text key: refused")
        if "${" in name:
            raise self.fail(here, " is an interpolation in a key: refused")
        if name not in (_TARGET, _PARTIAL) and (
            name.startswith("__") or (len(name) > 1 and name.startswith("_") and name.endswith("_"))
        ):
            raise self.fail(
                here,
                " is an instruction to Hydra or a private name, which a stored config may not "
                "hold: refused",
            )
        return here

    def target(self, node: Mapping[str, Any], kind: str, key: str) -> None:
        """Check ``node``'s target may stand for ``kind``; raise otherwise."""
        where = f"{key}.{_TARGET}" if key else _TARGET
        target = node[_TARGET]
        if not isinstance(target, str):
            raise self.fail(where, f"={_short(target)} is not a name: refused")
        name = registry_name(target)
        if name is not None:
            if REGISTRY[name].kind != kind:
                raise self.fail(
                    where,
                    f"={target} is a {REGISTRY[name].kind}, and this key takes a {kind}: refused",
                )
            return
        if _trusted(target, self.trusted) is None:
            choices = ", ".join(n for n, e in REGISTRY.items() if e.kind == kind)
            if target.split(".")[0] == "rcot_lightning":
                raise self.fail(
                    where,
                    f"={_short(target)[1:-1]} is not a {kind} this version of rcot-lightning "
                    f"builds from a file ({choices}), so nothing was built; retrain, or load the "
                    "file with the version that wrote it",
                )
            module = target.rsplit(".", 1)[0] if "." in target else target
            if module.split(".")[0] in sys.stdlib_module_names:
                raise self.fail(
                    where,
                    f"={_short(target)[1:-1]} is not a {kind} this library builds from a file "
                    f"({choices}): nothing was built, and no config can make it build "
                    f"{module.split('.')[0]} objects from a file",
                )
            raise self.fail(
                where,
                f"={_short(target)[1:-1]} is not a {kind} this library builds from a file "
                f"({choices}), so nothing was built; a class of your own: pass "
                f"{TARGETS_KEY}=[{module}] if you trust the file",
            )

    def node(self, node: Mapping[str, Any], kind: str, key: str) -> None:
        """Check a node that builds a ``kind`` and everything under it."""
        self.target(node, kind, key)
        own = registry_name(str(node[_TARGET])) is None
        partial = node.get(_PARTIAL, False)
        if partial is not (kind in _PARTIAL_KINDS):
            raise self.fail(
                f"{key}.{_PARTIAL}" if key else _PARTIAL,
                f"={partial!r}: optimisers and schedulers, and only they, are stored as "
                "factories (_partial_: true): refused",
            )
        for name, value in node.items():
            here = self.key(name, key)
            if name in (_TARGET, _PARTIAL):
                continue
            if isinstance(value, Mapping) and _TARGET in value:
                child = SLOTS.get(str(name)) if kind == "module" else None
                if child is None and own:
                    # A user's class may nest networks: of the registry or of their modules.
                    child = _nested_kind(value)
                if child is None:
                    raise self.fail(f"{here}.{_TARGET}", self._misplaced())
                self.node(value, child, here)
            else:
                self.value(value, here)


def _nested_kind(node: Mapping[str, Any]) -> str:
    name = registry_name(str(node.get(_TARGET)))
    entry = REGISTRY.get(name) if name else None
    return entry.kind if entry is not None and entry.kind in _NESTED_KINDS else "map"


def _trusted(target: str, trusted: Sequence[str]) -> Any:
    """The object ``target`` names when it lies in a module the user trusts, else None."""
    return resolve_within(target, trusted) if trusted else None


def check_spec(
    config: Any,
    trusted_targets: Iterable[str] | None = None,
    source: str = "the stored config",
    kind: str = "module",
) -> dict[str, Any]:
    """Check a stored build config whole before anything is built; return it as a dict.

    Args:
        config: the stored config (plain containers), of today's format (older files go
            through :func:`rcot_lightning.checkpoints.upgrade.upgrade_config` first).
        trusted_targets: modules of the user's whose classes and functions it may build.
        source: what holds it (the file, and the key that named the file), for messages.
        kind: what its top node builds (``module`` for a checkpoint, ``map`` for a bundle).

    Returns:
        ``config`` as a plain dict.

    Raises:
        RCOTError: one line naming the first refused key.
    """
    checker = _Checker([str(t).strip() for t in trusted_targets or [] if str(t).strip()], source)
    if not isinstance(config, Mapping) or _TARGET not in config:
        raise RCOTError(f"{source}: the stored {kind} config is not a mapping with a _target_")
    checker.node(config, kind, "")
    return dict(config)


def build_spec(
    spec: Mapping[str, Any],
    trusted_targets: Iterable[str] | None = None,
    source: str = "the stored config",
    kind: str = "module",
) -> Any:
    """Build what a spec passed by :func:`check_spec` describes (call that first).

    Registry names and aliases are looked up, never imported as given; a user's class is
    imported only from its trusted module. ``_partial_`` nodes become
    :func:`functools.partial` factories.

    Raises:
        RCOTError: an argument the class does not take, or a value it refuses, naming the key.
    """
    trusted = [str(t).strip() for t in trusted_targets or [] if str(t).strip()]

    def build(node: Mapping[str, Any], node_kind: str, key: str) -> Any:
        target = str(node[_TARGET])
        name = registry_name(target)
        factory = REGISTRY[name].load() if name is not None else _trusted(target, trusted)
        if factory is None:  # check_spec was not called
            raise RCOTError(f"{source}: {key or _TARGET}={target} is not buildable")
        kwargs: dict[str, Any] = {}
        for arg, value in node.items():
            if arg in (_TARGET, _PARTIAL):
                continue
            here = f"{key}.{arg}" if key else str(arg)
            if isinstance(value, Mapping) and _TARGET in value:
                child = SLOTS.get(str(arg)) if node_kind == "module" else _nested_kind(value)
                kwargs[str(arg)] = build(value, child or "map", here)
            else:
                kwargs[str(arg)] = _copy(value)
        if node.get(_PARTIAL, False):
            return functools.partial(factory, **kwargs)
        try:
            return factory(**kwargs)
        except RCOTError as err:
            raise RCOTError(f"{source}: {key or 'model'}: {err}") from err
        except (TypeError, ValueError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RCOTError(
                f"{source} config cannot be rebuilt by this version of rcot-lightning "
                f"({key or _TARGET}={name or target}: {reason}); retrain, or load it with the "
                "version that wrote it"
            ) from err

    return build(spec, kind, "")


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value
