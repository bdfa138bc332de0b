"""Write files so that a crash leaves either the old file or the new one, never half of one.

Every file a run produces that someone relies on later (checkpoints, ``metrics.csv``, restored
images) goes through :func:`atomic_write`: the bytes go to a temporary file *in the destination
folder* (so the final rename never crosses a filesystem and never degrades to a copy), are
flushed and fsynced, and only then replace the destination with :func:`os.replace`, which is
atomic on POSIX and Windows. The folder is fsynced too, so the rename itself survives a power
cut. A failure at any point removes the temporary file and leaves the destination untouched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCSVLogger", "AtomicCheckpointIO", "atomic_path", "atomic_write"]

log = logging.getLogger(__name__)

#: Prefix of the temporary files; a crash can leave one behind, never a damaged destination.
TEMP_PREFIX = ".tmp-"


def _fsync_folder(folder: Path) -> None:
    # Windows cannot open a folder; elsewhere this makes the rename itself durable.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it to ``path``.

    Args:
        path: the destination; its folder is created if missing.
        mode: ``"wb"`` or ``"w"`` (text; ``kwargs`` such as ``newline`` go to :func:`open`).

    Yields:
        The open temporary file. If the ``with`` body raises, the temporary file is removed and
        ``path`` keeps its previous content (or stays absent).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_write(target, "w") as f:
        ...     _ = f.write("new")
        >>> try:
        ...     with atomic_write(target, "w") as f:
        ...         _ = f.write("half")
        ...         raise OSError("disk full")
        ... except OSError:
        ...     pass
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('new', ['a.txt'])
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as temp, open(temp, mode, **kwargs) as handle:
        yield handle


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Like :func:`atomic_write`, for writers that want a file name (e.g. PIL, by extension).

    Yields:
        A temporary path beside ``path`` with the same extension; whatever the ``with`` body
        writes there replaces ``path`` when the body succeeds, and is removed when it fails.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.png"
        >>> with atomic_path(target) as temp:
        ...     _ = temp.write_bytes(b"png")
        ...     temp.suffix, temp.parent == target.parent
        ('.png', True)
        >>> target.read_bytes()
        b'png'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        prefix=TEMP_PREFIX + target.stem + ".", suffix=target.suffix, dir=target.parent
    )
    os.close(fd)
    temp = Path(temp_name)
    try:
        yield temp
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_folder(target.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, writing through :func:`atomic_write` (local paths).

    Lightning's own writer stages the file under ``$TMPDIR`` and moves it, which is a copy (not
    atomic) when ``$TMPDIR`` is on another filesystem, and never fsyncs. Remote URLs
    (``s3://``...) keep Lightning's writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        buffer = io.BytesIO()  # serialise first: a pickling error must not touch the disk
        torch.save(checkpoint, buffer)
        try:
            with atomic_write(path, "wb") as handle:
                handle.write(buffer.getbuffer())
        except OSError as err:
            from rcot_lightning.errors import RCOTError

            raise RCOTError(
                f"cannot write the checkpoint {path} ({err.strerror or err}); the checkpoints "
                f"already in {Path(path).parent} are intact (no partial file was left): free "
                "some space, then resume with run_dir=<this run> ckpt_path=last"
            ) from None
        log.debug("checkpoint written: %s", path)


class _AtomicExperimentWriter(ExperimentWriter):
    """CSV writer whose whole-file rewrites (a new column appeared) are atomic.

    Appending rows can at worst lose the rows being appended; Lightning's rewrite opens the
    file with ``"w"`` and a crash there loses every row logged so far.
    """

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        with atomic_write(self.metrics_file_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)

    def save(self) -> None:
        known = list(self.metrics_keys)
        try:
            super().save()
        except BaseException:
            # The header on disk still has the old columns: the next save must rewrite it.
            self.metrics_keys = known
            raise
        # Rows reach the disk at each save, so a killed run keeps what it logged.
        with contextlib.suppress(OSError), open(self.metrics_file_path, "ab") as handle:
            os.fsync(handle.fileno())


class AtomicCSVLogger(CSVLogger):
    """:class:`~lightning.pytorch.loggers.CSVLogger` that never leaves a damaged ``metrics.csv``."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AtomicExperimentWriter(log_dir=self.log_dir)
        assert isinstance(self._experiment, ExperimentWriter)
        return self._experiment
