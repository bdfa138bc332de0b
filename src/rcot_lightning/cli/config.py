"""What a command reads from its composed config: plain values, its overrides, the checkpoint
it names, the objects of a group (callbacks, loggers)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from rcot_lightning.cli.checks import check_extra
from rcot_lightning.cli.summary import report
from rcot_lightning.errors import RCOTError


def checkpoint_of(cfg: DictConfig) -> str | None:
    """The command's ``ckpt_path`` (``None`` when unset), ``last`` resolved to the
    ``checkpoints/last.ckpt`` of the latest training run under ``cfg.train_runs``.

    A command with a task (``rcot-eval task=derain``) takes the latest run of that task only;
    ``last`` prints one line naming the run and its task (and newer runs of another task it
    passed over).

    Raises:
        RCOTError: ``ckpt_path=last`` and no training run (of the command's task) has a
            ``last.ckpt`` (the message names the folder searched and what to pass instead).
    """
    from rcot_lightning.cli.run_folder import last_training_run

    value = cfg.get("ckpt_path")
    if value is None or str(value) == "":
        return None
    if str(value) != "last":
        return str(value)
    task = cfg.get("task")
    wanted = task.get("name") if isinstance(task, DictConfig) else None
    wanted = str(wanted) if wanted else None
    chosen = last_training_run(str(cfg.get("train_runs", "outputs/train/runs")), wanted)
    report(chosen.describe(wanted))
    return str(chosen.checkpoint)


def job_overrides() -> list[str]:
    """This Hydra job's overrides (one job of a sweep: its chosen values); [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def as_dict(node: Any) -> dict[str, Any]:
    """A resolved plain dict of a config node (``{}`` for None)."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        container = OmegaConf.to_container(node, resolve=True)
        assert isinstance(container, dict)
        return {str(k): v for k, v in container.items()}
    return dict(node)


def instantiate_group(node: DictConfig | None, group: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-nodes group (callbacks, logger)."""
    from hydra.utils import instantiate

    if node is None:
        return []
    if not isinstance(node, DictConfig):
        raise RCOTError(f"{group} must be a mapping of named nodes with `_target_`, got {node!r}")
    objects = []
    for name, item in node.items():
        name = str(name)
        if item is None:
            continue
        if not isinstance(item, DictConfig) or "_target_" not in item:
            raise RCOTError(f"{group}.{name} must be a node with a `_target_`, got {item!r}")
        check_extra(f"{group}.{name}", str(item["_target_"]))
        objects.append(instantiate(item, _convert_="partial"))
    return objects
