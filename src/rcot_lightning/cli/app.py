"""What the Hydra entry points share: the console entry point, one console, and the names of
the entry layer in one place.

The entry points (``train``, ``eval``, ``restore``, ``export``, ``demo``) stay thin: they compose a
config, call the helpers of the entry layer, build the Lightning objects and run them. Each
helper lives with its job and is importable from here as before:

* :mod:`~rcot_lightning.cli.one_line`: one-line errors and exit statuses
  (:func:`exit_on_user_error`, :func:`user_error_message`), with
  :mod:`~rcot_lightning.cli.crash_log` for the traceback of an unexpected error;
* :mod:`~rcot_lightning.cli.trainer`: the Trainer (:func:`build_trainer`);
* :mod:`~rcot_lightning.cli.config`: what a command reads from its config (:func:`as_dict`,
  :func:`job_overrides`, :func:`checkpoint_of`, :func:`instantiate_group`);
* :mod:`~rcot_lightning.cli.summary`: what a command prints at the end (:func:`report`,
  :func:`training_summary`).

This module holds :func:`command` (the console entry point: ``sys.argv`` quoting and
``HYDRA_FULL_ERROR``) and :func:`single_log_handlers` (one console). Nothing in the library
imports the entry layer.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import rcot_lightning.conf  # noqa: F401  (registers the configs' resolvers, ${rcot_run_dir:}, ...)

# The entry layer's names, importable from here as before the split.
from rcot_lightning.cli.config import as_dict, checkpoint_of, instantiate_group, job_overrides
from rcot_lightning.cli.one_line import (
    _ASKED,
    _FULL_ERROR,
    INTERRUPTED,
    USAGE_ERROR,
    exit_on_user_error,
    fail,
    full_error_asked,
    interrupted,
    moved_model_hint,
    single_line,
    user_error_message,
    worker_message,
)
from rcot_lightning.cli.one_line import _instantiated_key as _instantiated_key
from rcot_lightning.cli.summary import (
    REPORT_LOGGER,
    checkpoint_files,
    logger_label,
    report,
    training_summary,
)
from rcot_lightning.cli.trainer import DDP_STRATEGY, build_trainer, trainer_error_message

__all__ = [
    "DDP_STRATEGY",
    "INTERRUPTED",
    "LOG_FILE_ONLY",
    "REPORT_LOGGER",
    "USAGE_ERROR",
    "as_dict",
    "build_trainer",
    "checkpoint_files",
    "checkpoint_of",
    "command",
    "exit_on_user_error",
    "fail",
    "full_error_asked",
    "instantiate_group",
    "interrupted",
    "job_overrides",
    "logger_label",
    "moved_model_hint",
    "quote_path_value",
    "report",
    "run_cli",
    "single_line",
    "single_log_handlers",
    "trainer_error_message",
    "training_summary",
    "user_error_message",
    "worker_message",
]

#: The name tests knew :func:`single_line` by.
_one_line = single_line

#: Characters of Hydra's override grammar: a value holding one is left as the user wrote it.
_GRAMMAR = set("[]{}(),'\"\\=$ ")


def quote_path_value(arg: str) -> str:
    """``key=~/x`` or a non-ASCII value as ``key='~/x'``, which Hydra's grammar accepts.

    Hydra's lexer rejects an unquoted ``~`` and non-ASCII letters
    (``data.folders.root=~/Rain100L``, a path with accents); the README's commands are typed
    that way. Values with any grammar
    character (lists, sweeps, interpolations, quotes) are left alone.

    Example:
        >>> quote_path_value("data.folders.root=~/R100L"), quote_path_value("input=/tmp/été.png")
        ("data.folders.root='~/R100L'", "input='/tmp/été.png'")
        >>> quote_path_value("~callbacks.x"), quote_path_value("a=[1,2]"), quote_path_value("a=1")
        ('~callbacks.x', 'a=[1,2]', 'a=1')
    """
    key, equals, value = arg.partition("=")
    if not equals or not value or not re.fullmatch(r"[+~]{0,2}[\w.\-/@]+", key):
        return arg
    if "~" not in value and value.isascii():
        return arg
    if _GRAMMAR & set(value):
        return arg
    return f"{key}='{value}'"


def command(prog: str, hydra_main: Callable[[], Any]) -> Callable[[], None]:
    """The console entry point ``prog``: runs a ``@hydra.main`` function with one-line errors.

    Hydra reports an error of its own (a bad override, a missing config) in many lines and exits
    with status 1, unless ``HYDRA_FULL_ERROR=1``: then it raises the error, which is reported
    here like an error of the task. The returned function is the entry point itself, so the
    way from ``main`` to the task is one frame.
    """

    def main() -> None:
        sys.argv = [*sys.argv[:1], *map(quote_path_value, sys.argv[1:])]
        saved = {key: os.environ.get(key) for key in (_ASKED, _FULL_ERROR)}
        os.environ[_ASKED] = "1" if full_error_asked() else "0"
        os.environ[_FULL_ERROR] = "1"
        take_free_cores(prog)
        try:
            with exit_on_user_error(prog):
                hydra_main()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    main.__doc__ = f"Console entry point ``{prog}``."
    return main


def take_free_cores(prog: str) -> None:
    """On a busy machine, run torch (and the processes this command starts) on the free cores
    only, and say so in one line on stderr (:func:`~rcot_lightning.hardware.busy_machine_threads`).
    """
    from rcot_lightning.hardware import busy_machine_threads

    chosen = busy_machine_threads()
    if chosen is None:
        return
    import torch

    threads, why = chosen
    os.environ["OMP_NUM_THREADS"] = str(threads)  # DDP processes and loader workers too
    torch.set_num_threads(threads)
    sys.stderr.write(f"{prog}: {why}\n")  # before any logging is set up, as one_line writes
    sys.stderr.flush()


def run_cli(prog: str, hydra_main: Callable[[], Any]) -> None:
    """Run :func:`command` ``(prog, hydra_main)`` now (entry points that rewrite ``sys.argv``)."""
    command(prog, hydra_main)()


#: ``extra=`` of a log call whose line belongs in the run's log file only, not on the console.
LOG_FILE_ONLY = {"log_file_only": True}

#: Lightning's lines about the devices, kept in the log file only: the recipe block (which names
#: the devices) is the first thing ``rcot-train`` prints.
_DEVICE_LINES = ("GPU available", "TPU available", "HPU available", "IPU available")


def _console_line(record: logging.LogRecord) -> bool:
    """Whether a record shows on the console (it always goes to the log file).

    Example:
        >>> _console_line(logging.makeLogRecord({"msg": "job overrides: x", **LOG_FILE_ONLY}))
        False
        >>> _console_line(logging.makeLogRecord({"msg": "GPU available: False, used: False",
        ...                                      "name": "lightning.pytorch.utilities.rank_zero"}))
        False
        >>> _console_line(logging.makeLogRecord({"msg": "trainer.precision=bf16-mixed: ..."}))
        True
    """
    if getattr(record, "log_file_only", False):
        return False
    lightning = str(record.name or "").startswith("lightning.")
    return not (lightning and str(record.msg).startswith(_DEVICE_LINES))


def single_log_handlers() -> None:
    """A console with the run's own lines: each message once, no third-party advertisements.

    ``import lightning`` attaches a console handler to the ``lightning`` logger that also
    propagates to the root logger, to which Hydra attaches its own console and file handlers:
    that handler is removed. Lightning's tips about its cloud services and deprecation warnings
    between two dependencies are dropped (:func:`rcot_lightning.console.quiet_third_party`).
    Lightning's device lines and lines logged with ``extra=LOG_FILE_ONLY`` go to the log file
    only (:func:`_console_line`).
    """
    import lightning  # noqa: F401  (attaches the handler being removed)

    from rcot_lightning.console import quiet_third_party

    if logging.getLogger().handlers:
        logger = logging.getLogger("lightning")
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
    for handler in logging.getLogger().handlers:
        console = isinstance(handler, logging.StreamHandler)
        file = isinstance(handler, logging.FileHandler)
        if console and not file and _console_line not in handler.filters:
            handler.addFilter(_console_line)
    quiet_third_party()
