"""Checkpoints of older versions in today's form: keys, state dict and stored ``_target_`` names.

Every reader of a checkpoint goes through here: :func:`.load.load_module`, the module's
``on_load_checkpoint`` (so ``Trainer.fit(ckpt_path=...)`` resumes an old run), the bundled
weights (:mod:`rcot_lightning.pretrained`) and ``rcot-upgrade-checkpoint`` (:func:`upgrade_file`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rcot_lightning.checkpoints.keys import (
    BUILD_CONFIG_KEY,
    FORMAT_KEY,
    FORMAT_VERSION,
    ITERATION_KEY,
)
from rcot_lightning.checkpoints.spec import to_spec
from rcot_lightning.errors import RCOTError

__all__ = [
    "BUILD_CONFIG_KEY",
    "ITERATION_KEY",
    "LEGACY_OBJECTIVE_KEYS",
    "MOVED",
    "NESTED_SETTINGS",
    "format_version",
    "nest_settings",
    "upgrade_checkpoint",
    "upgrade_config",
    "upgrade_file",
    "upgrade_state_dict",
    "upgrade_target",
    "upgrade_targets",
]

#: Where each module of rcot-lightning 0.3 lives since the package layout (``cli``,
#: ``callbacks``, ``checkpoints``, ``metrics``), and the classes that left their module. A stored
#: ``_target_`` under an old name (``rcot_lightning.preemption.PreemptionCheckpoint``) is read as
#: the new one; the longest matching old name wins.
MOVED = {
    "rcot_lightning.app": "rcot_lightning.cli.app",
    "rcot_lightning.atomic": "rcot_lightning.checkpoints.atomic",
    "rcot_lightning.atomic.AtomicCSVLogger": "rcot_lightning.checkpoints.atomic_io.AtomicCSVLogger",
    "rcot_lightning.atomic.AtomicCheckpointIO": (
        "rcot_lightning.checkpoints.atomic_io.AtomicCheckpointIO"
    ),
    "rcot_lightning.checkpoint": "rcot_lightning.checkpoints.load",
    "rcot_lightning.checkpoint_callback": "rcot_lightning.callbacks.run_checkpoint",
    "rcot_lightning.checks": "rcot_lightning.cli.checks",
    "rcot_lightning.cpu_budget": "rcot_lightning.callbacks.cpu_budget",
    "rcot_lightning.crash_log": "rcot_lightning.cli.crash_log",
    "rcot_lightning.demo": "rcot_lightning.cli.demo",
    "rcot_lightning.demo_inputs": "rcot_lightning.cli.demo_inputs",
    "rcot_lightning.demo_page": "rcot_lightning.cli.demo_page",
    "rcot_lightning.eval": "rcot_lightning.cli.eval",
    "rcot_lightning.eval.OptionalScores": "rcot_lightning.metrics.OptionalScores",
    "rcot_lightning.eval.RestoredImageWriter": "rcot_lightning.callbacks.RestoredImageWriter",
    "rcot_lightning.export": "rcot_lightning.cli.export",
    "rcot_lightning.launch": "rcot_lightning.cli.launch",
    "rcot_lightning.map_source": "rcot_lightning.cli.map_source",
    "rcot_lightning.preemption": "rcot_lightning.callbacks.preemption_checkpoint",
    "rcot_lightning.progress_bar": "rcot_lightning.callbacks.rcot_progress_bar",
    "rcot_lightning.recipe": "rcot_lightning.cli.recipe",
    "rcot_lightning.recipe.RecipeReport": "rcot_lightning.callbacks.RecipeReport",
    "rcot_lightning.restore": "rcot_lightning.cli.restore",
    "rcot_lightning.run_folder": "rcot_lightning.cli.run_folder",
    "rcot_lightning.train": "rcot_lightning.cli.train",
    "rcot_lightning.trust": "rcot_lightning.checkpoints.trust",
    "rcot_lightning.upgrade_checkpoint": "rcot_lightning.cli.upgrade_checkpoint",
}


def upgrade_target(target: str) -> str:
    """``target`` under today's module names (names that did not move are returned as they are).

    Example:
        >>> upgrade_target("rcot_lightning.checkpoint_callback.RunCheckpoint")
        'rcot_lightning.callbacks.run_checkpoint.RunCheckpoint'
        >>> upgrade_target("rcot_lightning.nets.TwoPassMap")
        'rcot_lightning.nets.TwoPassMap'
    """
    for old in sorted(MOVED, key=len, reverse=True):
        if target == old or target.startswith(old + "."):
            return MOVED[old] + target[len(old) :]
    return target


def upgrade_targets(node: Any) -> Any:
    """``node`` (plain containers) with every ``_target_`` string passed through
    :func:`upgrade_target`; a copy where anything changed, ``node`` itself otherwise.

    Example:
        >>> upgrade_targets({"a": [{"_target_": "rcot_lightning.trust.X", "k": 1}]})
        {'a': [{'_target_': 'rcot_lightning.checkpoints.trust.X', 'k': 1}]}
    """
    if isinstance(node, Mapping):
        new = {
            k: upgrade_target(v) if k == "_target_" and isinstance(v, str) else upgrade_targets(v)
            for k, v in node.items()
        }
        changed = any(new[k] is not v for k, v in node.items())
        return new if changed else node
    if isinstance(node, list | tuple):
        items = [upgrade_targets(v) for v in node]
        changed = any(a is not b for a, b in zip(items, node, strict=True))
        return type(node)(items) if changed else node
    return node


#: Arguments of ``RCOTModule`` before they became fields of its two settings objects
#: (``evaluation``: :class:`~rcot_lightning.module.EvalSettings`, ``clipping``:
#: :class:`~rcot_lightning.module.ClipSettings`): old key -> (argument, field).
NESTED_SETTINGS = {
    "metric_y_channel": ("evaluation", "y_channel"),
    "metric_crop_border": ("evaluation", "crop_border"),
    "metric_also_y": ("evaluation", "also_y"),
    "val_tile_size": ("evaluation", "val_tile_size"),
    "map_grad_clip": ("clipping", "map"),
    "potential_grad_clip": ("clipping", "potential"),
    "grad_clip_algorithm": ("clipping", "algorithm"),
}


def nest_settings(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``config`` (a module's hyper-parameters or ``model`` config) with the flat settings of
    :data:`NESTED_SETTINGS` moved under ``evaluation`` and ``clipping``; a copy where anything
    moved, ``config`` itself otherwise. A flat key wins over the field it moves to: both are there
    only when an older config (a user's experiment file) is laid over today's defaults, and then
    the flat key is the one the user wrote.

    Example:
        >>> nest_settings({"n_critic": 1, "map_grad_clip": 0.5, "val_tile_size": 64})
        {'n_critic': 1, 'evaluation': {'val_tile_size': 64}, 'clipping': {'map': 0.5}}
        >>> nest_settings({"clipping": {"map": None, "algorithm": "norm"}, "map_grad_clip": 0.5})
        {'clipping': {'map': 0.5, 'algorithm': 'norm'}}
    """
    if not any(key in config for key in NESTED_SETTINGS):
        return config
    nested = {k: v for k, v in config.items() if k not in NESTED_SETTINGS}
    for key, (argument, field) in NESTED_SETTINGS.items():
        if key not in config:
            continue
        group = nested.get(argument)
        group = dict(group) if isinstance(group, Mapping) else {}
        group[field] = config[key]
        nested[argument] = group
    return nested


