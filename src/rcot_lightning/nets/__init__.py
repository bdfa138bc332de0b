"""Networks of RCOT (torch only): the two-pass transport map T and the potential phi.

Presets are plain kwargs dicts:

* ``MAP_PRESETS[name]`` for :class:`TwoPassMap`; they hold only the U-Net size keys, so
  ``RestormerUNet(**MAP_PRESETS[name])`` builds the matching one-pass model.
* ``POTENTIAL_PRESETS[name]`` for :class:`Potential`.

``"paper"`` is the reference size, ``"small"`` trains on CPU (the default job), ``"tiny"`` is for
tests.

Example:
    >>> import torch
    >>> tmap = TwoPassMap(**MAP_PRESETS["tiny"])
    >>> phi = Potential(**POTENTIAL_PRESETS["tiny"])
    >>> phi(tmap(torch.rand(1, 3, 32, 32))).shape
    torch.Size([1])
"""

from __future__ import annotations

from typing import Any

from rcot_lightning.nets.potential import Potential
from rcot_lightning.nets.restormer import RestormerUNet
from rcot_lightning.nets.two_pass import TwoPassMap

__all__ = ["MAP_PRESETS", "POTENTIAL_PRESETS", "Potential", "RestormerUNet", "TwoPassMap"]

MAP_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "dim": 48,
        "num_blocks": (4, 6, 6, 8),
        "num_refinement_blocks": 4,
        "heads": (1, 2, 4, 8),
        "ffn_expansion_factor": 2.66,
        "bias": False,
    },
    # Sized for one CPU thread: forward+backward of a batch of 8 at 64x64 takes about 0.2 s. The
    # full-resolution blocks dominate: dim 16 costs about 3x, one refinement block about +25 %.
    "small": {
        "dim": 8,
        "num_blocks": (1, 1, 1, 2),
        "num_refinement_blocks": 0,
        "heads": (1, 1, 2, 4),
        "ffn_expansion_factor": 2.0,
        "bias": False,
    },
    # Every stage present once, at the smallest width; its cost is per-op overhead.
    "tiny": {
        "dim": 4,
        "num_blocks": (1, 1, 1, 1),
        "num_refinement_blocks": 1,
        "heads": (1, 1, 1, 1),
        "ffn_expansion_factor": 2.0,
        "bias": False,
    },
}

POTENTIAL_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"channels": (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)},
    "small": {"channels": (32, 32, 64, 64, 128, 128, 256, 256)},
    "tiny": {"channels": (8, 8, 16, 16, 32, 32)},
}
