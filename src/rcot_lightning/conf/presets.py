"""The model sizes for Python code, read from the model configs: the one place they are written.

``conf/model/rcot.yaml`` (preset ``"paper"``, the reference size), ``rcot_small.yaml``
(``"small"``, trains on CPU; the default job) and ``rcot_tiny.yaml`` (``"tiny"``, for tests)
hold the sizes of the map and the potential. Training picks them with ``model=<config>`` (and
overrides them with ``model.transport_map.dim=16``); code that builds the networks itself reads
the same values here:

* ``MAP_PRESETS[name]``: the size keys of :class:`~rcot_lightning.nets.TwoPassMap`
  (:data:`MAP_SIZE_KEYS`, the U-Net's, so ``RestormerUNet(**MAP_PRESETS[name])`` builds the
  matching one-pass model);
* ``POTENTIAL_PRESETS[name]``: the size of :class:`~rcot_lightning.nets.Potential`
  (``channels``).

Each file is read through Hydra's ``compose`` (once), so its defaults list means here what it
means to ``model=<config>``. Each lookup returns a new dict (lists as tuples), so changing it
changes nothing else.

Example:
    >>> from rcot_lightning.nets import Potential, TwoPassMap
    >>> sorted(MAP_PRESETS), MAP_PRESETS["tiny"]["dim"], POTENTIAL_PRESETS["tiny"]["channels"]
    (['paper', 'small', 'tiny'], 4, (8, 8, 16, 16, 32, 32))
    >>> tmap, phi = TwoPassMap(**MAP_PRESETS["tiny"]), Potential(**POTENTIAL_PRESETS["tiny"])
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from importlib.resources import files
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rcot_lightning.errors import RCOTError

__all__ = [
    "MAP_PRESETS",
    "MAP_SIZE_KEYS",
    "POTENTIAL_PRESETS",
    "POTENTIAL_SIZE_KEYS",
    "PRESET_CONFIGS",
    "model_config",
]

#: Each preset and the file of ``conf/model/`` that holds its sizes.
PRESET_CONFIGS = {"paper": "rcot", "small": "rcot_small", "tiny": "rcot_tiny"}
#: The keys of ``model.transport_map`` that size the map (those the one-pass U-Net shares).
MAP_SIZE_KEYS = (
    "dim",
    "num_blocks",
    "num_refinement_blocks",
    "heads",
    "ffn_expansion_factor",
    "bias",
)
#: The keys of ``model.potential`` that size the potential.
POTENTIAL_SIZE_KEYS = ("channels",)


@functools.cache
def _read(name: str) -> DictConfig:
    """``model/<name>.yaml`` as Hydra composes it (its defaults list applied by Hydra itself).

    Inside a running Hydra app (an entry point, a user's own, a test's ``compose``), that app's
    Hydra and version base are set aside for the compose and put back afterwards.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.version import VersionBase

    if not (files(__package__) / "model" / f"{name}.yaml").is_file():
        raise RCOTError(f"no model config named {name!r} in rcot_lightning/conf/model/")
    outer, base = GlobalHydra.instance().hydra, VersionBase.instance().getbase()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(__package__, version_base="1.3"):
            node = compose(config_name=f"model/{name}").model
    finally:
        GlobalHydra.instance().clear()
        if outer is not None:
            GlobalHydra.instance().initialize(outer)
        VersionBase.instance().version_base = base
    assert isinstance(node, DictConfig)
    return node


def model_config(name: str) -> dict[str, Any]:
    """The ``transport_map`` and ``potential`` nodes of ``conf/model/<name>.yaml`` as Hydra
    composes them (its defaults list applied), as plain containers.

    Example:
        >>> model_config("rcot_tiny")["transport_map"]["_target_"]
        'rcot_lightning.nets.TwoPassMap'
    """
    node = _read(name)
    return {
        key: OmegaConf.to_container(node[key], resolve=True)
        for key in ("transport_map", "potential")
        if key in node
    }


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class _Presets(Mapping[str, dict[str, Any]]):
    """Preset name -> the size keys of one network, read from the model configs on lookup."""

    def __init__(self, network: str, keys: tuple[str, ...]) -> None:
        self._network = network
        self._keys = keys

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name not in PRESET_CONFIGS:
            raise KeyError(f"no preset {name!r}; known: {', '.join(PRESET_CONFIGS)}")
        node = model_config(PRESET_CONFIGS[name])[self._network]
        assert isinstance(node, dict)
        return {key: _frozen(node[key]) for key in self._keys if key in node}

    def __iter__(self) -> Iterator[str]:
        return iter(PRESET_CONFIGS)

    def __len__(self) -> int:
        return len(PRESET_CONFIGS)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{name!r}: {self[name]!r}' for name in self)}}}"


#: ``"paper" | "small" | "tiny"`` -> ``TwoPassMap`` / ``RestormerUNet`` size kwargs.
MAP_PRESETS: Mapping[str, dict[str, Any]] = _Presets("transport_map", MAP_SIZE_KEYS)
#: ``"paper" | "small" | "tiny"`` -> ``Potential`` size kwargs.
POTENTIAL_PRESETS: Mapping[str, dict[str, Any]] = _Presets("potential", POTENTIAL_SIZE_KEYS)