_EMA_PREFIX = "map_ema."
_EMA_COUNT_KEY = "map_ema.n_averaged"


def upgrade_state_dict(state_dict: Mapping[str, Any], iteration: int = 0) -> dict[str, Any]:
    """A state dict of an older checkpoint in today's layout (newer ones are returned as they are).

    Up to version 0.2 the EMA of the map was a plain copy of it (``map_ema.<name>``); it is now a
    :class:`~torch.optim.swa_utils.AveragedModel` (``map_ema.module.<name>`` and the count of
    averaged models ``map_ema.n_averaged``). The old EMA had averaged the initial weights and
    ``iteration`` updates, hence a count of ``iteration + 1``.

    Example:
        >>> new = upgrade_state_dict({"map_ema.w": torch.zeros(1), "potential.w": 1}, 4)
        >>> sorted(new), int(new["map_ema.n_averaged"])
        (['map_ema.module.w', 'map_ema.n_averaged', 'potential.w'], 5)
    """
    plain = dict(state_dict)
    if _EMA_COUNT_KEY in plain or not any(k.startswith(_EMA_PREFIX) for k in plain):
        return plain
    upgraded = {
        f"{_EMA_PREFIX}module.{k[len(_EMA_PREFIX) :]}" if k.startswith(_EMA_PREFIX) else k: v
        for k, v in plain.items()
    }
    upgraded[_EMA_COUNT_KEY] = torch.tensor(iteration + 1, dtype=torch.long)
    return upgraded


