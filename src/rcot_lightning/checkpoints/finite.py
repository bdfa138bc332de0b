"""The one finiteness check of weights: a checkpoint's state dict or a live module's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rcot_lightning.errors import RCOTError

__all__ = ["check_finite", "first_nonfinite"]


def first_nonfinite(tensors: Mapping[str, Any]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity; ``None`` if none.

    Args:
        tensors: a state dict (``module.state_dict()`` or a checkpoint's ``state_dict``); other
            values are passed over.

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> first_nonfinite(net.state_dict()) is None
        True
        >>> with torch.no_grad():
        ...     net.bias[0] = float("nan")
        >>> first_nonfinite(net.state_dict())
        'bias'
    """
    for key, value in tensors.items():
        floating = isinstance(value, torch.Tensor) and value.is_floating_point()
        if floating and not bool(torch.isfinite(value).all()):
            return str(key)
    return None


def check_finite(state_dict: Mapping[str, Any], path: Path | str) -> None:
    """Refuse weights with NaN or infinity: they restore black or NaN images.

    Raises:
        RCOTError: naming the checkpoint and the first non-finite tensor.

    Example:
        >>> check_finite({"w": torch.zeros(2)}, "ok.ckpt")
        >>> check_finite({"w": torch.tensor([1.0, float("nan")])}, "bad.ckpt")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: ckpt_path: bad.ckpt has non-finite weights (w); ...
    """
    key = first_nonfinite(state_dict)
    if key is not None:
        raise RCOTError(
            f"ckpt_path: {path} has non-finite weights ({key}); the run diverged "
            "before it was saved: use an earlier checkpoint of the run (best-*.ckpt) "
            "or retrain with a lower learning rate"
        )
