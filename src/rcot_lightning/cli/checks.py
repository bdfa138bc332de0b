"""Checks of command-line values the entry points make before any work, each with one clear error.

Each of these used to end in a traceback, hang, or silently do something else: ``tile=abc``
(a ``ValueError`` from ``int``), ``tile=64.5`` (cut to 64), ``device=mps`` without Apple's GPU
("checkpoint unreadable"), and wandb online with a key but no network (a 110 s hang, then a
traceback). Trainer settings are Lightning's to check.

The one home of such checks: every entry point (and the demo page) takes its checker from here.
The settings of a restoration (device, precision, tile, tile overlap, self-ensemble) are checked
once, where they are used: :class:`rcot_lightning.inference.InferenceSettings`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from rcot_lightning import values
from rcot_lightning.errors import MissingExtraError, RCOTError

# Moved to the core (one check each); importable from here as before.
from rcot_lightning.inference import ensemble_size, resolve_device
from rcot_lightning.values import positive_int, tile_size

__all__ = [
    "BACKENDS",
    "check_backend",
    "check_device",
    "check_export_output",
    "check_extra",
    "check_trainer_values",
    "check_wandb_reachable",
    "check_writable_folder",
    "ensemble_size",
    "positive_int",
    "probe_map",
    "tile_size",
]

#: Seconds to wait for wandb's server before calling it unreachable.
WANDB_PROBE_TIMEOUT = 5.0


def _optional_flag(value: Any, key: str) -> Any:
    return None if value is None else values.flag(value, key, keyed=True)


def _batch_limit(value: Any, key: str) -> Any:
    return values.count_or_fraction(value, key, allow_none=True, keyed=True)


def _integer(minimum: int, allow_none: bool = True) -> Callable[[Any, str], Any]:
    def check(value: Any, key: str) -> Any:
        return values.at_least(value, key, minimum, allow_none=allow_none, keyed=True)

    return check


#: Trainer arguments that Lightning compares with numbers or uses as flags without checking
#: their type: ``trainer.max_steps=abc`` ended in ``'<' not supported between 'str' and 'int'``
#: naming no key, ``trainer.max_epochs=abc`` in an AssertionError, ``log_every_n_steps=abc`` in a
#: TypeError inside fit, ``enable_model_summary=abc`` was taken as true. Argument -> its check.
_TRAINER_VALUES: dict[str, Callable[[Any, str], Any]] = {
    "max_epochs": _integer(-1),
    "min_epochs": _integer(0),
    "max_steps": _integer(-1, allow_none=False),
    "min_steps": _integer(0),
    "num_sanity_val_steps": _integer(-1),
    "log_every_n_steps": _integer(0),
    "check_val_every_n_epoch": _integer(1),
    "accumulate_grad_batches": _integer(1, allow_none=False),
    **{f"limit_{stage}_batches": _batch_limit for stage in ("train", "val", "test", "predict")},
    **dict.fromkeys(
        (
            "enable_checkpointing",
            "enable_progress_bar",
            "enable_model_summary",
            "inference_mode",
            "detect_anomaly",
            "use_distributed_sampler",
            "sync_batchnorm",
            "barebones",
            "benchmark",
        ),
        _optional_flag,
    ),
    "deterministic": lambda v, k: values.one_of(v, k, (True, False, "warn", None), keyed=True),
}


def check_trainer_values(settings: Mapping[str, Any], prefix: str = "trainer") -> None:
    """Check the Trainer settings whose wrong type Lightning reports without their name (or not
    at all), before the Trainer is built; the others are Lightning's to check.

    Args:
        settings: the resolved ``trainer`` config.
        prefix: the config key of ``settings``, for messages.

    Raises:
        RCOTError: naming the key and what it takes, e.g. ``trainer.max_steps must be an integer
            >= -1, got 'abc'`` (-1: no limit).

    Example:
        >>> check_trainer_values({"max_steps": -1, "limit_val_batches": 0.5, "benchmark": None})
        >>> check_trainer_values({"max_epochs": "abc"})
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: trainer.max_epochs must be an integer >= -1 or null, \
got 'abc'
    """
    for name, check in _TRAINER_VALUES.items():
        if name in settings:
            check(settings[name], f"{prefix}.{name}")


def _ema_decay(value: Any, key: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise RCOTError(f"{key} must be a number in (0, 1) (e.g. 0.999) or null, got {value!r}")


#: Settings of the ``model`` node that RCOTModule or torch would refuse without their key.
_MODEL_VALUES: dict[str, Callable[[Any, str], Any]] = {
    "n_critic": lambda v, k: values.positive_int(v, k, keyed=True),
    "max_bad_steps": lambda v, k: values.positive_int(v, k, keyed=True),
    "ema_decay": _ema_decay,
    "seed": lambda v, k: values.at_least(v, k, 0, keyed=True),
    "map_optimizer.lr": lambda v, k: values.positive_number(v, k, keyed=True),
    "potential_optimizer.lr": lambda v, k: values.positive_number(v, k, keyed=True),
}


def check_model_values(model: Mapping[str, Any], prefix: str = "model") -> None:
    """Check the ``model`` settings whose wrong type the module or torch reports without their
    name (``'<' not supported``, an error inside ``configure_optimizers``), before building.

    Raises:
        RCOTError: naming the key, e.g. ``model.n_critic must be a positive integer, got 'abc'``.

    Example:
        >>> check_model_values({"n_critic": 2, "map_optimizer": {"lr": 1e-3}})
        >>> check_model_values({"map_optimizer": {"lr": "abc"}})
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: model.map_optimizer.lr must be a finite number > 0, \
got 'abc'
    """
    for name, check in _MODEL_VALUES.items():
        node: Any = model
        for part in name.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
            if node is None:
                break
        else:
            check(node, f"{prefix}.{name}")


def check_device(device: torch.device, key: str = "device") -> None:
    """Reject a device this machine does not have (kept for importers: the settings of a
    restoration check theirs with :func:`rcot_lightning.inference.resolve_device`)."""
    resolve_device(device, key)


def _wandb_online(node: Mapping[str, Any]) -> bool:
    target = str(node.get("_target_", ""))
    if not target.endswith("WandbLogger"):
        return False
    from rcot_lightning.conf import wandb_mode

    return not node.get("offline", False) and wandb_mode() != "offline"


def check_wandb_reachable(loggers: Mapping[str, Any] | None) -> None:
    """With an online wandb logger configured, fail fast if wandb's server cannot be reached.

    wandb itself retries for about two minutes and then raises from deep inside its start-up.

    Args:
        loggers: the resolved ``logger`` config group (name -> node with ``_target_``).

    Raises:
        RCOTError: the server (``WANDB_BASE_URL`` or api.wandb.ai) does not answer within
            :data:`WANDB_PROBE_TIMEOUT` seconds.
    """
    if not loggers or not any(
        isinstance(node, Mapping) and _wandb_online(node) for node in loggers.values()
    ):
        return
    url = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host = url.hostname or "api.wandb.ai"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=WANDB_PROBE_TIMEOUT):
            pass
    except OSError as err:
        raise RCOTError(
            f"logger=wandb: a wandb API key is configured but {host}:{port} cannot be reached "
            f"({err.strerror or err}); log offline with WANDB_MODE=offline (upload later with "
            "`wandb sync`) or use logger=csv"
        ) from None


def probe_map(net: torch.nn.Module, source: str, size: int = 32) -> None:
    """Run ``net`` once on a small fixed image; refuse it when it returns NaN or infinity.

    Finite weights can still overflow (a checkpoint scaled by 1e30): without this, restore would
    write black images and eval NaN rows with exit status 0.

    Args:
        net: the map, ``(B, 3, H, W) -> (B, 3, H, W)``, on its device.
        source: where it came from, named in the message (``ckpt_path: run/last.ckpt``).
        size: the probe's side (maps pad to their own multiple).

    Raises:
        RCOTError: naming ``source``.

    Example:
        >>> probe_map(torch.nn.Identity(), "identity")
        >>> class Overflowing(torch.nn.Module):
        ...     def forward(self, x):
        ...         return x * 1e30 * 1e30
        >>> probe_map(Overflowing(), "model=x")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: model=x: the map returns non-finite values ...
    """
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        out = net(probe)
    if not bool(torch.isfinite(out).all()):
        raise RCOTError(
            f"{source}: the map returns non-finite values (NaN or infinity) on a test image, so "
            "its outputs would be black or NaN; use another checkpoint of the run (an earlier "
            "best-*.ckpt) or retrain"
        )


def check_writable_folder(folder: Path, key: str) -> None:
    """Fail before the work, not after it, when ``folder`` cannot be written (it is created).

    Raises:
        RCOTError: naming ``key``: ``folder`` is a file, or cannot be created or written.
    """
    if folder.exists() and not folder.is_dir():
        raise RCOTError(f"{key}: {folder} is a file; pass a folder to write into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise RCOTError(
            f"{key}: cannot write into {folder} ({err.strerror or err}); choose a folder you "
            "can write to"
        ) from None


#: Optional packages a Lightning object needs: target suffix -> (modules, any one will do; extra).
_EXTRAS = {"TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard")}


def check_extra(key: str, target: str) -> None:
    """One line naming the extra to install when ``target`` needs a package that is missing."""
    for suffix, (modules, extra) in _EXTRAS.items():
        if target.endswith(suffix) and not any(importlib.util.find_spec(m) for m in modules):
            raise MissingExtraError(
                f"{key} ({suffix}) needs the {modules[0]} package: pip install "
                f"'rcot-lightning[{extra}]', or use logger=csv"
            )


def _torch_save_archive(path: Path) -> bool:
    """Whether ``path`` was written by ``torch.save`` (a checkpoint or weights, not TorchScript)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    pickled = any(n.endswith("/data.pkl") or n == "data.pkl" for n in names)
    return pickled and not any("/code/" in n for n in names)