def format_version(checkpoint: Mapping[str, Any]) -> int:
    """The format version a checkpoint records (0 when it records none: an older file).

    Raises:
        RCOTError: the recorded version is not a whole number >= 1, or is newer than this
            version of rcot-lightning reads.

    Example:
        >>> format_version({}), format_version({FORMAT_KEY: FORMAT_VERSION})
        (0, 1)
        >>> format_version({FORMAT_KEY: "1"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: the checkpoint's rcot_format is '1', not a format ...
    """
    version = checkpoint.get(FORMAT_KEY, 0)
    if FORMAT_KEY in checkpoint and (
        not isinstance(version, int) or isinstance(version, bool) or version < 1
    ):
        raise RCOTError(
            f"the checkpoint's {FORMAT_KEY} is {version!r}, not a format version (a whole number "
            ">= 1); the file was not written by rcot-lightning or was edited"
        )
    if version > FORMAT_VERSION:
        raise RCOTError(
            f"the checkpoint is of format {version}, newer than this version of rcot-lightning "
            f"reads ({FORMAT_VERSION}); upgrade rcot-lightning"
        )
    return int(version)


def upgrade_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Bring a checkpoint to today's format, in place; returns it.

    Keyed by the file's format version (:func:`format_version`, as Lightning keys its
    migrations by version): a file of the current format is returned as it is. An older one
    (no version) gets its state dict (:func:`upgrade_state_dict`), its stored model config
    (:func:`upgrade_config`, then registry names as today's files store them) and its
    hyper-parameters: every ``_target_`` that names a module of before the package layout
    (:data:`MOVED`) names its new home, and the module's flat settings of before its settings
    objects sit under ``evaluation`` and ``clipping`` (:func:`nest_settings`). It then records
    today's version, so a module resumed from it saves a file of today's format.
    """
    if format_version(checkpoint) == FORMAT_VERSION:
        return checkpoint
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        if key in checkpoint:
            checkpoint[key] = upgrade_targets(checkpoint[key])
    if isinstance(checkpoint.get("hyper_parameters"), Mapping):
        checkpoint["hyper_parameters"] = nest_settings(checkpoint["hyper_parameters"])
    config = checkpoint.get(BUILD_CONFIG_KEY)
    if isinstance(config, Mapping):
        checkpoint[BUILD_CONFIG_KEY] = to_spec(upgrade_config(config))
    elif config is not None:
        checkpoint[BUILD_CONFIG_KEY] = upgrade_targets(config)
    state = checkpoint.get("state_dict")
    if isinstance(state, Mapping):
        iteration = int(checkpoint.get(ITERATION_KEY, 0))
        checkpoint["state_dict"] = upgrade_state_dict(state, iteration)
    checkpoint[FORMAT_KEY] = FORMAT_VERSION
    return checkpoint


#: Settings that sat at the top of the ``model`` config before the objective became one object.
LEGACY_OBJECTIVE_KEYS = (
    "transport_cost",
    "transport_weight",
    "fourier_weight",
    "fourier_norms",
    "fft_norm",
    "reference_fourier",
    "lambda_gp",
    "supervised_loss",
    "supervised_weight",
)


def upgrade_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A ``model`` config of an older checkpoint in today's form (newer ones are unchanged).

    Version 0.1 kept the objective's settings at the top of the model config and built the
    potential with 3x3 convs only: they move under ``objective`` and the potential keeps
    ``layout: uniform``, so old checkpoints rebuild the networks they were trained with. Up to
    version 0.2 the module took ``pad_multiple``; the map declares its multiple now, so the key
    is dropped. Targets in modules that moved are renamed (:func:`upgrade_targets`). Version 0.3
    took the evaluation and clipping settings as separate arguments; they move under
    ``evaluation`` and ``clipping`` (:func:`nest_settings`).

    Example:
        >>> upgrade_config({"_target_": "m", "lambda_gp": 5.0})["objective"]["lambda_gp"]
        5.0
        >>> upgrade_config({"_target_": "m", "metric_crop_border": 4})["evaluation"]
        {'crop_border': 4}
    """
    plain = dict(nest_settings(upgrade_targets(dict(config))))
    # Version 0.2 padded to `pad_multiple` in the module; the map declares its multiple now.
    plain.pop("pad_multiple", None)
    legacy = {k: plain.pop(k) for k in LEGACY_OBJECTIVE_KEYS if k in plain}
    if legacy and "objective" not in plain:
        plain["objective"] = {"_target_": "rcot_lightning.objective.FROTObjective", **legacy}
        potential = plain.get("potential")
        if isinstance(potential, Mapping) and str(potential.get("_target_", "")).endswith(
            "nets.Potential"
        ):
            plain["potential"] = {"layout": "uniform", **potential}
    return plain


def upgrade_file(
    path: str | Path, output: str | Path | None = None, *, overwrite: bool = False
) -> Path:
    """Rewrite the checkpoint ``path`` (unpickled in full: trust it) with plain containers.

    Nothing is written over a file that was not read as a checkpoint: ``path`` must hold a
    checkpoint (a dict with a ``state_dict``), and an ``output`` that exists (other than
    ``path`` itself) is replaced only with ``overwrite`` and only when it reads weights-only as
    a checkpoint too (the file is not unpickled in full: it was not named as trusted). In
    place (no ``output``) needs no ``overwrite``: rewriting the file it read is what the
    command is for, and the rewrite holds the same content.

    Args:
        path: the old checkpoint.
        output: where to write; default ``path`` itself (replaced atomically).
        overwrite: replace an existing ``output`` (only a checkpoint; ``--overwrite``).

    Returns:
        The file written; it loads with ``torch.load(weights_only=True)``.

    Raises:
        RCOTError: ``path`` is missing, a folder, unreadable or not a checkpoint; ``output``
            is a folder, exists without ``overwrite``, exists and is not a checkpoint, or
            cannot be written; or the file still needs more than weights-only after the
            rewrite (it holds objects that are not OmegaConf nodes). Each names the argument
            (``checkpoint`` or ``--output``), and nothing was written.
    """
    import os

    from rcot_lightning.checkpoints.atomic import atomic_write
    from rcot_lightning.checkpoints.trust import read_checkpoint

    source = Path(path).expanduser()
    target = source if output is None else Path(output).expanduser()
    in_place = target == source or (
        source.is_file() and target.exists() and os.path.samefile(source, target)
    )
    if not in_place and target.is_dir():
        raise RCOTError(
            f"--output: {target} is a folder; name the file to write, e.g. "
            f"--output {target / 'upgraded.ckpt'} (nothing was written)"
        )
    if not in_place and target.exists():
        if not overwrite:
            raise RCOTError(
                f"--output: {target} already exists and was kept; pass --overwrite to replace "
                "it (only a checkpoint is ever replaced), or choose another file (nothing was "
                "written)"
            )
        try:  # weights-only: the user trusted the input, not this file
            existing = read_checkpoint(target, "cpu", trust=False, key="--output")
        except RCOTError:
            existing = None
        if not _is_checkpoint(existing):
            raise RCOTError(
                f"--output: {target} exists and does not read (weights-only) as a checkpoint, "
                "so it is never replaced, even with --overwrite; choose another file (nothing "
                "was written)"
            )
    checkpoint = read_checkpoint(source, "cpu", trust=True, key="checkpoint")
    if not _is_checkpoint(checkpoint):
        raise RCOTError(
            f"checkpoint: {source} is not a checkpoint (it holds {_holds(checkpoint)}); pass a "
            ".ckpt file written by rcot_lightning.train (nothing was written)"
        )
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RCOTError(
            f"checkpoint: {source} holds objects other than OmegaConf nodes, tensors and plain "
            f"values ({str(err).strip().splitlines()[0][:160]}); it cannot be made "
            "weights-only (nothing was written)"
        ) from None
    try:
        with atomic_write(target, "wb") as handle:
            handle.write(buffer.getbuffer())
    except OSError as err:
        key = "checkpoint" if output is None else "--output"
        above = next((folder for folder in target.parents if folder.exists()), None)
        reason = err.strerror or str(err)
        if above is not None and not above.is_dir():
            reason = f"{above} is a file, not a folder"
        raise RCOTError(
            f"{key}: cannot write {target} ({reason}); nothing was written and no partial file "
            "was left; choose a place you can write to with --output"
        ) from None
    return target


def _is_checkpoint(value: Any) -> bool:
    """Whether ``value`` (what a file holds) is a checkpoint: a dict with a ``state_dict``."""
    return isinstance(value, dict) and isinstance(value.get("state_dict"), Mapping)


def _holds(value: Any) -> str:
    """What a file that is not a checkpoint holds, in a few words."""
    if isinstance(value, dict):
        return "a dict without a state_dict"
    return f"a {type(value).__name__}, not a dict with a state_dict"
