"""Lines of other packages kept off a user's console.

Lightning advertises its cloud services on every ``Trainer`` (``💡 Tip: ... litlogger``,
``litmodels``), its pytree helper triggers a deprecation warning of torch that a user can do
nothing about, and its checkpoint callback gives manual-optimisation advice that does not apply
to RCOT (:data:`NOT_APPLICABLE`). :func:`quiet_third_party` drops exactly those, by their text,
so any other message still shows. The entry points call it, and so does building an
:class:`~rcot_lightning.RCOTModule`: a user who builds their own ``Trainer`` around one gets the
same console. Importing the library changes nothing.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["NOT_APPLICABLE", "quiet_third_party"]

#: Words of the advertisements Lightning logs at INFO (its cloud logger and model registry).
ADVERTISEMENTS = ("litlogger", "litmodels")

#: Deprecation warnings raised inside a dependency about its own dependencies.
FOREIGN_DEPRECATIONS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)

#: Warnings of Lightning that do not apply to RCOT. ``ModelCheckpoint`` with
#: ``every_n_train_steps`` under manual optimisation asks for the weights *before* the step, for
#: a score logged in ``training_step``; RCOT's checkpoints are chosen by validation scores, which
#: were computed on the weights the checkpoint holds (after the step), so there is nothing to do.
NOT_APPLICABLE = (r"Using ModelCheckpoint with manual optimization and every_n_train_steps",)

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
    for message in (*FOREIGN_DEPRECATIONS, *NOT_APPLICABLE):
        warnings.filterwarnings("ignore", message=message)
