"""The batch contract shared by every DataModule and :class:`~rcot_lightning.RCOTModule`.

Training batches are dicts with

* ``degraded`` ``(B, 3, H, W)`` float32 in [0, 1]: samples y of the degraded distribution P;
* ``clean`` ``(B, 3, H, W)``: samples x of the clean distribution Q, what the potential sees as
  real (the target itself for paired data, an independent clean image otherwise);
* ``target`` ``(B, 3, H, W)`` optional: ground truth aligned with ``degraded``;
* ``paired`` ``(B,)`` bool: rows whose ``target`` is valid (the supervised term uses only these);
* ``degradation`` ``(B,)`` long: a :class:`DegradationId` per row (selects the Fourier norm);
* ``sample_key`` ``(B,)`` int64: identifies the row's sample (derived from the data seed, the
  epoch and the sample's dataset index), the same whichever rank or world size draws it, so
  per-sample randomness keyed by it (the gradient penalty's mixing weights) does not depend on
  how the data are sharded. Every DataModule of this package yields it; a batch without it
  stays valid.

Validation, test and predict batches carry ``degraded``, ``target`` (not for predict) and
``name`` (a list of strings used to save outputs).
"""

from __future__ import annotations

from enum import IntEnum

DEGRADED = "degraded"
CLEAN = "clean"
TARGET = "target"
PAIRED = "paired"
DEGRADATION = "degradation"
SAMPLE_KEY = "sample_key"
NAME = "name"


class DegradationId(IntEnum):
    """Integer ids of degradation families carried in ``batch["degradation"]``."""

    NOISE = 0
    RAIN = 1
    HAZE = 2
    BLUR = 3
    SR = 4
    JPEG = 5
    LOWLIGHT = 6
    OTHER = 7

    @classmethod
    def from_name(cls, name: str) -> DegradationId:
        """Look a family up by its lower-case name, e.g. ``"noise"``."""
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(m.name.lower() for m in cls)
            from rcot_lightning.errors import RCOTError

            raise RCOTError(f"unknown degradation {name!r}; known: {known}") from None
