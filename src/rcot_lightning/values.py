"""Plain-value checks, standard library only: the one home for the checks every layer repeats.

Tensor checks live in :mod:`rcot_lightning.shapes`, checks of a CLI value in
``rcot_lightning.cli.checks``; the checks here are for numbers, flags, choices and folders that
torch-only classes, data modules and settings objects take.

Each returns the value it accepted and raises with one wording everywhere:

* by default an :class:`~rcot_lightning.errors.ArgumentError` naming the argument (an entry
  point that built the object from a config node names the key, see ``ArgumentError.at``);
* with ``keyed=True`` a plain :class:`~rcot_lightning.errors.RCOTError` whose ``name`` already
  is the full config key (``data.batch_size``), so that nothing prefixes it again.

Example:
    >>> positive_int(3, "batch_size")
    3
    >>> positive_int(0, "data.batch_size", keyed=True)
    Traceback (most recent call last):
    ...
    rcot_lightning.errors.RCOTError: data.batch_size must be a positive integer, got 0
    >>> at_least(-1, "crop_border", 0)
    Traceback (most recent call last):
    ...
    rcot_lightning.errors.ArgumentError: crop_border must be an integer >= 0, got -1
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from rcot_lightning.errors import ArgumentError, RCOTError

__all__ = [
    "as_settings",
    "at_least",
    "count_or_fraction",
    "existing_folder",
    "flag",
    "int_tuple",
    "is_integer",
    "one_of",
    "positive_int",
    "positive_number",
    "probability",
    "tile_size",
]

T = TypeVar("T")


def _fail(name: str, problem: str, keyed: bool) -> NoReturn:
    if keyed:
        raise RCOTError(f"{name} {problem}")
    raise ArgumentError(name, problem)


def is_integer(value: Any) -> bool:
    """True for an ``int`` that is not a ``bool`` (``True`` is no batch size)."""
    return isinstance(value, int) and not isinstance(value, bool)


def at_least(
    value: Any, name: str, minimum: int, *, allow_none: bool = False, keyed: bool = False
) -> Any:
    """``value`` if it is an integer ``>= minimum`` (or None with ``allow_none``).

    Example:
        >>> at_least(None, "tile", 8, allow_none=True) is None
        True
        >>> at_least(True, "tile", 8, allow_none=True)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: tile must be an integer >= 8 or null, got True
    """
    if value is None and allow_none:
        return None
    if not (is_integer(value) and value >= minimum):
        null = " or null" if allow_none else ""
        _fail(name, f"must be an integer >= {minimum}{null}, got {value!r}", keyed)
    return value


def int_tuple(values: Any, name: str, length: int, minimum: int) -> tuple[int, ...]:
    """``values`` as a tuple if it is a sequence of ``length`` integers ``>= minimum``.

    Example:
        >>> int_tuple([1, 0, 2, 2], "heads", 4, minimum=1)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: heads[1] must be an integer >= 1, got 0
    """
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != length:
        raise ArgumentError(name, f"must be a sequence of {length} integers, got {values!r}")
    return tuple(at_least(v, f"{name}[{i}]", minimum) for i, v in enumerate(values))


def positive_int(value: Any, name: str, *, allow_none: bool = False, keyed: bool = False) -> Any:
    """``value`` if it is an integer ``>= 1`` (or None with ``allow_none``).

    Example:
        >>> positive_int(0, "scale", allow_none=True)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: scale must be a positive integer or null, got 0
    """
    if value is None and allow_none:
        return None
    if not (is_integer(value) and value >= 1):
        null = " or null" if allow_none else ""
        _fail(name, f"must be a positive integer{null}, got {value!r}", keyed)
    return value


def tile_size(value: Any, name: str = "tile", multiple: int = 8, *, keyed: bool = False) -> Any:
    """``value`` as a tile side: a positive whole multiple of ``multiple``, or None.

    A whole float (``64.0``, what a page's number box gives) and such text (``"256"``,
    ``"null"``) are taken; fractions, zero, negatives, NaN, infinity and other multiples are not.

    Example:
        >>> tile_size(512), tile_size(None), tile_size("256"), tile_size(64.0)
        (512, None, 256, 64)
        >>> tile_size(float("nan"))
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: tile must be a positive multiple of 8 or null, got nan
        >>> tile_size(64.5, "demo.max_tile", keyed=True)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: demo.max_tile must be a positive multiple of 8 or null, \
got 64.5
    """
    if value is None:
        return None
    problem = f"must be a positive multiple of {multiple} or null, got {value!r}"
    number = value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("null", "none"):
            return None
        try:
            number = float(text)
        except ValueError:
            _fail(name, problem, keyed)
    if isinstance(number, bool) or not isinstance(number, int | float):
        _fail(name, problem, keyed)
    if not math.isfinite(number) or number != int(number) or number <= 0 or int(number) % multiple:
        _fail(name, problem, keyed)
    return int(number)


def probability(value: Any, name: str, *, keyed: bool = False) -> float:
    """``value`` as a float if it is a number in ``[0, 1]`` (not a bool).

    Example:
        >>> probability(1.5, "data.paired_fraction", keyed=True)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: data.paired_fraction must be in [0, 1], got 1.5
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        _fail(name, f"must be in [0, 1], got {value!r}", keyed)
    return float(value)


