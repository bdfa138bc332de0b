"""Lightning callbacks of rcot-lightning, one class per module named after it.

``from rcot_lightning.callbacks import RunCheckpoint`` (the configs name them so too).
"""

from __future__ import annotations

from rcot_lightning.callbacks.cpu_budget import CPUBudget
from rcot_lightning.callbacks.preemption_checkpoint import PreemptionCheckpoint, TrainingInterrupted
from rcot_lightning.callbacks.rcot_progress_bar import RCOTProgressBar
from rcot_lightning.callbacks.recipe_report import RecipeReport
from rcot_lightning.callbacks.restoration_image_logger import RestorationImageLogger
from rcot_lightning.callbacks.restored_image_writer import RestoredImageWriter
from rcot_lightning.callbacks.run_checkpoint import RunCheckpoint

__all__ = [
    "CPUBudget",
    "PreemptionCheckpoint",
    "RCOTProgressBar",
    "RecipeReport",
    "RestorationImageLogger",
    "RestoredImageWriter",
    "RunCheckpoint",
    "TrainingInterrupted",
]
