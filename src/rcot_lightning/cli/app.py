"""What the Hydra entry points share: one-line errors, the Trainer, summaries.

The entry points (``train``, ``eval``, ``restore``) stay thin: they compose a config, call the
helpers here, build the Lightning objects and run them. Nothing in the library imports this
module.

Errors a user can fix (an unknown config choice, a bad value, a missing file) end the command
with one line on stderr, ``rcot-train: error: <what and where>``, and exit status 2; set
``HYDRA_FULL_ERROR=1`` for the full traceback. Anything else ends with one line too, naming
the log file that holds its traceback (:mod:`rcot_lightning.cli.crash_log`), and exit status 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import rcot_lightning.conf  # noqa: F401  (registers the configs' resolvers, ${rcot_run_dir:}, ...)
from rcot_lightning.cli.checks import check_extra, check_trainer_values
from rcot_lightning.cli.crash_log import report_unexpected, write_traceback
from rcot_lightning.errors import ArgumentError, RCOTError, StopNow

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

log = logging.getLogger(__name__)

#: Exit status of a command stopped by a user-fixable error (argparse's convention).
USAGE_ERROR = 2

#: The only strategy RCOT can use with DDP out of the box: each of the two alternating backward
#: passes reaches the parameters of one network only.
DDP_STRATEGY = "ddp_find_unused_parameters_true"


# --------------------------------------------------------------------------------- errors
def _one_line(text: str) -> str:
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
            return _one_line(item.at(_typed_key(key)) if key else str(item))
        if isinstance(item, RCOTError):
            return _one_line(worker_message(str(item)) or str(item))
    for item in chain:
        if isinstance(item, (HydraException, OmegaConfBaseException, MisconfigurationException)):
            text = str(item).split("\nConfig search path:")[0]
            message = _one_line(text)
            if "LexerNoViableAlt" in message or "token recognition error" in message:
                message += (
                    "; quote a value that has spaces, ~, non-ASCII letters or other special "
                    "characters, e.g. \"data.folders.root='~/my photos'\""
                )
            cause = item.__cause__
            if isinstance(cause, (TypeError, ValueError)) and str(cause) not in message:
                message = f"{message}: {_one_line(str(cause))}"
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


def run_cli(prog: str, hydra_main: Callable[[], Any]) -> None:
    """Run :func:`command` ``(prog, hydra_main)`` now (entry points that rewrite ``sys.argv``)."""
    command(prog, hydra_main)()


# -------------------------------------------------------------------------------- trainer
#: What to do about a Trainer setting that Lightning rejects, by config key.
_TRAINER_HINTS = {
    "accelerator": "use hardware=auto (a GPU if there is one, else the CPU), hardware=cpu, or "
    "hardware=bf16 for mixed precision on a CPU",
    "devices": "use a positive number of devices, a list of device ids, or 'auto'",
    "num_nodes": "use an integer >= 1",
    "precision": "use 32-true, bf16-mixed, 16-mixed (GPU) or 64-true, or pick a hardware config "
    "(hardware=cpu, bf16, gpu, fp16)",
    "strategy": f"use auto (several processes get {DDP_STRATEGY})",
}

#: Lightning errors that name no Trainer argument: (text of the message, the argument).
_UNNAMED = (
    ("gpu backend", "accelerator"),
    ("machine only has", "devices"),
    ("timer(duration=", "max_time"),
)


def trainer_error_message(err: BaseException, trainer: Mapping[str, Any]) -> str:
    """Lightning's error about ``trainer`` (the resolved config) as one line naming the key.

    Example:
        >>> error = ValueError("`Trainer(num_nodes=0)` is invalid.")
        >>> trainer_error_message(error, {"devices": 1, "num_nodes": 0})
        'trainer.num_nodes=0: `Trainer(num_nodes=0)` is invalid; use an integer >= 1'
    """
    text = _one_line(str(err)).rstrip(".")
    named = [(m.start(), str(k)) for k in trainer if (m := re.search(rf"\b{k}\b", text, re.I))]
    key = min(named)[1] if named else next((k for w, k in _UNNAMED if w in text.lower()), None)
    if key is None:
        return f"trainer: {text}"
    if "unexpected keyword argument" in text:
        hint = "not an argument of lightning.pytorch.Trainer: remove it or correct its name"
    else:
        hint = _TRAINER_HINTS.get(key, "")
    return f"trainer.{key}={trainer.get(key)}: {text}" + (f"; {hint}" if hint else "")


def _drop(record: logging.LogRecord) -> bool:
    return False


def _emulated_bf16(settings: Mapping[str, Any]) -> bool:
    """Whether ``settings`` ask for bf16 on a CPU that has no native bf16 arithmetic."""
    import torch

    from rcot_lightning.hardware import native_bf16

    if not str(settings.get("precision", "32-true")).startswith("bf16"):
        return False
    accelerator = str(settings.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    return on_cpu and not native_bf16()


def build_trainer(node: DictConfig, **kwargs: Any) -> Trainer:
    """The Trainer of config ``node`` (``cfg.trainer``) with ``kwargs`` (callbacks, logger, ...).

    With ``strategy: auto`` and more than one process (devices or nodes), the strategy is DDP with
    ``find_unused_parameters=True``: RCOT's potential and map backward passes each reach one
    network only, which the plain DDP that Lightning picks treats as an error.

    Raises:
        RCOTError: a setting of the wrong type (``trainer.max_steps=abc``, checked here:
            :func:`~rcot_lightning.cli.checks.check_trainer_values`), a setting Lightning rejects
            (the key and its value, Lightning's reason, what to do), ``16-mixed`` on a CPU
            (Lightning would run bf16-mixed instead), or ``gradient_clip_val`` set (Lightning
            rejects it only inside ``fit``, since RCOT optimises manually).
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.accelerators import CPUAccelerator

    settings = as_dict(node)
    check_trainer_values(settings)
    if settings.get("gradient_clip_val") not in (None, 0, 0.0):
        raise RCOTError(
            "trainer.gradient_clip_val cannot be used with RCOT's two manual optimisers; "
            "set model.clipping.map and/or model.clipping.potential instead"
        )
    strategy = settings.get("strategy", "auto")
    if strategy in ("ddp", "ddp_spawn"):
        log.warning(
            "trainer.strategy=%s: RCOTModule's alternating backward passes need "
            "find_unused_parameters=True; use %s (strategy: auto picks it)",
            strategy,
            DDP_STRATEGY,
        )

    if _emulated_bf16(settings):  # many times slower than fp32 there, never faster
        from rcot_lightning.hardware import bf16_fallback_note

        log.warning(bf16_fallback_note("trainer.precision"))
        merged = OmegaConf.merge(node, {"precision": "32-true"})
        assert isinstance(merged, DictConfig)
        node = merged

    def build(**extra: Any) -> Trainer:
        try:
            return instantiate(node, _convert_="all", **kwargs, **extra)
        except InstantiationException as err:
            cause = err.__cause__
            if isinstance(cause, (MisconfigurationException, ValueError, TypeError)):
                raise RCOTError(trainer_error_message(cause, settings)) from cause
            raise

    trainer = build()
    if strategy == "auto" and trainer.world_size > 1:
        # Built again without repeating Lightning's lines about the devices.
        lightning_info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        lightning_info.addFilter(_drop)
        try:
            trainer = build(strategy=DDP_STRATEGY)
        finally:
            lightning_info.removeFilter(_drop)
    precision = str(settings.get("precision"))
    if precision in ("16", "16-mixed") and isinstance(trainer.accelerator, CPUAccelerator):
        raise RCOTError(
            f"trainer.precision={precision} (hardware=fp16) needs a CUDA GPU and this run uses "
            "the CPU; use hardware=bf16 for mixed precision on a CPU"
        )
    return trainer


def checkpoint_of(cfg: DictConfig) -> str | None:
    """The command's ``ckpt_path`` (``None`` when unset), ``last`` resolved to the
    ``checkpoints/last.ckpt`` of the latest training run under ``cfg.train_runs``.

    A command with a task (``rcot-eval task=derain``) takes the latest run of that task only;
    ``last`` prints one line naming the run and its task (and newer runs of another task it
    passed over).

    Raises:
        RCOTError: ``ckpt_path=last`` and no training run (of the command's task) has a
            ``last.ckpt`` (the message names the folder searched and what to pass instead).
    """
    from rcot_lightning.cli.run_folder import last_training_run

    value = cfg.get("ckpt_path")
    if value is None or str(value) == "":
        return None
    if str(value) != "last":
        return str(value)
    task = cfg.get("task")
    wanted = task.get("name") if isinstance(task, DictConfig) else None
    wanted = str(wanted) if wanted else None
    chosen = last_training_run(str(cfg.get("train_runs", "outputs/train/runs")), wanted)
    report(chosen.describe(wanted))
    return str(chosen.checkpoint)


def job_overrides() -> list[str]:
    """This Hydra job's overrides (one job of a sweep: its chosen values); [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def as_dict(node: Any) -> dict[str, Any]:
    """A resolved plain dict of a config node (``{}`` for None)."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        container = OmegaConf.to_container(node, resolve=True)
        assert isinstance(container, dict)
        return {str(k): v for k, v in container.items()}
    return dict(node)


def instantiate_group(node: DictConfig | None, group: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-nodes group (callbacks, logger)."""
    from hydra.utils import instantiate

    if node is None:
        return []
    if not isinstance(node, DictConfig):
        raise RCOTError(f"{group} must be a mapping of named nodes with `_target_`, got {node!r}")
    objects = []
    for name, item in node.items():
        name = str(name)
        if item is None:
            continue
        if not isinstance(item, DictConfig) or "_target_" not in item:
            raise RCOTError(f"{group}.{name} must be a node with a `_target_`, got {item!r}")
        check_extra(f"{group}.{name}", str(item["_target_"]))
        objects.append(instantiate(item, _convert_="partial"))
    return objects


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


# -------------------------------------------------------------------------------- summary
#: The logger name a command's reports carry in its log file.
REPORT_LOGGER = "rcot_lightning.report"


def report(text: str) -> None:
    """Show a command's result to its user on standard output, and keep it in the run's log
    file (``<run>/<command>.log``, Hydra's file handler) without repeating it on the console.

    Example:
        >>> report("restored 1 image(s) into out")
        restored 1 image(s) into out
    """
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    record = logging.getLogger(REPORT_LOGGER).makeRecord(
        REPORT_LOGGER, logging.INFO, __file__, 0, text, (), None
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):.{digits}f}"


def checkpoint_files(trainer: Any) -> tuple[str, str, str] | None:
    """``(folder, best, last)`` of the trainer's checkpoint callback (``""`` for none yet)."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or not getattr(checkpoint, "dirpath", None):
        return None
    best = getattr(checkpoint, "best_model_path", "") or ""
    last = getattr(checkpoint, "last_model_path", "") or ""
    return str(checkpoint.dirpath), best, last


def training_summary(
    trainer: Any,
    metrics: Mapping[str, Any],
    image_paths: list[str],
    iterations: int | None = None,
    files: tuple[str, str, str] | None = None,
) -> str:
    """A few lines: validation PSNR/SSIM of the input and of the output, where files are.

    Args:
        trainer: the trainer after fit (and test).
        metrics: the last logged values (``val/*`` of the last validation, ``test/*``).
        image_paths: pictures written by the image callback.
        iterations: the iterations trained (read after fit: testing the best checkpoint loads
            its iteration count into the module); default the module's count.
        files: :func:`checkpoint_files` read after fit (testing a checkpoint restores the
            callback's state of that time); default read now.
    """
    lines = ["", "RCOT training summary"]
    psnr_in, ssim_in = metrics.get("val/psnr_input"), metrics.get("val/ssim_input")
    psnr_out, ssim_out = metrics.get("val/psnr"), metrics.get("val/ssim")
    if psnr_out is not None:
        gain = "" if psnr_in is None else f"  ({float(psnr_out) - float(psnr_in):+.2f} dB)"
        lines += [
            f"  validation input   : PSNR {_fmt(psnr_in, 2)} dB  SSIM {_fmt(ssim_in, 4)}",
            f"  validation restored: PSNR {_fmt(psnr_out, 2)} dB  SSIM {_fmt(ssim_out, 4)}{gain}",
        ]
    if "test/psnr" in metrics:
        lines.append(
            f"  test (full size)   : PSNR {_fmt(metrics.get('test/psnr_input'), 2)} -> "
            f"{_fmt(metrics['test/psnr'], 2)} dB, SSIM {_fmt(metrics.get('test/ssim_input'), 4)}"
            f" -> {_fmt(metrics.get('test/ssim'), 4)}"
        )
    if iterations is None:
        iterations = getattr(trainer.lightning_module, "iteration", None)
    lines.append(f"  iterations: {iterations}  (global steps: {trainer.global_step})")
    files = checkpoint_files(trainer) if files is None else files
    if files is not None:
        folder, best, last = files
        # Name only files that exist: a stale path would send the user to nothing.
        best, last = (Path(p).name if p and Path(p).is_file() else "none" for p in (best, last))
        lines.append(f"  checkpoints: {folder}")
        lines.append(f"    best: {best}   last: {last}")
    if image_paths:
        lines.append(
            f"  pictures: {Path(image_paths[-1]).parent}  (latest {Path(image_paths[-1]).name})"
        )
    for logger in trainer.loggers:
        directory = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if directory:
            lines.append(f"  {logger_label(logger)}: {directory}")
    if psnr_out is None and trainer.lightning_module is not None:
        lines += _no_validation_hint(trainer)
    return "\n".join(lines)


#: What the summary calls each logger, by the Lightning class it is or derives from.
_LOGGER_LABELS = {
    "CSVLogger": "metrics (CSV)",
    "TensorBoardLogger": "TensorBoard logs",
    "WandbLogger": "wandb run",
    "MLFlowLogger": "MLflow run",
}


def logger_label(logger: Any) -> str:
    """``metrics (CSV)`` for a CSV logger (ours writes atomically), else the class name.

    Example:
        >>> from rcot_lightning.checkpoints.atomic_io import AtomicCSVLogger
        >>> logger_label(AtomicCSVLogger("/tmp"))
        'metrics (CSV)'
    """
    for cls in type(logger).__mro__:
        if cls.__name__ in _LOGGER_LABELS:
            return _LOGGER_LABELS[cls.__name__]
    return type(logger).__name__


def _no_validation_hint(trainer: Any) -> list[str]:
    """Why a run has no validation score, pictures or best checkpoint, and how to get one."""
    if not trainer.num_val_batches or not any(trainer.num_val_batches):
        return ["  no validation: the data have no validation split (data.val_*_dir)"]
    interval = trainer.val_check_batch
    when = (
        f"every {interval} training batches"
        if isinstance(interval, int) and interval < trainer.num_training_batches
        else f"at the end of each epoch of {trainer.num_training_batches:,} training batches"
    )
    return [
        f"  no validation yet: the run ended before the first one ({when}), so there is no "
        "validation score, no validation picture and no best checkpoint;",
        "    validate sooner with trainer.val_check_interval=N (every N training batches), "
        "or train the short demo recipe on your data with recipe=demo",
    ]
