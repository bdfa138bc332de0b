"""An unexpected exception in an entry point: one line on stderr, the traceback in a log file.

User errors already end in one line (:mod:`rcot_lightning.cli.one_line`). Anything else is a bug or
an environment problem; its traceback matters for a report but buries the message on a terminal. It
goes to the run's log file (``<run folder>/<task>.log``, which Hydra's file handler writes) or,
before a run folder exists, to a file in the temporary folder; stderr gets one line that names the
error and that file. ``HYDRA_FULL_ERROR=1`` keeps the full traceback on stderr.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NoReturn

__all__ = ["INTERNAL_ERROR", "report_unexpected", "write_traceback"]

#: Exit status of a command ended by an unexpected exception (Python's own for one).
INTERNAL_ERROR = 1


def write_traceback(prog: str, err: BaseException) -> Path:
    """Append ``err``'s traceback to the run's log file (or a new temporary file); its path."""
    record = logging.LogRecord(
        prog,
        logging.ERROR,
        __file__,
        0,
        "unexpected error",
        None,
        (type(err), err, err.__traceback__),
    )
    for handler in reversed(logging.getLogger().handlers):  # the run's, added last
        if isinstance(handler, logging.FileHandler) and handler.baseFilename != os.devnull:
            handler.handle(record)
            handler.flush()
            return Path(handler.baseFilename)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"{prog}-{stamp}-{os.getpid()}.log"
    path.write_text("".join(traceback.format_exception(type(err), err, err.__traceback__)))
    return path


def report_unexpected(prog: str, err: BaseException) -> NoReturn:
    """Print ``<prog>: error: unexpected <Type>: <message> (traceback: <file>)`` and exit 1."""
    path = write_traceback(prog, err)
    message = " ".join(str(err).split()) or "(no message)"
    if len(message) > 300:
        message = message[:297] + "..."
    sys.stderr.write(
        f"{prog}: error: unexpected {type(err).__name__}: {message} (traceback: {path}; "
        "HYDRA_FULL_ERROR=1 prints it)\n"
    )
    sys.stderr.flush()
    raise SystemExit(INTERNAL_ERROR)