def check_export_output(output: Path, ckpt_path: object, overwrite: bool) -> None:
    """Refuse to write over the checkpoint read, any checkpoint, or (without ``overwrite``)
    any existing file.

    Raises:
        RCOTError: naming ``output`` and what to do.
    """
    source = None if ckpt_path in (None, "") else Path(str(ckpt_path)).expanduser().resolve()
    if output.resolve() == source:
        raise RCOTError(
            f"output: {output} is the checkpoint being exported (ckpt_path); choose another "
            "file, e.g. model.onnx (nothing was written)"
        )
    if output.suffix.lower() == ".ckpt" or (output.is_file() and _torch_save_archive(output)):
        raise RCOTError(
            f"output: {output} is a checkpoint name or file; rcot-export never writes over one: "
            "choose another file, e.g. model.onnx or model.pt (nothing was written)"
        )
    if output.is_dir():
        raise RCOTError(f"output: {output} is a folder; pass a file, e.g. {output}/model.onnx")
    if output.exists() and not overwrite:
        raise RCOTError(
            f"output: {output} already exists and was kept; pass overwrite=true to replace it, "
            "or choose another file (nothing was written)"
        )


#: The values of ``rcot-restore``'s ``backend`` key.
BACKENDS = ("auto", "torch", "onnxruntime")


def check_backend(value: Any, key: str = "backend") -> str:
    """``value`` as one of :data:`BACKENDS`, else an error that names ``key``.

    Example:
        >>> check_backend("onnxruntime")
        'onnxruntime'
        >>> check_backend("tensorrt")
        Traceback (most recent call last):
        ...
        rcot_lightning.errors.RCOTError: backend: 'tensorrt' is not a backend; use auto, torch \
or onnxruntime
    """
    if value is None:
        return "auto"
    if str(value) not in BACKENDS:
        raise RCOTError(
            f"{key}: {value!r} is not a backend; use {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}"
        )
    return str(value)
