"""What a file a user points at may do: load tensors and plain values, nothing else.

Checkpoints are what researchers download from strangers. Two things in one could run code:

* Its pickle. :func:`read_checkpoint` loads with ``torch.load(weights_only=True)``, which
  accepts tensors and plain containers only; a file that needs more is refused in one line
  unless the user passes ``trust_checkpoint=true``.
* Its stored build config. It is never instantiated by Hydra nor resolved by OmegaConf: it is a
  declarative spec of registry names and plain values, checked whole and built by
  :mod:`rcot_lightning.checkpoints.spec`. A user's own classes are built only from the modules
  named in ``trusted_targets=[my_project.nets]`` (:func:`resolve_within`).
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import torch

from rcot_lightning.errors import RCOTError

__all__ = [
    "TARGETS_KEY",
    "TRUST_KEY",
    "plain",
    "read_checkpoint",
    "resolve_within",
    "trust_settings",
]

#: The config key that lets a checkpoint be unpickled in full (it can then run code).
TRUST_KEY = "trust_checkpoint"
#: The config key naming further modules whose classes a stored config may build.
TARGETS_KEY = "trusted_targets"


def plain(value: Any, resolve: bool = True) -> Any:
    """``value`` with OmegaConf nodes and mappings as dicts and lists, paths as text.

    Checkpoints must hold plain containers to load weights-only; a DictConfig pickles as
    OmegaConf's own classes.

    Args:
        value: what to convert.
        resolve: resolve OmegaConf interpolations: for the library's and the user's own
            configs; never for what a file holds (``read_checkpoint`` passes False, so an
            interpolation stays the text it is, which the spec check then refuses).

    Example:
        >>> from omegaconf import OmegaConf
        >>> plain({"a": OmegaConf.create({"b": [1, {"c": 2}]})})
        {'a': {'b': [1, {'c': 2}]}}
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=resolve)
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, (int, str)) else str(k): plain(v, resolve) for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(plain(v, resolve) for v in value)
    if isinstance(value, list):
        return [plain(v, resolve) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def _needed_global(err: BaseException) -> str:
    """The class or function a weights-only refusal names (``GLOBAL x.y``), for the message."""
    text = str(err)
    for marker in ("Unsupported global: GLOBAL ", "GLOBAL "):
        if marker in text:
            return text.split(marker, 1)[1].split()[0].rstrip(".,")
    return text.strip().splitlines()[0][:120] if text.strip() else type(err).__name__


def read_checkpoint(
    path: str | Path, map_location: Any = "cpu", trust: bool = False, key: str = "ckpt_path"
) -> Any:
    """``torch.load`` of a file a user named: weights-only unless ``trust``.

    Args:
        path: the file.
        map_location: passed to :func:`torch.load`.
        trust: unpickle in full (``trust_checkpoint=true``): the file can then run code.
        key: the config key that named the file, for messages.

    Returns:
        What the file holds; with ``trust``, OmegaConf nodes inside are plain containers.

    Raises:
        RCOTError: missing, a folder, unreadable, or needing more than weights-only allows.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        found = sorted(p.name for p in path.rglob("*.ckpt"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise RCOTError(
            f"{key}: {path} is a folder{hint}; pass a checkpoint file, e.g. "
            "<run folder>/checkpoints/last.ckpt"
        )
    if not path.is_file():
        raise RCOTError(
            f"{key}: {path} does not exist; pass a .ckpt file written by rcot_lightning.train "
            "(e.g. <run folder>/checkpoints/last.ckpt)"
        )
    if trust:
        try:
            loaded = torch.load(path, map_location=map_location, weights_only=False)
            return plain(loaded, resolve=False)
        except Exception as err:
            raise RCOTError(f"{key}: {path} is not a readable PyTorch checkpoint ({err})") from err
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # Junk bytes fail in the same unpickler ("Unsupported operand"): only a refused class
        # or function means the file holds more than weights.
        if not any(word in str(err) for word in ("GLOBAL", "unrecognized function")):
            raise RCOTError(
                f"{key}: {path} is not a readable PyTorch checkpoint (its bytes are not a "
                "pickle torch.save wrote)"
            ) from err
        raise RCOTError(
            f"{key}: {path} holds more than tensors and plain values ({_needed_global(err)}); "
            "loading it could run code, so it was refused. A checkpoint of rcot-lightning 0.3 "
            f"or older: rewrite it once with rcot-upgrade-checkpoint {path} --trust-checkpoint; "
            f"any file whose source you trust: pass {TRUST_KEY}=true"
        ) from None
    except Exception as err:
        raise RCOTError(
            f"{key}: {path} is not a readable PyTorch checkpoint ({_first_line(err)})"
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


#: What :func:`_resolve` returns for a name an allowed module does not have.
_MISSING = object()


def _resolve(target: str, prefixes: Sequence[str]) -> Any:
    """The object ``target`` names, reached only through allowed modules and their classes.

    Returns None when the path leaves the allowed modules on the way (``rcot_lightning.cli.app.os``
    is the ``os`` module) or names a private attribute; :data:`_MISSING` when an allowed module
    has no such attribute (a class of another version).
    """
    parts = target.split(".")
    if any(not p or p.startswith("_") for p in parts):
        return None
    obj: Any = None
    for i in range(len(parts), 0, -1):  # the longest importable allowed module
        name = ".".join(parts[:i])
        if not _within(name, prefixes):
            continue
        try:
            obj = importlib.import_module(name)
        except ImportError:
            continue
        rest = parts[i:]
        break
    else:
        return None
    for part in rest:
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
        module = obj if isinstance(obj, types.ModuleType) else None
        owner = module.__name__ if module is not None else getattr(obj, "__module__", "")
        if not _within(str(owner or ""), prefixes):
            return None
    return obj


def resolve_within(target: str, trusted: Iterable[str]) -> Any:
    """The class or function ``target`` names when it lies in a module the user trusts.

    Args:
        target: an import path, ``my_project.nets.MyMap``.
        trusted: the modules named by ``trusted_targets``.

    Returns:
        The object, or None when the path leaves the trusted modules on the way, names a
        private attribute, does not exist, or is neither a class nor a function.

    Example:
        >>> resolve_within("collections.OrderedDict", ["collections"]).__name__
        'OrderedDict'
        >>> resolve_within("collections.os.remove", ["collections"]) is None
        True
    """
    prefixes = [str(t).strip() for t in trusted if str(t).strip()]
    obj = _resolve(target, prefixes) if prefixes else None
    if obj is None or obj is _MISSING or not (inspect.isclass(obj) or callable(obj)):
        return None
    if isinstance(obj, types.ModuleType):
        return None
    return obj


def trust_settings(cfg: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """``(trust_checkpoint, trusted_targets)`` of an entry point's config, checked.

    Raises:
        RCOTError: naming the key, for a value of the wrong kind.

    Example:
        >>> trust_settings({"trust_checkpoint": False, "trusted_targets": ["my_project.nets"]})
        (False, ['my_project.nets'])
    """
    trust = cfg.get(TRUST_KEY, False)
    if not isinstance(trust, bool):
        raise RCOTError(f"{TRUST_KEY} must be true or false, got {trust!r}")
    targets = cfg.get(TARGETS_KEY) or []
    if isinstance(targets, str) or not all(isinstance(t, str) for t in targets):
        raise RCOTError(
            f"{TARGETS_KEY} must be a list of module names, e.g. {TARGETS_KEY}=[my_project.nets], "
            f"got {targets!r}"
        )
    return trust, list(targets)
