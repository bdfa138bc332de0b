"""Build an :class:`~rcot_lightning.RCOTModule` from its config, or from a checkpoint alone.

A checkpoint written by ``rcot_lightning.cli.train`` carries the ``model`` config that built it
under ``"rcot_build_config"``, as a declarative spec (:mod:`rcot_lightning.checkpoints.spec`),
so :func:`load_module` needs no Hydra config directory, no training data and no knowledge of
which backbone was trained. A config the user composed (:func:`build_module`) is instantiated by
Hydra; one read from a file (:func:`load_module`) never is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rcot_lightning.checkpoints.finite import check_finite
from rcot_lightning.checkpoints.keys import BUILD_CONFIG_KEY, FORMAT_VERSION
from rcot_lightning.checkpoints.spec import (
    REGISTRY,
    build_spec,
    check_spec,
    import_paths,
    registry_name,
    to_spec,
)
from rcot_lightning.checkpoints.trust import plain as as_plain
from rcot_lightning.checkpoints.trust import read_checkpoint
from rcot_lightning.checkpoints.upgrade import format_version, upgrade_checkpoint, upgrade_config
from rcot_lightning.errors import RCOTError

if TYPE_CHECKING:
    from rcot_lightning.module import RCOTModule

__all__ = ["build_module", "check_resumable", "load_module"]


def _module_class() -> type[RCOTModule]:
    """:class:`~rcot_lightning.RCOTModule`, named as the registry names every class it builds,
    so that importing this package never imports the module (which imports the checkpoint
    format from here)."""
    cls: type[RCOTModule] = REGISTRY["RCOTModule"].load()
    return cls


def build_module(config: Mapping[str, Any]) -> RCOTModule:
    """Instantiate an RCOTModule from a ``model`` config the user composed; remember its spec.

    Only for configs a user passes on purpose (Hydra builds them, interpolations and all); a
    config read from a file goes through :func:`load_module`.

    Args:
        config: a plain mapping with ``_target_`` (``rcot_lightning.RCOTModule`` or a
            subclass), nested ``_target_`` nodes for ``transport_map`` and ``potential`` and
            ``_partial_`` optimiser/scheduler factories: the ``model`` node of the train config,
            resolved.

    Returns:
        The module, with ``build_config`` set to ``config`` with its targets under their
        registry names (:func:`~rcot_lightning.checkpoints.spec.to_spec`; saved in its
        checkpoints).

    Raises:
        RCOTError: the config does not build an RCOTModule.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    # Registry names (``TwoPassMap``, as checkpoints store them) are fine in a config too.
    plain = import_paths(upgrade_config(as_plain(config)))
    plain = {str(k): v for k, v in plain.items() if k != "build_config"}
    if "_target_" not in plain:
        raise RCOTError("model config has no `_target_`; expected rcot_lightning.RCOTModule")
    # `build_config` is set afterwards: passed to instantiate, its nested `_target_` nodes would
    # be instantiated too.
    module = instantiate(OmegaConf.create(plain), _convert_="partial")
    if not isinstance(module, _module_class()):
        raise RCOTError(
            f"model._target_={plain['_target_']} built a {type(module).__name__}, not an RCOTModule"
        )
    module.build_config = to_spec(plain)
    return module


def stored_spec(checkpoint: Mapping[str, Any]) -> Any:
    """The build config a checkpoint stores, in today's form (older files' names and keys
    upgraded, keyed by the file's format version), not yet checked."""
    config = checkpoint.get(BUILD_CONFIG_KEY)
    if isinstance(config, Mapping) and format_version(checkpoint) < FORMAT_VERSION:
        config = upgrade_config(config)
    if isinstance(config, Mapping):
        config = {k: v for k, v in config.items() if k != "build_config"}
    return config


def _own_modules(config: Any) -> list[str]:
    """The modules of the user's own classes that ``config`` (a module's spec) names."""
    found: list[str] = []
    if isinstance(config, Mapping):
        target = config.get("_target_")
        if isinstance(target, str) and registry_name(target) is None and "." in target:
            found.append(target.rsplit(".", 1)[0])
        for value in config.values():
            found += _own_modules(value)
    elif isinstance(config, list | tuple):
        for value in config:
            found += _own_modules(value)
    return found


def _read(path: Path, map_location: Any, trust: bool = False) -> dict[str, Any]:
    checkpoint = read_checkpoint(path, map_location, trust=trust)
    if not isinstance(checkpoint, dict):
        raise RCOTError(f"ckpt_path: {path} is not a Lightning checkpoint (not a dict)")
    return upgrade_checkpoint(checkpoint)


