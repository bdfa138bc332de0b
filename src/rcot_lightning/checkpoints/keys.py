"""The keys rcot-lightning adds to a Lightning checkpoint, and the version of their format.

This module imports nothing: :class:`~rcot_lightning.RCOTModule` writes these keys
(``on_save_checkpoint``) and :mod:`rcot_lightning.checkpoints` reads them, and neither needs
the other's code for the names.

Example:
    >>> sorted({FORMAT_KEY: FORMAT_VERSION, ITERATION_KEY: 3, BUILD_CONFIG_KEY: {}})
    ['rcot_build_config', 'rcot_format', 'rcot_iteration']
"""

__all__ = ["BUILD_CONFIG_KEY", "FORMAT_KEY", "FORMAT_VERSION", "ITERATION_KEY"]

#: The format version of the file (an int). Files without it are older than version 1.
FORMAT_KEY = "rcot_format"
#: 1: stored targets are registry names (:mod:`rcot_lightning.checkpoints.spec`). Files without
#: :data:`FORMAT_KEY` are older: their targets are import paths, renamed through the
#: moved-names table (:data:`rcot_lightning.checkpoints.upgrade.MOVED`) on reading.
FORMAT_VERSION = 1
#: The config that rebuilds the module, a declarative spec (:mod:`rcot_lightning.checkpoints.load`).
BUILD_CONFIG_KEY = "rcot_build_config"
#: The module's iteration counter (one per training batch; ``global_step`` counts optimizer steps).
ITERATION_KEY = "rcot_iteration"
