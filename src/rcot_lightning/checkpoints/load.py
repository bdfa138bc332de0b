"""Build an :class:`~rcot_lightning.RCOTModule` from its config, or from a checkpoint alone.

A checkpoint written by ``rcot_lightning.cli.train`` carries the resolved ``model`` config under
``"rcot_build_config"``, so :func:`load_module` needs no Hydra config directory, no training
data and no knowledge of which backbone was trained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from rcot_lightning.checkpoints.finite import check_finite
from rcot_lightning.checkpoints.trust import check_targets, read_checkpoint
from rcot_lightning.checkpoints.trust import plain as as_plain
from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY, upgrade_checkpoint, upgrade_config
from rcot_lightning.errors import RCOTError
from rcot_lightning.module import RCOTModule

__all__ = ["build_module", "check_resumable", "load_module"]


def build_module(config: Mapping[str, Any]) -> RCOTModule:
    """Instantiate an RCOTModule from a ``model`` config and remember that config.

    Args:
        config: a plain mapping with ``_target_`` (``rcot_lightning.RCOTModule`` or a
            subclass), nested ``_target_`` nodes for ``transport_map`` and ``potential`` and
            ``_partial_`` optimiser/scheduler factories: the ``model`` node of the train config,
            resolved.

    Returns:
        The module, with ``build_config`` set to ``config`` (saved in its checkpoints).

    Raises:
        RCOTError: the config does not build an RCOTModule.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    plain = {str(k): v for k, v in upgrade_config(as_plain(config)).items() if k != "build_config"}
    if "_target_" not in plain:
        raise RCOTError("model config has no `_target_`; expected rcot_lightning.RCOTModule")
    # `build_config` is set afterwards: passed to instantiate, its nested `_target_` nodes would
    # be instantiated too.
    module = instantiate(OmegaConf.create(plain), _convert_="partial")
    if not isinstance(module, RCOTModule):
        raise RCOTError(
            f"model._target_={plain['_target_']} built a {type(module).__name__}, not an RCOTModule"
        )
    module.build_config = plain
    return module


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

    The file is read weights-only and every ``_target_`` of its stored config is checked
    before anything is built (:mod:`rcot_lightning.checkpoints.trust`).

    Args:
        ckpt_path: a checkpoint written while training an RCOTModule built by
            :func:`build_module` (``rcot_lightning.cli.train`` does).
        map_location: passed to :func:`torch.load`.
        trust_checkpoint: unpickle the file in full (it can then run code): only for files
            whose source you trust.
        trusted_targets: modules besides rcot_lightning, torch.optim and torch.nn whose
            classes the stored config may build (your own networks).

    Returns:
        The module in eval mode, with ``iteration`` restored.

    Raises:
        RCOTError: the file is missing, unreadable, not an RCOT checkpoint, or holds
            non-finite weights.
    """
    path = Path(ckpt_path).expanduser()
    checkpoint = _read(path, map_location, trust_checkpoint)
    config = checkpoint.get(BUILD_CONFIG_KEY)
    if not isinstance(config, Mapping) or "state_dict" not in checkpoint:
        raise RCOTError(
            f"ckpt_path: {path} is not an RCOT checkpoint (no {BUILD_CONFIG_KEY!r} and "
            "state_dict); use a checkpoint written by rcot_lightning.train, or build your "
            "module yourself and call RCOTModule.load_from_checkpoint"
        )
    check_finite(checkpoint["state_dict"], path)
    check_targets(upgrade_config(config), trusted_targets, f"ckpt_path: {path}: stored model")
    module = build_module(config)
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

    Raises:
        RCOTError: the file is missing, unreadable, not a training checkpoint, was written by
            a model of another shape, or holds non-finite weights.
    """
    path = Path(ckpt_path).expanduser()
    checkpoint = _read(path, "cpu", trust)
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
