"""One-line errors: what a command prints when it stops, and its exit status.

Errors a user can fix (an unknown config choice, a bad value, a missing file) end the command
with one line on stderr, ``rcot-train: error: <what and where>``, and exit status 2
(:func:`user_error_message` writes the line); set ``HYDRA_FULL_ERROR=1`` for the full traceback.
A Ctrl-C ends in one line and status 130. Anything else ends with one line too, naming the log
file that holds its traceback (:mod:`rcot_lightning.cli.crash_log`), and exit status 1.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import NoReturn

from omegaconf.errors import OmegaConfBaseException

from rcot_lightning.cli.config import job_overrides
from rcot_lightning.cli.crash_log import report_unexpected, write_traceback
from rcot_lightning.errors import ArgumentError, RCOTError, StopNow

#: Exit status of a command stopped by a user-fixable error (argparse's convention).
USAGE_ERROR = 2


def single_line(text: str) -> str:
    """Hydra's multi-line messages (e.g. the list of available options) on one line."""
    parts: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if raw.startswith("\t") or raw.startswith("    "):
            options.append(line)
            continue
        if options:
            parts[-1] += " " + ", ".join(options)
            options = []
        parts.append(line.rstrip(":") + (":" if line.endswith(":") else ""))
    if options:
        if parts:
            parts[-1] += " " + ", ".join(options)
        else:
            parts.append(", ".join(options))
    return "; ".join(parts)


def _instantiated_key(err: BaseException) -> str | None:
    """The config key of the node whose instantiation raised ``err`` (Hydra's ``full_key``)."""
    from hydra.errors import InstantiationException

    if isinstance(err, InstantiationException):
        for line in str(err).splitlines():
            if line.startswith("full_key: "):
                return line[len("full_key: ") :].strip() or None
    return None


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or during, outermost first."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def user_error_message(err: BaseException) -> str | None:
    """The one-line message for an error a user caused, or None for a bug.

    An :class:`ArgumentError` raised while Hydra instantiated a config node is named by the
    node's key (``data.degradation.sigma must be >= 0``, not ``sigma must be >= 0``).

    User errors: :class:`RCOTError` anywhere in the exception chain, Hydra's composition,
    override and instantiation errors, OmegaConf's config errors and Lightning's
    misconfiguration errors.
    """
    from hydra.errors import HydraException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from rcot_lightning.data.specs import renamed_hint

    chain = _chain(err)
    for position, item in enumerate(chain):
        if isinstance(item, ArgumentError):
            # Built by Hydra from a config node: name the argument by its config key.
            key = next(filter(None, map(_instantiated_key, chain[:position])), None)
            return single_line(item.at(_typed_key(key)) if key else str(item))
        if isinstance(item, RCOTError):
            return single_line(worker_message(str(item)) or str(item))
    for item in chain:
        if isinstance(item, (HydraException, OmegaConfBaseException, MisconfigurationException)):
            text = str(item).split("\nConfig search path:")[0]
            message = single_line(text)
            if "LexerNoViableAlt" in message or "token recognition error" in message:
                message += (
                    "; quote a value that has spaces, ~, non-ASCII letters or other special "
                    "characters, e.g. \"data.folders.root='~/my photos'\""
                )
            cause = item.__cause__
            if isinstance(cause, (TypeError, ValueError)) and str(cause) not in message:
                message = f"{message}: {single_line(str(cause))}"
            if "Could not override 'data.folders.root'" in message:
                message += (
                    "; with several tasks (experiment=allinone, data=allinone) each task has its "
                    "own root: data.tasks.<task>.folders.root=... (e.g. "
                    "data.tasks.noise.folders.root=...)"
                )
            renamed = renamed_hint(message) or moved_model_hint(message)
            if renamed is not None:
                message += f"; {renamed}"
            message = _without_append_advice(message)
            if "Could not override 'data.degradation" in message:
                message += (
                    "; data.degradation is the task's: override task.degradation.<key> "
                    "(e.g. task.degradation.sigma=50)"
                )
            return message
    return None


#: Nodes built from another node the user sets: (built key, the key the user types).
_SET_THROUGH = (("data.degradation", "task.degradation"),)


def _typed_key(key: str, overrides: list[str] | None = None) -> str:
    """The key the user set for a node built under ``key``: ``data.degradation`` is the task's
    ``task.degradation`` (the data config interpolates it), so an error names the latter unless
    the command line set ``data.degradation`` itself.

    Example:
        >>> _typed_key("data.degradation", ["task.degradation.sigma=-5"])
        'task.degradation'
        >>> _typed_key("data.degradation", ["data.degradation.sigma=-5"])
        'data.degradation'
    """
    if overrides is None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():  # not a command: no key was typed
            return key
        overrides = job_overrides()
    names = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    for built, typed in _SET_THROUGH:
        under = key == built or key.startswith(built + ".")
        if under and not any(n == built or n.startswith(built + ".") for n in names):
            return typed + key[len(built) :]
    return key


