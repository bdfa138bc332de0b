"""Parameter counts of the transport map and the potential for every preset, as JSON.

Run: ``python benchmarks/param_counts.py``. Models are built on the meta device, so even the
paper size costs no memory and no time. The reference implementation's numbers (RCOT's public
code; §2-§4 of the RCOT reference notes) are printed alongside for comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
    from rcot_lightning.nets import Potential, TwoPassMap
except ModuleNotFoundError:  # run from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rcot_lightning.conf import MAP_PRESETS, POTENTIAL_PRESETS
    from rcot_lightning.nets import Potential, TwoPassMap

REFERENCE = {
    "map": {
        "total": 46.9e6,
        "main_path": 26.6e6,
        "residual_encoder": 18e6,
        "unused": 2.25e6,
        "note": "residual branch reuses main-branch modules; ~2.25 M parameters never used",
    },
    "potential": {
        "64px": 14.8e6,
        "128px": 30.6e6,
        "256px": 283e6,
        "note": "Linear head sized by the training patch; ours pools globally (size-agnostic)",
    },
}


def count(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def preset_counts(name: str) -> dict[str, Any]:
    """Counts of the map (per part, both conditioning modes) and the potential of a preset."""
    with torch.device("meta"):
        maps = {
            mode: TwoPassMap(**MAP_PRESETS[name], conditioning=mode)
            for mode in ("bottleneck", "decoder")
        }
        potential = Potential(**POTENTIAL_PRESETS[name])
    tmap = maps["bottleneck"]
    main, residual = count(tmap.restoration), count(tmap.residual_encoder)
    return {
        "map": {
            "total": count(tmap),
            "main_path": main,
            "residual_encoder": residual,
            "conditioning": count(tmap) - main - residual,
            "total_decoder_conditioning": count(maps["decoder"]),
        },
        "potential": count(potential),
    }


def main() -> None:
    report = {
        "presets": {name: preset_counts(name) for name in MAP_PRESETS},
        "reference": REFERENCE,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