def load_module(
    ckpt_path: str | Path,
    map_location: Any = "cpu",
    trust_checkpoint: bool = False,
    trusted_targets: Iterable[str] | None = None,
) -> RCOTModule:
    """Rebuild the trained module of a checkpoint and load its weights (eval mode).

    The file is read weights-only, and its stored config is checked whole as a declarative
    spec, then built from the library's registry (:mod:`rcot_lightning.checkpoints.spec`):
    nothing in the file is instantiated by Hydra or resolved by OmegaConf.

    Args:
        ckpt_path: a checkpoint written while training an RCOTModule built by
            :func:`build_module` (``rcot_lightning.cli.train`` does).
        map_location: passed to :func:`torch.load`.
        trust_checkpoint: unpickle the file in full (it can then run code): only for files
            whose source you trust.
        trusted_targets: modules of your own whose classes the stored config may build (your
            own networks), besides the registry's.

    Returns:
        The module in eval mode, with ``iteration`` restored.

    Raises:
        RCOTError: the file is missing, unreadable, not an RCOT checkpoint, or holds
            non-finite weights.
    """
    path = Path(ckpt_path).expanduser()
    checkpoint = _read(path, map_location, trust_checkpoint)
    config = stored_spec(checkpoint)
    if not isinstance(config, Mapping) or "state_dict" not in checkpoint:
        raise RCOTError(
            f"ckpt_path: {path} is not an RCOT checkpoint (no {BUILD_CONFIG_KEY!r} and "
            "state_dict); use a checkpoint written by rcot_lightning.train, or build your "
            "module yourself and call RCOTModule.load_from_checkpoint"
        )
    source = f"ckpt_path: {path}: its stored model"
    spec = check_spec(config, trusted_targets, source)
    check_finite(checkpoint["state_dict"], path)
    module = build_spec(spec, trusted_targets, source)
    if not isinstance(module, _module_class()):
        raise RCOTError(
            f"{source}: _target_={spec['_target_']} built a {type(module).__name__}, not an "
            "RCOTModule"
        )
    module.build_config = to_spec(spec)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise RCOTError(
            f"ckpt_path: {path}: weights do not fit the stored model config: {err}"
        ) from err
    module.on_load_checkpoint(checkpoint)
    return module.eval()


def check_resumable(ckpt_path: str | Path, module: RCOTModule, trust: bool = False) -> None:
    """Check before ``Trainer.fit(ckpt_path=...)`` that the checkpoint can continue ``module``.

    Lightning would otherwise fail deep inside ``fit`` with a traceback (a missing or truncated
    file, a foreign file) or a dump of every mismatching tensor (another model size).

    Its stored model config, which the run carries on into its next checkpoints, is checked
    as :func:`load_module` checks it; the classes of ``module``'s own config (a network of
    yours that the run's config names) count as trusted.

    Raises:
        RCOTError: the file is missing, unreadable, not a training checkpoint, was written by
            a model of another shape, holds non-finite weights, or a stored config that is no
            declarative spec.
    """
    path = Path(ckpt_path).expanduser()
    checkpoint = _read(path, "cpu", trust)
    config = stored_spec(checkpoint)
    # A module built by hand may store any build_config; only one that builds is a spec.
    if isinstance(config, Mapping) and "_target_" in config:
        check_spec(
            config, _own_modules(module.build_config), f"ckpt_path: {path}: its stored model"
        )
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping) or "optimizer_states" not in checkpoint:
        raise RCOTError(
            f"ckpt_path: {path} is not a Lightning training checkpoint (no state_dict and "
            "optimizer states); resume from <run folder>/checkpoints/last.ckpt"
        )
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        k
        for k, v in expected.items()
        if k in state and isinstance(v, torch.Tensor) and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        if mismatched:
            key = mismatched[0]
            detail = (
                f"{key} is {tuple(state[key].shape)} there and {tuple(expected[key].shape)} here"
            )
        else:
            key = (missing or unexpected)[0]
            detail = f"{key} is {'missing' if missing else 'unexpected'}"
        raise RCOTError(
            f"ckpt_path: {path} was written by a model of another size or kind ({detail}, "
            f"{len(mismatched) + len(missing) + len(unexpected)} tensors differ); resume with "
            "the model config it was trained with (e.g. model=rcot_tiny)"
        )
    check_finite(state, path)
