"""Data: degradations, image files, datasets and DataModules (knows nothing of the model).

The package exports the public names of its submodules (each submodule's ``__all__`` is the one
list of them). Names are imported lazily, on first use, so ``import
rcot_lightning.data.degradations`` does not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rcot_lightning.data.allinone import *  # noqa: F403
    from rcot_lightning.data.datamodules import *  # noqa: F403
    from rcot_lightning.data.datasets import *  # noqa: F403
    from rcot_lightning.data.degradations import *  # noqa: F403
    from rcot_lightning.data.images import *  # noqa: F403
    from rcot_lightning.data.pairing import *  # noqa: F403
    from rcot_lightning.data.sampling import *  # noqa: F403
    from rcot_lightning.data.specs import *  # noqa: F403

# Looked up in this order: the torch-only modules first, so that their names never import
# Lightning; a name found in none of them is not part of the package.
_SUBMODULES = (
    "degradations",
    "images",
    "pairing",
    "specs",
    "sampling",
    "datasets",
    "datamodules",
    "allinone",
)


def _public(submodule: str) -> tuple[Any, list[str]]:
    module = importlib.import_module(f"{__name__}.{submodule}")
    return module, list(module.__all__)


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted(n for submodule in _SUBMODULES for n in _public(submodule)[1])
    for submodule in _SUBMODULES:
        module, names = _public(submodule)
        if name in names:
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
