"""Networks of RCOT (torch only): the two-pass transport map T and the potential phi.

Their sizes for the paper, the CPU model and the tests are written once, in the model configs
(``conf/model/rcot.yaml``, ``rcot_small.yaml``, ``rcot_tiny.yaml``); Python code reads them with
``rcot_lightning.conf.MAP_PRESETS`` / ``POTENTIAL_PRESETS`` (``"paper" | "small" | "tiny"``), or
passes its own.

Example:
    >>> import torch
    >>> tmap = TwoPassMap(dim=4, num_blocks=(1, 1, 1, 1), heads=(1, 1, 1, 1))
    >>> phi = Potential(channels=(8, 8, 16, 16))
    >>> phi(tmap(torch.rand(1, 3, 32, 32))).shape
    torch.Size([1])
"""

from __future__ import annotations

from rcot_lightning.nets.potential import Potential
from rcot_lightning.nets.restormer import RestormerUNet
from rcot_lightning.nets.two_pass import TwoPassMap

__all__ = ["Potential", "RestormerUNet", "TwoPassMap"]