def moved_model_hint(message: str) -> str | None:
    """The new key of an old ``model`` key a failed command-line override names, if any.

    Example:
        >>> moved_model_hint("Could not override 'model.map_grad_clip'.")
        'model.map_grad_clip was moved; use model.clipping.map instead'
        >>> moved_model_hint("Could not override 'model.lambda_gp'.")
        'model.lambda_gp was moved; use model.objective.lambda_gp instead'
    """
    from rcot_lightning.checkpoints.upgrade import LEGACY_OBJECTIVE_KEYS, NESTED_SETTINGS

    found = re.search(r"Could not override 'model\.(\w+)'", message)
    if found is None:
        return None
    old = found.group(1)
    if old in NESTED_SETTINGS:
        group, field = NESTED_SETTINGS[old]
        return f"model.{old} was moved; use model.{group}.{field} instead"
    if old in LEGACY_OBJECTIVE_KEYS:
        return f"model.{old} was moved; use model.objective.{old} instead"
    return None


def _without_append_advice(message: str) -> str:
    """``message`` without Hydra's "To append to your config use +key=value" advice, which
    adds a key nothing reads when the key was misspelt or moved; says what to check instead.

    Example:
        >>> _without_append_advice("Could not override 'model.x'.; To append to your config "
        ...                        "use +model.x=1")
        "Could not override 'model.x': no such key; check its spelling (--cfg job on the command \
line prints every key)"
    """
    found = re.search(
        r"Could not override '([^']+)'\.?;? ?To append to your config use \+[^;\s]+", message
    )
    if found is None:
        return message
    key = found.group(1)
    rest = message[found.end() :]
    if rest.startswith("; "):  # a hint to the new key follows
        return f"Could not override '{key}': no such key{rest}"
    return (
        f"Could not override '{key}': no such key; check its spelling (--cfg job on the "
        f"command line prints every key){rest}"
    )


def worker_message(text: str) -> str | None:
    r"""The error of a DataLoader worker without the traceback torch puts in its message.

    torch re-raises a worker's exception as ``Caught <Type> in DataLoader worker process N.
    Original Traceback (most recent call last): ...``; the last line holds the message.

    Example:
        >>> worker_message("Caught RCOTError in DataLoader worker process 0.\nOriginal "
        ...                "Traceback (most recent call last):\n  File x\n"
        ...                "rcot_lightning.errors.RCOTError: image a.png is corrupt")
        'image a.png is corrupt'
        >>> worker_message("plain") is None
        True
    """
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return None
    last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
    head, colon, message = last.partition(": ")
    return message.strip() if colon and " " not in head else last.strip()


#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


def interrupted(prog: str, err: BaseException) -> NoReturn:
    """Print one line for a Ctrl-C and exit 130 (atomic writes leave no partial file)."""
    import signal

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the line
    detail = f" ({err})" if str(err) else ""
    sys.stderr.write(
        f"{prog}: interrupted by Ctrl-C{detail}; files already written are complete and no "
        "partial file was left\n"
    )
    sys.stderr.flush()
    raise SystemExit(INTERRUPTED)


def fail(prog: str, message: str) -> NoReturn:
    """Print ``<prog>: error: <message>`` to stderr and exit with status 2."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(USAGE_ERROR)


#: Hydra's switch: with "1" it raises an error instead of printing its own multi-line report.
_FULL_ERROR = "HYDRA_FULL_ERROR"
#: The user's own ``HYDRA_FULL_ERROR``, for the processes a command starts (DDP ranks): they
#: inherit the "1" that :func:`command` sets.
_ASKED = "RCOT_FULL_ERROR"


def full_error_asked() -> bool:
    """Whether the user asked for full tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get(_ASKED, os.environ.get(_FULL_ERROR)) == "1"


@contextlib.contextmanager
def exit_on_user_error(prog: str) -> Iterator[None]:
    """End a user error with one line and status 2, anything else with one line and status 1.

    Inside a task function, raising :class:`SystemExit` also keeps Hydra from printing its own
    "Error executing job" line first. With ``HYDRA_FULL_ERROR=1`` errors propagate unchanged.
    """
    try:
        yield
    except (KeyboardInterrupt, StopNow) as err:
        if full_error_asked():
            raise
        interrupted(prog, err)
    except Exception as err:
        if full_error_asked():
            raise
        message = user_error_message(err)
        if message is None:
            report_unexpected(prog, err)
        if worker_message(str(err)) is not None or any(worker_message(str(e)) for e in _chain(err)):
            message += f" (worker traceback: {write_traceback(prog, err)})"
        fail(prog, message)
