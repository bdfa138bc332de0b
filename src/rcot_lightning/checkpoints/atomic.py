"""Write files so that a crash leaves either the old file or the new one, never half of one.

Every file a run produces that someone relies on later (checkpoints, ``metrics.csv``, restored
images) goes through :func:`atomic_write` (Lightning's checkpoints and CSV logs through
:mod:`.atomic_io`): the bytes go to a temporary file *in the destination
folder* (so the final rename never crosses a filesystem and never degrades to a copy), are
flushed and fsynced, and only then replace the destination with :func:`os.replace`, which is
atomic on POSIX and Windows. The folder is fsynced too, so the rename itself survives a power
cut. A failure at any point removes the temporary file and leaves the destination untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_write"]

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
