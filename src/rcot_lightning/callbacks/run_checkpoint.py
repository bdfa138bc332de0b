"""``RunCheckpoint``: ModelCheckpoint whose ``last.ckpt`` is always the last state of the run.

Lightning's ModelCheckpoint, saving at validation end, rewrites ``last.ckpt`` only when it also
saved a top-k checkpoint at that step, and its ``on_train_end`` skips the save once any last
checkpoint exists. A run whose validation PSNR stopped improving, or that stopped at
``max_steps`` between two validations, therefore kept an old ``last.ckpt``, and resuming from
it silently redid work. Here ``last.ckpt`` is rewritten after every validation and once more
when training ends for any reason (``max_steps``, ``max_epochs``, early stopping), unless it
already holds the current step (also when the module stops a diverging run); the best
checkpoint stays a separate file.

A model whose monitored value or whose weights are not finite is never saved as the best.

A resumed run writes its last state to ``last.ckpt`` again, never ``last-v1.ckpt``: a run folder
that was moved or copied (its checkpoints name the old folder) would otherwise leave the newer
state in ``last-v1.ckpt`` and the next ``ckpt_path=last`` would go back to the older one. A fresh
run into a folder that already holds a ``last.ckpt`` keeps Lightning's ``last-v1.ckpt`` (it did
not start from that file, so it does not overwrite it).

The callback's state in a checkpoint is data from a file, not instructions: Lightning deletes
the previous last and k-th best checkpoints it restored from there (recursively, and its test
of "inside the checkpoints folder" does not collapse ``..``), and tests the restored best. So a
path restored from a checkpoint (``last_model_path``, ``best_model_path``,
``kth_best_model_path``, the keys of ``best_k_models``) is kept only when it resolves
(``..`` and symbolic links followed) to a file inside this run's checkpoints folder; any other
is dropped with a warning, and nothing outside that folder is ever removed.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from rcot_lightning.checkpoints.finite import first_nonfinite
from rcot_lightning.errors import DivergedError

__all__ = ["RunCheckpoint"]

log = logging.getLogger(__name__)

#: The path-valued entries of ModelCheckpoint's state (``best_k_models`` maps paths to scores).
PATH_KEYS = ("last_model_path", "best_model_path", "kth_best_model_path")


def _remote(path: str) -> bool:
    """Whether fsspec would read ``path`` as a URL (``s3://``, ``file://``, ``simplecache::``)."""
    return "://" in path or "::" in path


def inside_folder(path: Any, folder: Any) -> bool:
    """Whether ``path`` names a file inside ``folder`` once ``..`` and symbolic links are resolved.

    Args:
        path: a path from a checkpoint's callback state (anything: it is data from a file).
        folder: the checkpoints folder (a local path, or a URL such as ``s3://bucket/run``).

    Returns:
        True for a path strictly inside ``folder`` that is not a folder itself; False for
        anything else: another type, an empty string, a URL on a local folder, a path that
        leaves ``folder`` through ``..`` or a link, the folder itself.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> inside_folder(run / "checkpoints" / "last.ckpt", run / "checkpoints")
        True
        >>> inside_folder(f"{run}/checkpoints/../../x", run / "checkpoints")
        False
        >>> inside_folder("file:///etc", run / "checkpoints"), inside_folder(3, run)
        (False, False)
        >>> inside_folder("s3://b/run/ckpt/../x", "s3://b/run/ckpt"), inside_folder(
        ...     "s3://b/run/ckpt/last.ckpt", "s3://b/run/ckpt")
        (False, True)
    """
    if not isinstance(path, (str, os.PathLike)) or not folder:
        return False
    text, root = os.fspath(path), os.fspath(folder)
    if not isinstance(text, str) or not isinstance(root, str) or not text or "\x00" in text:
        return False
    if _remote(root):
        # A remote checkpoints folder: the same protocol, and inside it once ``..`` is collapsed.
        protocol, _, rest = text.partition("://")
        root_protocol, _, root_rest = root.partition("://")
        if protocol != root_protocol or "::" in text:
            return False
        prefix = posixpath.normpath(root_rest).rstrip("/") + "/"
        return posixpath.normpath(rest).startswith(prefix)
    if _remote(text):
        return False
    try:
        base, target = Path(root).resolve(), Path(text).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return base in target.parents and not target.is_dir()


def _shown(value: Any) -> str:
    """``value`` for a one-line log note: its repr (escapes line breaks), at most 200 characters."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _score(value: Any) -> Tensor | None:
    """A monitored value from a checkpoint as a one-element tensor, None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (Tensor, float, int)):
        return None
    if isinstance(value, Tensor) and value.numel() != 1:
        return None
    return torch.as_tensor(value).detach().reshape(()).float()


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last checkpoint holds the final state and whose best is finite.

    Takes ModelCheckpoint's arguments. With ``save_last`` set, ``last_model_path`` is the
    run's final state after ``fit`` returns (or is interrupted through
    :class:`~rcot_lightning.callbacks.PreemptionCheckpoint`, which calls :meth:`write_last`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_saved_at: int | None = None
        #: The checkpoint ``fit`` resumes from, when the caller says so (``rcot-train`` does):
        #: a run resumed from its own folder finds that folder full, as it should, so
        #: Lightning's "exists and is not empty" warning (meant for fresh runs) is not given.
        self.resuming_from: str | None = None

    def _ModelCheckpoint__warn_if_dir_not_empty(self, dirpath: Any) -> None:
        ckpt = self.resuming_from
        if ckpt and not _remote(str(ckpt)) and inside_folder(ckpt, dirpath):
            return
        super()._ModelCheckpoint__warn_if_dir_not_empty(dirpath)  # type: ignore[misc]

    # ------------------------------------------------------------------ state from a file
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state saved in a checkpoint, keeping only paths inside this run's folder.

        Args:
            state_dict: the callback's state from a checkpoint (untrusted data).
        """
        super().load_state_dict(self._confined(state_dict))

    def _drop(self, key: str, path: Any) -> None:
        log.warning(
            "checkpoint state: ignoring %s=%s: it is not a file inside this run's checkpoints "
            "folder %s",
            key,
            _shown(path),
            self.dirpath,
        )

    def _confined(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """``state_dict`` with every path outside :attr:`dirpath` dropped, kept consistent.

        Args:
            state_dict: the callback's state from a checkpoint.

        Returns:
            A copy whose paths are all inside :attr:`dirpath` (or empty), whose ``best_k_models``
            holds only such paths with tensor scores, and whose best and k-th best paths are
            among them.
        """
        state = dict(state_dict) if isinstance(state_dict, Mapping) else {}
        for key in PATH_KEYS:
            if key in state and not inside_folder(state[key], self.dirpath):
                if not (state[key] is None or (isinstance(state[key], str) and not state[key])):
                    self._drop(key, state[key])
                state[key] = ""
        models = state.get("best_k_models")
        if models is not None:
            if not isinstance(models, Mapping):
                self._drop("best_k_models", models)
                models = {}
            kept: dict[str, Tensor] = {}
            for path, score in models.items():
                if not inside_folder(path, self.dirpath):
                    self._drop("best_k_models", path)
                elif (value := _score(score)) is not None:
                    kept[os.fspath(path)] = value
            state["best_k_models"] = kept
            self._reconcile(state, kept)
        # Lightning reads these two unconditionally; a best score without its file means nothing.
        state.setdefault("best_model_path", "")
        state["best_model_score"] = (
            _score(state.get("best_model_score")) if state["best_model_path"] else None
        )
        if _score(state.get("kth_value")) is None:
            state.pop("kth_value", None)  # keep the callback's own starting value
        return state

    def _reconcile(self, state: dict[str, Any], kept: dict[str, Tensor]) -> None:
        """Make the best and k-th best paths agree with the ``best_k_models`` that were kept.

        Lightning pops ``kth_best_model_path`` from ``best_k_models`` when a better model comes
        (it must be one of its keys, or empty when there is none), then removes that file.

        Args:
            state: the state being confined (changed in place).
            kept: the ``best_k_models`` entries inside the folder.
        """
        best, worst = (max, min) if self.mode == "max" else (min, max)
        if state.get("kth_best_model_path") not in kept:
            if kept:
                state["kth_best_model_path"] = worst(kept, key=lambda p: float(kept[p]))
                state["kth_value"] = kept[state["kth_best_model_path"]]
            else:
                state["kth_best_model_path"] = ""
                state.pop("kth_value", None)
        if kept and state.get("best_model_path") not in kept:
            state["best_model_path"] = best(kept, key=lambda p: float(kept[p]))
            state["best_model_score"] = kept[state["best_model_path"]]

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        # The last line of defence: whatever set the path, nothing outside the folder goes.
        if not inside_folder(filepath, self.dirpath):
            log.warning(
                "not removing %s: it is not a file inside this run's checkpoints folder %s",
                _shown(filepath),
                self.dirpath,
            )
            return
        super()._remove_checkpoint(trainer, filepath)

    # ------------------------------------------------------------------ last checkpoint
    def write_last(self, trainer: pl.Trainer) -> str | None:
        """Write the last checkpoint of the current state now (all ranks call it); its path."""
        if not self.save_last or getattr(trainer, "fast_dev_run", False):
            return None
        if self._last_saved_at != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path

    def _save_last_checkpoint(self, trainer: pl.Trainer, candidates: dict[str, Tensor]) -> None:
        # A resumed run continues in last.ckpt (see the module docstring); a fresh one gets
        # Lightning's last-v1.ckpt rather than overwrite a last.ckpt it did not start from.
        counter = self._enable_version_counter
        if trainer.ckpt_path is not None:
            self._enable_version_counter = False
        try:
            super()._save_last_checkpoint(trainer, candidates)
        finally:
            self._enable_version_counter = counter
        self._last_saved_at = trainer.global_step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write_last(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        super().on_exception(trainer, pl_module, exception)
        # Stopped for non-finite values: the skipped updates left the weights finite, and they
        # are the run's final state.
        if isinstance(exception, DivergedError) and first_nonfinite(pl_module.state_dict()) is None:
            self.write_last(trainer)

    def _save_topk_checkpoint(self, trainer: pl.Trainer, candidates: dict[str, Tensor]) -> None:
        current = candidates.get(self.monitor) if self.monitor else None
        if current is not None and not math.isfinite(float(current)):
            log.warning(
                "not saving a best checkpoint at step %d: %s is %s",
                trainer.global_step,
                self.monitor,
                float(current),
            )
            return
        if first_nonfinite(trainer.lightning_module.state_dict()) is not None:
            log.warning(
                "not saving a best checkpoint at step %d: the model has non-finite weights",
                trainer.global_step,
            )
            return
        super()._save_topk_checkpoint(trainer, candidates)
