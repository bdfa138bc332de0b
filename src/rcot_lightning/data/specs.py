"""The option groups of the data modules as small typed values, and the options that moved.

:class:`FolderSpec` says where a dataset's folders are and how their images pair
(``data.folders.root``, ``data.folders.pairing``, ...). Options of earlier versions are listed in
:data:`RENAMED_OPTIONS` with their spelling today: a data module given one, and a command line
that overrides one, say so in one line. Knows nothing of torch or Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rcot_lightning.errors import RCOTError

__all__ = ["RENAMED_OPTIONS", "refuse_options", "renamed_hint"]

_EVAL = "(a folder of targets, or {degraded: ..., target: ...})"

#: Options of earlier versions and their spelling today; passing one is an error that says so.
RENAMED_OPTIONS: dict[str, str] = {
    "val_target_dir": f"data.val_sets {_EVAL}",
    "val_degraded_dir": f"data.val_sets {_EVAL}",
    "test_target_dir": f"data.test_sets {_EVAL}",
    "test_degraded_dir": f"data.test_sets {_EVAL}",
}


def refuse_options(options: Mapping[str, Any], where: str = "data") -> None:
    """Raise for options a data module does not take; a renamed one names its new spelling.

    Example:
        >>> refuse_options({"val_target_dir": "clean/"})
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: data.val_target_dir was removed; use data.val_sets \
(a folder of targets, or {degraded: ..., target: ...}) instead
    """
    for key in options:
        if key in RENAMED_OPTIONS:
            raise RCOTError(f"{where}.{key} was removed; use {RENAMED_OPTIONS[key]} instead")
        raise RCOTError(f"{where}.{key} is not an option of this data module")


def renamed_hint(message: str) -> str | None:
    """The new spelling of an old data key a failed command-line override names, if any.

    Example:
        >>> renamed_hint("Could not override 'data.test_target_dir'.")
        'data.test_target_dir was removed; use data.test_sets (a folder of targets, or \
{degraded: ..., target: ...}) instead'
    """
    import re

    found = re.search(r"Could not override '(data(?:\.tasks\.\w+)?)\.(\w+)'", message)
    if found is None or found.group(2) not in RENAMED_OPTIONS:
        return None
    where, old = found.groups()
    new = RENAMED_OPTIONS[old].replace("data.", f"{where}.", 1)
    return f"{where}.{old} was removed; use {new} instead"
