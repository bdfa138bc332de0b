"""Every exception class of the library, in one module.

Users see one type for mistakes they can fix (paths, files, config values):
:class:`RCOTError` (a :class:`ValueError`) and its kinds, :class:`ArgumentError` (a bad argument
of a torch-only class or function, named), :class:`MissingExtraError`, :class:`BadImageError`,
:class:`DivergedError` and :class:`RequestStopped`. The others are how a run stops:
:class:`StopNow` (a second Ctrl-C), :class:`TrainingInterrupted` (a stop signal, after a
checkpoint) and :class:`Terminated` (SIGTERM in the demo). The modules that raise them keep their
old names importable (``rcot_lightning.module.DivergedError``, ...).
"""

from __future__ import annotations

import signal


class RCOTError(ValueError):
    """A problem with user input: a file, a folder or a config value.

    The message names the offending file or config key and says what to do about it.
    Subclassing :class:`ValueError` keeps ``except ValueError`` handlers working.
    """


class StopNow(BaseException):
    """The user pressed Ctrl-C a second time: stop at once (exit status 130).

    Not a :class:`KeyboardInterrupt`: Lightning turns that into exit status 1. The entry points
    report it in one line.
    """


class MissingExtraError(RCOTError):
    """An optional dependency is needed for this input; the message names the extra to install.

    Unlike a bad file, it is never skipped (``data.folders.skip_bad_images`` does not apply).
    """


class ArgumentError(RCOTError):
    """A bad argument of a torch-only class or function: the message names the argument.

    Torch-only layers do not know where their arguments came from. An entry point that built the
    object from a config node names the key instead: ``err.at("data.degradation")`` reads
    ``data.degradation.sigma must be >= 0, got -5`` (``rcot_lightning.cli.one_line`` does this for
    objects built by Hydra, whose errors carry the node's key).

    Args:
        argument: the argument's name; None when the problem is the call as a whole.
        problem: what is wrong and what is allowed, e.g. ``must be >= 0, got -5`` (a leading
            ``:``, ``[`` or ``=`` is kept next to the name: ``heads[2]=3 must divide ...``).

    Example:
        >>> err = ArgumentError("sigma", "must be >= 0, got -5")
        >>> str(err), err.at("data.degradation")
        ('sigma must be >= 0, got -5', 'data.degradation.sigma must be >= 0, got -5')
    """

    def __init__(self, argument: str | None, problem: str) -> None:
        self.argument, self.problem = argument, problem
        super().__init__(self._join(argument, problem))

    @staticmethod
    def _join(name: str | None, problem: str) -> str:
        if not name:
            return problem
        return f"{name}{problem}" if problem[:1] in (":", "[", "=") else f"{name} {problem}"

    def at(self, key: str) -> str:
        """The message with the argument named by its config key under ``key``."""
        if not self.argument:
            return f"{key}: {self.problem}"
        return self._join(f"{key}.{self.argument}", self.problem)


class BadImageError(RCOTError):
    """A file that cannot be decoded as an image; :attr:`reason` is the decoder's word.

    The message names the training key that skips such files; other commands (``rcot-restore``)
    catch this type and name their own. (One message argument, like its base: torch re-raises
    a DataLoader worker's exception as ``type(message)``.)
    """

    reason = ""


class DivergedError(RCOTError):
    """Training stopped: too many consecutive iterations had a non-finite loss or gradient."""


class RequestStopped(RCOTError):
    """A restoration stopped between two tiles: its time is up, its page was closed, or the
    demo is stopping."""


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving ``checkpoint`` (None: nothing to save).

    Attributes:
        signum: the signal number.
        checkpoint: the checkpoint holding the state at ``iteration``.
        iteration: the module's iteration count when it stopped.
        exit_status: ``128 + signum``, the shell's status for a process ended by that signal.
    """

    def __init__(self, signum: int, checkpoint: str | None, iteration: int | None) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.iteration = iteration
        self.exit_status = 128 + signum
        name = signal.Signals(signum).name
        where = f"; checkpoint of iteration {iteration}: {checkpoint}" if checkpoint else ""
        super().__init__(f"training interrupted by {name}{where}")


class Terminated(BaseException):
    """Raised in the demo's main thread by SIGTERM (a BaseException: nothing on the way catches
    it)."""
