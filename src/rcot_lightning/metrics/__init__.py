"""Image-quality metrics: per-image fidelity (PSNR/SSIM), distribution (FID/KID) and the
optional metrics that need pretrained weights (Inception FID, LPIPS), each in its own module.

Every public name of the submodules is importable from here:
``from rcot_lightning.metrics import score_images``.
"""

from __future__ import annotations

from rcot_lightning.metrics import distribution, fidelity, optional_scores, pretrained_probes
from rcot_lightning.metrics.distribution import *  # noqa: F403
from rcot_lightning.metrics.fidelity import *  # noqa: F403
from rcot_lightning.metrics.optional_scores import *  # noqa: F403
from rcot_lightning.metrics.pretrained_probes import *  # noqa: F403

# Each public name is listed once, in its submodule's __all__.
__all__ = sorted(
    [
        *distribution.__all__,
        *fidelity.__all__,
        *optional_scores.__all__,
        *pretrained_probes.__all__,
    ]
)
