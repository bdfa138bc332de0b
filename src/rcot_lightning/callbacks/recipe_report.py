"""The training recipe of a run, stated before training: the :class:`RecipeReport` callback.

``rcot_lightning.cli.train`` adds a :class:`RecipeReport` callback, which prints
one short block before the first training batch, writes it to ``<run folder>/recipe.txt`` and
adds its figures to every logger's hyper-parameters::

    Recipe: standard (task derain, data paired, model rcot)
      iterations : 1,224,000 = 51 epochs x 24,000
      epoch      : 72,000 crops = 360 x 200 training images (data.repeat)
      batch      : 3 per device, 3 global (1 device)
      patch      : 128 x 128, precision 32-true
      map T      : RMSprop lr 5e-05, StepLR x0.1 every 20 epochs
      potential  : RMSprop lr 0.0001, StepLR x0.1 every 20 epochs, n_critic 1
      loss       : transport rms x1, Fourier x1, supervised l1 x10000, gradient penalty x10
      parameters : map T 44.29 M, potential 13.68 M

The figures come from the objects the run trains with (the trainer's batches per epoch, the
datamodule's epoch, the module's parameters), not from the config alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

__all__ = [
    "RecipeFacts",
    "RecipeReport",
    "collect",
    "describe",
    "recipe_name",
    "steps_per_iteration",
]

log = logging.getLogger(__name__)


def recipe_name(choices: Mapping[str, Any]) -> str:
    """What the run follows: ``experiment=<name>`` when one is chosen, else the recipe.

    Args:
        choices: Hydra's group choices (``HydraConfig.get().runtime.choices``).

    Example:
        >>> recipe_name({"recipe": "none", "experiment": "paper_derain"})
        'paper_derain'
        >>> recipe_name({"recipe": "standard", "experiment": None})
        'standard'
    """
    experiment = choices.get("experiment")
    if experiment not in (None, "null", ""):
        recipe = choices.get("recipe")
        return str(experiment) if recipe in (None, "none") else f"{experiment} + {recipe}"
    return str(choices.get("recipe") or "unknown")


def _objective(model: Mapping[str, Any]) -> Mapping[str, Any]:
    """The node holding the loss settings (``model.objective`` or ``model`` itself)."""
    objective = model.get("objective")
    return objective if isinstance(objective, Mapping) else model


def steps_per_iteration(model: Mapping[str, Any]) -> int:
    """Optimizer steps of one iteration: ``n_critic`` potential steps and a map step, or only
    the map step when the objective leaves the potential out (``potential_weight: 0``).

    Example:
        >>> steps_per_iteration({"n_critic": 2, "objective": {"potential_weight": 1.0}})
        3
        >>> steps_per_iteration({"n_critic": 1, "objective": {"potential_weight": 0.0}})
        1
    """
    # The module's own rule (FROTObjective.uses_potential): only a positive weight trains it.
    if not float(_objective(model).get("potential_weight", 1.0)) > 0:
        return 1
    return _n_critic(model) + 1


def _n_critic(model: Mapping[str, Any]) -> int:
    return int(_objective(model).get("n_critic", model.get("n_critic", 1)))


@dataclass(frozen=True)
class RecipeFacts:
    """The figures of the recipe block (see the module docstring)."""

    name: str
    task: str
    data: str
    model: str
    total_iterations: float
    epochs: float
    iterations_per_epoch: int
    max_steps: int
    epoch: str
    batch_per_device: int
    batch_global: int
    devices: int
    patch_size: int
    precision: str
    map_optimizer: str
    potential_optimizer: str
    n_critic: int
    loss: str
    map_parameters: int
    potential_parameters: int
    #: False when the objective leaves the potential out (``potential_weight: 0``): one
    #: optimizer step per iteration and no potential training.
    potential_trained: bool = True

    def hparams(self) -> dict[str, Any]:
        """The facts as flat ``recipe/<name>`` hyper-parameters for a logger."""
        return {f"recipe/{k}": v for k, v in asdict(self).items()}


def _count(value: float) -> str:
    return "unbounded" if math.isinf(value) else f"{int(value):,}"


def _size(parameters: int) -> str:
    """``44.29 M`` or ``71.3 K``."""
    if parameters >= 1e6:
        return f"{parameters / 1e6:.2f} M"
    return f"{parameters / 1e3:.1f} K"


def _iterations(facts: RecipeFacts) -> str:
    """``1,224,000 = 51 epochs x 24,000`` or the max_steps cap and what it cuts."""
    epochs = f"{_count(facts.epochs)} epochs x {facts.iterations_per_epoch:,}"
    planned = facts.epochs * facts.iterations_per_epoch
    if facts.max_steps < 0 or facts.total_iterations >= planned:
        return f"{_count(facts.total_iterations)} = {epochs}"
    each = (
        f"n_critic + 1 = {facts.n_critic + 1} steps each"
        if facts.potential_trained
        else "1 step each: the potential is off"
    )
    cap = f"trainer.max_steps={facts.max_steps}, {each}"
    return f"{_count(facts.total_iterations)} ({cap}) of {epochs}"


def _target_name(node: Mapping[str, Any] | None) -> str:
    if not node:
        return "none"
    return str(node.get("_target_", "?")).rsplit(".", 1)[-1]


def _optimizer(optimizer: Mapping[str, Any] | None, scheduler: Mapping[str, Any] | None) -> str:
    """``RMSprop lr 5e-05, StepLR x0.1 every 20 epochs``."""
    text = f"{_target_name(optimizer)} lr {(optimizer or {}).get('lr', '?')}"
    if not scheduler:
        return text + ", constant"
    name = _target_name(scheduler)
    if "step_size" in scheduler and "gamma" in scheduler:
        return f"{text}, {name} x{scheduler['gamma']} every {scheduler['step_size']}"
    return f"{text}, {name}"


def _loss(objective: Mapping[str, Any], has_targets: bool = True) -> str:
    """The terms of the objective that act, with their weights.

    A term weighted 0 is left out, so is the supervised term on data without targets and the
    gradient penalty when the potential is off (``potential_weight: 0``): the block says what
    the run trains with, not every setting.

    Example:
        >>> _loss({"potential_weight": 0.0, "supervised_weight": 1000.0})
        'transport rms x1, Fourier x1, supervised l1 x1000'
        >>> _loss({"supervised_weight": 1e4}, has_targets=False)
        'transport rms x1, Fourier x1, gradient penalty x10'
    """

    def weight(key: str, default: float = 1.0) -> float:
        return float(objective.get(key, default))

    terms = []
    if weight("transport_weight") > 0:
        terms.append(
            f"transport {objective.get('transport_cost', 'rms')} x{weight('transport_weight'):g}"
        )
    if weight("fourier_weight") > 0:
        reference = " (reference strength)" if objective.get("reference_fourier") else ""
        terms.append(f"Fourier x{weight('fourier_weight'):g}{reference}")
    if has_targets and weight("supervised_weight") > 0:
        terms.append(
            f"supervised {objective.get('supervised_loss', 'l1')} x{weight('supervised_weight'):g}"
        )
    # The potential's own weight shows on the block's potential line (on, or off).
    if weight("potential_weight") > 0 and weight("lambda_gp", 10.0) > 0:
        terms.append(f"gradient penalty x{weight('lambda_gp', 10.0):g}")
    return ", ".join(terms) or "none (every weight is 0)"


def _epoch(datamodule: Any, iterations: int, global_batch: int) -> str:
    """What one epoch is: the datamodule's samples per epoch and where the number comes from."""
    datasets = getattr(datamodule, "datasets", {}) or {}
    train = datasets.get("train") if isinstance(datasets, Mapping) else None
    if train is None:
        return f"{iterations:,} batches of {global_batch}"
    samples = len(train)
    if getattr(datamodule, "samples_per_epoch", None) is not None:
        return f"{samples:,} crops (data.samples_per_epoch)"
    source = getattr(train, "source", None)
    images = len(source) if source is not None else samples
    repeat = getattr(datamodule, "repeat", 1)
    return f"{samples:,} crops = {repeat} x {images:,} training images (data.repeat)"


