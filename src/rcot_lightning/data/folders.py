"""Where a dataset's images are: one root, folder names as the mirrors publish them, globs.

A *folder spec* names the images of one role (degraded, target, clean) of a split:

* a path, absolute or relative to the dataset ``root``: ``"rainy"``;
* a glob, each match a folder whose images are named after the matched parts:
  ``"train/*/blur"`` names ``train/GOPR0372_07_00/blur/000047.png`` ``GOPR0372_07_00/000047``,
  so the ``*/sharp`` images pair with it by name;
* a list of alternatives, the first that exists wins (archives differ between mirrors):
  ``["rainy", "rain", "input"]``; an alternative may itself be a list of folders used together
  (all must exist): ``[["BSD400", "WED"], "Train/Denoise"]``.

With ``recursive`` the images in sub-folders count too, named by their relative path without
extension (``scene/000047``). Every failure names the root or folder and the layout expected.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rcot_lightning.data.images import IMAGE_EXTENSIONS, list_images
from rcot_lightning.errors import RCOTError
from rcot_lightning.values import existing_folder

__all__ = ["Folder", "find_images", "resolve_folders"]


class Folder:
    """A concrete folder and the prefix its images' names get (the parts a glob matched)."""

    def __init__(self, path: Path, prefix: str = "") -> None:
        self.path, self.prefix = path, prefix

    def __repr__(self) -> str:
        return f"Folder({str(self.path)!r}, prefix={self.prefix!r})"


def _expected(layout: str | None) -> str:
    return f"; expected layout: {layout}" if layout else ""


def _root_folder(root: str | Path | None, layout: str | None) -> Path | None:
    if root is None:
        if layout is not None:  # a dataset preset: its folders are relative to the root
            raise RCOTError(
                "data.folders.root is not set; point it at the downloaded dataset"
                + _expected(layout)
            )
        return None
    return existing_folder(
        Path(root).expanduser(),
        "data.folders.root",
        missing_hint="; point it at the downloaded dataset",
        hint=_expected(layout),
    )


def _alternative(item: str, root: Path | None) -> list[Folder]:
    """The folders one path or glob names (empty when it names nothing)."""
    path = Path(item).expanduser()
    if root is not None and not path.is_absolute():
        path = root / path
    if not glob.has_magic(str(path)):
        return [Folder(path)] if path.is_dir() else []
    parts = path.parts
    first = next(i for i, p in enumerate(parts) if glob.has_magic(p))
    base = Path(*parts[:first])
    pattern = str(Path(*parts[first:]))
    found = []
    for match in sorted(base.glob(pattern)):
        if match.is_dir() and not match.name.startswith("."):
            rel = match.relative_to(base).parts
            # Name images after the parts the wildcards matched (the scene), not fixed parts.
            wild = [m for m, p in zip(rel, parts[first:], strict=True) if glob.has_magic(p)]
            found.append(Folder(match, "/".join(wild)))
    return found


def resolve_folders(
    spec: Any, key: str, root: str | Path | None = None, layout: str | None = None
) -> list[Folder]:
    """The folders a spec names (see the module docstring), checked to exist.

    Args:
        spec: a path or glob, or a list of alternatives (each a path or a list of paths).
        key: the config key of the spec, for error messages.
        root: the dataset root relative paths start from (``None``: the working directory).
        layout: a description of the expected layout, appended to error messages.

    Raises:
        RCOTError: the root does not exist, or no alternative names an existing folder.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "rain").mkdir()
        >>> [f.path.name for f in resolve_folders(["rainy", "rain"], "data.x", root)]
        ['rain']
    """
    base = _root_folder(root, layout)
    if isinstance(spec, str | Path):
        alternatives: list[Any] = [str(spec)]
    elif isinstance(spec, Sequence) and spec:
        alternatives = list(spec)
    else:
        raise RCOTError(f"{key} must be a folder or a list of alternative folders, got {spec!r}")
    for alternative in alternatives:
        group = [alternative] if isinstance(alternative, str | Path) else list(alternative)
        folders = [_alternative(str(item), base) for item in group]
        if all(folders):
            return [folder for found in folders for folder in found]
    where = f" in {base}" if base is not None else ""
    names = " or ".join(
        "+".join(map(str, a)) if not isinstance(a, str | Path) else str(a) for a in alternatives
    )
    if base is None and len(alternatives) == 1 and isinstance(alternatives[0], str | Path):
        # Keep the plain-folder message of list_images for a folder given directly.
        list_images(alternatives[0], key)
    raise RCOTError(f"{key}: no folder {names}{where}" + _expected(layout))


def find_images(
    folders: Sequence[Folder], key: str, recursive: bool = False
) -> list[tuple[str, Path]]:
    """``(name, path)`` of every image in ``folders``, sorted by name within each folder.

    Names are file stems, or relative paths without extension when ``recursive``, prefixed by
    the parts a glob matched.

    Raises:
        RCOTError: a folder has no image (names it), or a name occurs twice.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "a" / "blur").mkdir(parents=True)
        >>> Image.new("RGB", (4, 4)).save(root / "a" / "blur" / "01.png")
        >>> find_images(resolve_folders("*/blur", "data.x", root), "data.x")[0][0]
        'a/01'
    """
    found: list[tuple[str, Path]] = []
    for folder in folders:
        if recursive:
            files = sorted(
                p
                for p in folder.path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(folder.path).parts)
            )
            if not files:
                raise RCOTError(
                    f"{key}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder.path} "
                    "or its sub-folders"
                )
            names = [p.relative_to(folder.path).with_suffix("").as_posix() for p in files]
        else:
            files = list_images(folder.path, key)
            names = [p.stem for p in files]
        prefix = f"{folder.prefix}/" if folder.prefix else ""
        found.extend((prefix + name, path) for name, path in zip(names, files, strict=True))
    seen: dict[str, Path] = {}
    for name, path in found:
        if name in seen:
            first = seen[name]
            where = (
                f"in {path.parent}"
                if first.parent == path.parent
                else f"in {first.parent} and {path.parent}"
            )
            raise RCOTError(
                f"{key}: {first.name} and {path.name} {where} have the same name "
                f"{name!r} without extension; rename or remove one"
            )
        seen[name] = path
    return found