def positive_number(value: Any, name: str, *, allow_none: bool = False, keyed: bool = False) -> Any:
    """``value`` as a float if it is a finite number ``> 0`` (not a bool; or None with
    ``allow_none``).

    Example:
        >>> positive_number(2, "max_megapixels")
        2.0
        >>> positive_number("abc", "max_megapixels", keyed=True)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: max_megapixels must be a finite number > 0, got 'abc'
    """
    if value is None and allow_none:
        return None
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not (number and 0.0 < value < float("inf")):
        null = " or null" if allow_none else ""
        _fail(name, f"must be a finite number > 0{null}, got {value!r}", keyed)
    return float(value)


def count_or_fraction(
    value: Any, name: str, *, allow_none: bool = False, keyed: bool = False
) -> Any:
    """``value`` if it is a whole count ``>= 0`` or a fraction (a float in ``[0, 1]``), as
    Lightning's ``limit_*_batches`` take them (or None with ``allow_none``).

    Example:
        >>> count_or_fraction(0.25, "limit_val_batches"), count_or_fraction(3, "limit_val_batches")
        (0.25, 3)
        >>> count_or_fraction(1.5, "trainer.limit_val_batches", keyed=True)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: trainer.limit_val_batches must be a fraction in [0.0, \
1.0] or a whole number >= 0, got 1.5
    """
    if value is None and allow_none:
        return None
    if is_integer(value) and value >= 0:
        return int(value)
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return value
    null = " or null" if allow_none else ""
    expected = f"a fraction in [0.0, 1.0] or a whole number >= 0{null}"
    _fail(name, f"must be {expected}, got {value!r}", keyed)


def flag(value: Any, name: str, *, keyed: bool = False) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 1, not ``"yes"``).

    Example:
        >>> flag(1, "augment")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: augment must be true or false, got 1
    """
    if not isinstance(value, bool):
        _fail(name, f"must be true or false, got {value!r}", keyed)
    return value


def one_of(value: T, name: str, choices: Iterable[object], *, keyed: bool = False) -> T:
    """``value`` if it is one of ``choices``.

    Example:
        >>> one_of("huber", "transport_cost", ("rms", "l1"))
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.ArgumentError: transport_cost must be one of 'rms', 'l1', got 'huber'
    """
    choices = tuple(choices)
    if value not in choices:
        _fail(name, f"must be one of {', '.join(map(repr, choices))}, got {value!r}", keyed)
    return value


def existing_folder(path: Path, key: str, *, missing_hint: str = "", hint: str = "") -> Path:
    """``path`` if it is an existing folder; the message names ``key`` and the path.

    Args:
        path: the folder.
        key: the config key that named it (the message starts with it).
        missing_hint: appended when the path does not exist (what to point it at).
        hint: appended to every message (e.g. the expected layout).

    Example:
        >>> existing_folder(Path("/no/such"), "data.root", missing_hint="; point it at data")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: data.root: /no/such does not exist; point it at data
    """
    if not path.exists():
        raise RCOTError(f"{key}: {path} does not exist{missing_hint}{hint}")
    if not path.is_dir():
        raise RCOTError(f"{key}: {path} is a file, not a folder{hint}")
    return path


Settings = TypeVar("Settings")


def as_settings(cls: type[Settings], value: Any, key: str, **defaults: Any) -> Settings:
    """``value`` as a ``cls`` settings dataclass: an instance as it is, a mapping (Hydra, the
    Python API) or ``None`` built with ``defaults`` for the fields it leaves out.

    The one way an option group given as a dataclass or a mapping becomes the dataclass
    (``RCOTModule(clipping=...)``, ``data.crops``, ...). Errors name ``key``: a value that is
    not a mapping, a field ``cls`` does not have, and a bad field (an :class:`ArgumentError` of
    ``cls`` is named under ``key``).

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Crops:
        ...     patch_size: int = 64
        ...     def __post_init__(self):
        ...         positive_int(self.patch_size, "patch_size")
        >>> as_settings(Crops, None, "data.crops"), as_settings(Crops, {}, "x", patch_size=8)
        (Crops(patch_size=64), Crops(patch_size=8))
        >>> as_settings(Crops, {"patch": 8}, "data.crops")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: data.crops has no field patch; its fields: patch_size
        >>> as_settings(Crops, {"patch_size": 0}, "data.crops")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: data.crops.patch_size must be a positive integer, got 0
    """
    if isinstance(value, cls):
        return value
    if value is None:
        value = {}
    known = ", ".join(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    if not isinstance(value, Mapping):
        raise RCOTError(f"{key} must be a {cls.__name__} or a mapping of {known}, got {value!r}")
    unknown = sorted(set(map(str, value)) - set(known.split(", ")))
    if unknown:
        raise RCOTError(f"{key} has no field {', '.join(unknown)}; its fields: {known}")
    try:
        return cls(**{**defaults, **{str(k): v for k, v in value.items()}})
    except ArgumentError as err:
        raise RCOTError(err.at(key)) from None
