"""rcot-lightning: Residual-Conditioned Optimal Transport for image restoration.

``objective`` and ``nets`` need only torch; Lightning-based names are imported lazily so that
``import rcot_lightning.objective`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

__all__ = [
    "ClipSettings",
    "EvalSettings",
    "FROTObjective",
    "Potential",
    "RCOTError",
    "RCOTModule",
    "TwoPassMap",
    "__version__",
]

if TYPE_CHECKING:
    from rcot_lightning.errors import RCOTError
    from rcot_lightning.module import ClipSettings, EvalSettings, RCOTModule
    from rcot_lightning.nets import Potential, TwoPassMap
    from rcot_lightning.objective import FROTObjective

_LAZY = {
    "RCOTModule": "rcot_lightning.module",
    "EvalSettings": "rcot_lightning.module",
    "ClipSettings": "rcot_lightning.module",
    "FROTObjective": "rcot_lightning.objective",
    "TwoPassMap": "rcot_lightning.nets",
    "Potential": "rcot_lightning.nets",
    "RCOTError": "rcot_lightning.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rcot_lightning' has no attribute {name!r}")