def _parameters(module: Any, name: str) -> int:
    net = getattr(module, name, None)
    return 0 if net is None else sum(p.numel() for p in net.parameters())


def collect(
    trainer: Any, module: Any, cfg: Mapping[str, Any], choices: Mapping[str, Any]
) -> RecipeFacts:
    """The recipe's figures from a trainer whose training loop has its data (``on_train_start``).

    Args:
        trainer: the Lightning trainer (``num_training_batches`` is set).
        module: the RCOTModule being trained.
        cfg: the resolved train config.
        choices: Hydra's group choices (:func:`group_choices`; ``{}`` outside Hydra).
    """
    model, data = cfg.get("model", {}), cfg.get("data", {})
    objective = _objective(model)
    per_epoch = trainer.num_training_batches
    per_epoch = int(per_epoch) if not math.isinf(per_epoch) else 0
    n_critic = _n_critic(model)
    steps = steps_per_iteration(model)
    max_epochs = trainer.max_epochs
    epochs = math.inf if max_epochs in (None, -1) else float(max_epochs)
    total = epochs * per_epoch if per_epoch else math.inf
    max_steps = int(trainer.max_steps if trainer.max_steps is not None else -1)
    if max_steps >= 0:
        total = min(total, max_steps // steps)
    batch = int(data.get("batch_size", getattr(trainer.datamodule, "batch_size", 0)))
    world = int(trainer.world_size)
    return RecipeFacts(
        name=recipe_name(choices),
        task=str(cfg.get("task", {}).get("name", "?")),
        data=str(choices.get("data") or _target_name(data)),
        model=str(choices.get("model") or type(getattr(module, "transport_map", module)).__name__),
        total_iterations=total,
        epochs=epochs,
        iterations_per_epoch=per_epoch,
        max_steps=max_steps,
        epoch=_epoch(trainer.datamodule, per_epoch, batch * world),
        batch_per_device=batch,
        batch_global=batch * world,
        devices=world,
        patch_size=int((data.get("crops") or {}).get("patch_size", 0)),
        precision=str(trainer.precision),
        map_optimizer=_optimizer(model.get("map_optimizer"), model.get("map_scheduler")),
        potential_optimizer=_optimizer(
            model.get("potential_optimizer"), model.get("potential_scheduler")
        ),
        n_critic=n_critic,
        loss=_loss(
            {**model, **objective},
            has_targets=not str(data.get("_target_", "")).endswith("UnpairedDataModule"),
        ),
        map_parameters=_parameters(module, "transport_map"),
        potential_parameters=_parameters(module, "potential"),
        potential_trained=steps > 1,
    )


def describe(facts: RecipeFacts, unit: str = "epochs") -> str:
    """The recipe block: a title and eight lines (see the module docstring).

    Args:
        facts: the figures (:func:`collect`).
        unit: what the schedulers' ``step_size`` counts (``epochs`` or ``iterations``).
    """
    devices = f"{facts.devices} device{'s' if facts.devices != 1 else ''}"
    return "\n".join(
        [
            f"Recipe: {facts.name} (task {facts.task}, data {facts.data}, model {facts.model})",
            f"  iterations : {_iterations(facts)}",
            f"  epoch      : {facts.epoch}",
            f"  batch      : {facts.batch_per_device} per device, {facts.batch_global} global "
            f"({devices})",
            f"  patch      : {facts.patch_size} x {facts.patch_size}, precision {facts.precision}",
            f"  map T      : {_with_unit(facts.map_optimizer, unit)}",
            (
                f"  potential  : {_with_unit(facts.potential_optimizer, unit)}, "
                f"n_critic {facts.n_critic}"
                if facts.potential_trained
                else "  potential  : off (model.objective.potential_weight=0: not trained)"
            ),
            f"  loss       : {facts.loss}",
            f"  parameters : map T {_size(facts.map_parameters)}, potential "
            f"{_size(facts.potential_parameters)}",
        ]
    )


def _with_unit(text: str, unit: str) -> str:
    return text if " every " not in text else f"{text} {unit}"


#: The recipe block's file in the run folder.
RECIPE_FILE = "recipe.txt"


def _ours(path: Path) -> bool:
    """Whether ``path`` is missing or holds a recipe block (a file of a run we may rewrite).

    A run folder given by hand (``hydra.run.dir=...``) can hold a ``recipe.txt`` of the user's,
    and a run folder from someone else a link named so to any file: neither is rewritten.
    """
    if path.is_symlink():
        return False
    try:
        with path.open("rb") as file:
            return file.read(len(b"Recipe: ")) == b"Recipe: "
    except FileNotFoundError:
        return True
    except OSError:
        return False


class RecipeReport(Callback):
    """Print the recipe block before training, save it in the run folder, log its figures.

    Args:
        cfg: the resolved train config.
        choices: Hydra's group choices (:func:`group_choices`).
        emit: shows the block to the user (the entry point's ``app.report``).
        folder: where ``recipe.txt`` goes (the run folder); ``None`` writes no file. A
            ``recipe.txt`` there that is not a recipe block (a user's file) is left as it is.
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        choices: Mapping[str, Any],
        emit: Callable[[str], None],
        folder: str | Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.choices = choices
        self.emit = emit
        self.folder = None if folder is None else Path(folder)
        #: The block of the last run (``None`` before training starts).
        self.text: str | None = None
        self.facts: RecipeFacts | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.facts = collect(trainer, pl_module, self.cfg, self.choices)
        unit = "epochs" if self.cfg.get("model", {}).get("scheduler_interval") != "step" else ""
        self.text = describe(self.facts, unit or "iterations")
        if not trainer.is_global_zero:
            return
        self.emit(self.text)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / RECIPE_FILE
            if _ours(path):
                path.write_text(self.text + "\n")
            else:
                log.warning(
                    "not writing %s: the file there is not a recipe block of rcot-train (or is "
                    "a link); the block is printed above",
                    path,
                )
        for logger in trainer.loggers:
            logger.log_hyperparams(self.facts.hparams())
