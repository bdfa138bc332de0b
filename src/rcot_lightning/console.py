"""Lines of other packages kept off a user's console.

Lightning advertises its cloud services on every ``Trainer`` (``💡 Tip: ... litlogger``,
``litmodels``), and its pytree helper triggers a deprecation warning of torch that a user can do
nothing about. :func:`quiet_third_party` drops exactly those, by their text, so any other
message still shows. The entry points call it, and so does importing
:mod:`rcot_lightning.module`: a user who builds their own ``Trainer`` around ``RCOTModule`` gets
the same console.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_third_party"]

#: Words of the advertisements Lightning logs at INFO (its cloud logger and model registry).
ADVERTISEMENTS = ("litlogger", "litmodels")

#: Deprecation warnings raised inside a dependency about its own dependencies.
FOREIGN_DEPRECATIONS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)

#: The logger Lightning's ``rank_zero_info`` writes to.
_RANK_ZERO = "lightning.pytorch.utilities.rank_zero"


def _not_an_advertisement(record: logging.LogRecord) -> bool:
    message = str(record.msg).lower()
    return not any(word in message for word in ADVERTISEMENTS)


def quiet_third_party() -> None:
    """Drop Lightning's advertisements and the foreign deprecation warnings (idempotent).

    Example:
        >>> quiet_third_party()
        >>> logger = logging.getLogger(_RANK_ZERO)
        >>> logger.filter(logging.makeLogRecord({"msg": "Tip: try litlogger"}))
        False
        >>> bool(logger.filter(logging.makeLogRecord({"msg": "GPU available: False"})))
        True
    """
    logger = logging.getLogger(_RANK_ZERO)
    if _not_an_advertisement not in logger.filters:
        logger.addFilter(_not_an_advertisement)
    for message in FOREIGN_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message)
