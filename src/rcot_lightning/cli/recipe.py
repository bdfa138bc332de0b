"""The training recipe of a run, checked before anything is built.

``rcot_lightning.cli.train`` calls :func:`check_recipe` on the composed config: overrides that
cannot mean what the user wants end in one line. The block that states the recipe before
training is :class:`~rcot_lightning.callbacks.RecipeReport`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rcot_lightning.callbacks.recipe_report import steps_per_iteration
from rcot_lightning.errors import RCOTError

__all__ = ["check_recipe", "group_choices"]


#: Keys of the supervised term, which only rows with a target (paired data) use.
_PAIRED_ONLY = ("supervised_weight", "supervised_loss")


def group_choices() -> dict[str, Any]:
    """This Hydra job's group choices (``{"recipe": "demo", ...}``); ``{}`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return dict(HydraConfig.get().runtime.choices)


def _override_keys(overrides: Sequence[str]) -> dict[str, str]:
    """``{"model.supervised_weight": "10", ...}`` from ``key=value`` overrides."""
    keys = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep:
            keys[key.lstrip("+~")] = value
    return keys


def check_recipe(cfg: Mapping[str, Any], overrides: Sequence[str] = ()) -> None:
    """Reject settings that cannot mean what the user wants, naming the key and the fix.

    Args:
        cfg: the resolved train config (``trainer``, ``model``, ``data`` nodes).
        overrides: the command line's overrides (``key=value``).

    Raises:
        RCOTError: ``trainer.max_steps`` shorter than one iteration or not a whole number of
            iterations; ``data.repeat`` given
            while ``data.samples_per_epoch`` fixes the epoch; a supervised (paired-only) setting
            given on the command line to unpaired data.

    Example:
        >>> cfg = {"trainer": {"max_steps": 1}, "model": {"n_critic": 1}}
        >>> check_recipe(cfg)
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: trainer.max_steps=1 is less than one iteration: ...
    """
    trainer, model, data = cfg.get("trainer", {}), cfg.get("model", {}), cfg.get("data", {})
    steps = steps_per_iteration(model)
    max_steps = trainer.get("max_steps", -1)
    if isinstance(max_steps, int) and 0 <= max_steps < steps:
        what = f"model.n_critic + 1 = {steps} optimizer steps" if steps > 1 else "one map step"
        raise RCOTError(
            f"trainer.max_steps={max_steps} is less than one iteration: an iteration is "
            f"{what}; use trainer.max_steps={steps}*N for N iterations"
        )
    if isinstance(max_steps, int) and max_steps > 0 and max_steps % steps:
        # Lightning stops once global_step >= max_steps, which happens only after a whole
        # iteration: an odd cap would train one iteration more than the block announces.
        fewer, more = max_steps // steps, max_steps // steps + 1
        raise RCOTError(
            f"trainer.max_steps={max_steps} is not a whole number of iterations: an iteration "
            f"is model.n_critic + 1 = {steps} optimizer steps; use trainer.max_steps="
            f"{fewer * steps} ({fewer} iterations) or trainer.max_steps={more * steps} "
            f"({more} iterations)"
        )
    given = _override_keys(overrides)
    if "data.repeat" in given and data.get("samples_per_epoch") is not None:
        raise RCOTError(
            f"data.repeat={given['data.repeat']} has no effect while data.samples_per_epoch="
            f"{data['samples_per_epoch']} fixes the epoch; add data.samples_per_epoch=null to "
            "draw data.repeat crops of every training image per epoch"
        )
    if str(data.get("_target_", "")).endswith("UnpairedDataModule"):
        for key in _PAIRED_ONLY:
            for name in (f"model.objective.{key}", f"model.{key}"):
                if name in given:
                    raise RCOTError(
                        f"{name}={given[name]} has no effect with unpaired data (data="
                        "unpaired has no targets, so the supervised term never applies); use "
                        "data=paired, or data=semipaired with data.paired_fraction, to train "
                        "with targets (an Optuna sweep on unpaired data: "
                        "hparams_search=optuna_unpaired)"
                    )
