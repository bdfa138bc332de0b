"""Image files: list a folder, read an image's size cheaply, decode it to a float RGB tensor.

Reads PNG, JPEG, BMP, WebP (Pillow) and TIFF (tifffile), 8- and 16-bit; grayscale is repeated
to three channels and alpha is dropped. 16-bit grayscale PNG and 16-bit TIFF keep their full
precision; Pillow decodes 16-bit *colour* PNG to 8 bits. Every problem a user can fix raises
:class:`~rcot_lightning.errors.RCOTError` naming the folder or file and what to do.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from rcot_lightning.errors import ArgumentError, BadImageError, MissingExtraError, RCOTError
from rcot_lightning.values import positive_number

__all__ = [
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "image_size",
    "list_images",
    "read_image",
    "set_max_megapixels",
    "to_tensor",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_TIFF = (".tif", ".tiff")
_SKIP_HINT = "delete or replace it, or set data.folders.skip_bad_images=true to skip bad files"


def _tifffile(path: Path) -> ModuleType:
    """tifffile, imported when a TIFF is met (the ``tiff`` extra; scikit-image installs it)."""
    try:
        import tifffile
    except ImportError as err:
        raise MissingExtraError(
            f"{path}: reading TIFF images needs tifffile; pip install 'rcot-lightning[tiff]' "
            "(or convert the folder to PNG)"
        ) from err
    return tifffile


def list_images(directory: str | Path, key: str) -> list[Path]:
    """The image files directly inside ``directory``, sorted by name.

    Args:
        directory: the folder to list (not recursive; hidden files are ignored).
        key: the config key the folder came from, named in error messages.

    Returns:
        Paths of files whose extension is in :data:`IMAGE_EXTENSIONS` (any case).

    Example:
        >>> try:
        ...     list_images("/no/such/folder", "data.train_dir")
        ... except RCOTError as err:
        ...     print(err)
        data.train_dir: directory /no/such/folder does not exist; point it at a folder of images
    """
    folder = Path(directory).expanduser()
    if not folder.exists():
        raise RCOTError(f"{key}: directory {folder} does not exist; point it at a folder of images")
    if not folder.is_dir():
        raise RCOTError(
            f"{key}: {folder} is a file, not a directory; point it at a folder of images"
        )
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        raise RCOTError(f"{key}: directory {folder} is empty; put images ({_extensions()}) in it")
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        others = ", ".join(p.name for p in entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RCOTError(
            f"{key}: directory {folder} has no image files ({len(entries)} other entries: "
            f"{others}); supported extensions: {_extensions()}"
        )
    return images


def _extensions() -> str:
    return ", ".join(IMAGE_EXTENSIONS)


#: The config key of the decompression-bomb limit, named when an image is over it.
MAX_MEGAPIXELS_KEY = "max_megapixels"


def set_max_megapixels(value: object) -> None:
    """Set the largest image (megapixels) :func:`read_image` decodes (``max_megapixels``).

    Pillow refuses images over twice its ``MAX_IMAGE_PIXELS`` (a small file can decode to
    gigabytes); this sets that limit to ``value`` megapixels. The default, 178, is Pillow's.

    Raises:
        RCOTError: ``value`` is not a finite number > 0 (``max_megapixels=abc``, ``inf``);
            the message names ``max_megapixels``.
    """
    megapixels = positive_number(value, MAX_MEGAPIXELS_KEY, keyed=True)
    Image.MAX_IMAGE_PIXELS = int(megapixels * 1e6 / 2)


def _too_large(path: Path, err: BaseException) -> RCOTError:
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
    found = re.search(r"\((\d+) pixels\)", str(err))
    size = f"{int(found.group(1)) / 1e6:.3g} megapixels" if found else "too large"
    return RCOTError(
        f"image {path} is {size}, over the {MAX_MEGAPIXELS_KEY}={limit:.3g} limit that guards "
        f"against decompression bombs; if you trust the file, raise it (e.g. "
        f"{MAX_MEGAPIXELS_KEY}={max(2 * limit, 500):.0f})"
    )


def _bad_image(path: Path, err: BaseException) -> RCOTError:
    if isinstance(err, Image.DecompressionBombError):
        return _too_large(path, err)
    reason = str(err) or type(err).__name__
    bad = BadImageError(f"image {path} is corrupt or truncated ({reason}); {_SKIP_HINT}")
    bad.reason = reason
    return bad


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image, read from its header without decoding the pixels.

    Raises:
        RCOTError: the file is not a readable image.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "a.png"
        >>> Image.new("RGB", (40, 30)).save(path)
        >>> image_size(path)
        (30, 40)
    """
    path = Path(path)
    tifffile = _tifffile(path) if path.suffix.lower() in _TIFF else None
    try:
        if tifffile is not None:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                return int(page.imagelength), int(page.imagewidth)
        with Image.open(path) as img:
            width, height = img.size
            return height, width
    except Exception as err:  # any decoder failure means the same thing to the user
        raise _bad_image(path, err) from err


def to_tensor(array: np.ndarray) -> Tensor:
    """An ``(H, W)``, ``(H, W, C)`` image array to a ``(3, H, W)`` float32 tensor in [0, 1].

    Integers are scaled by their type's maximum (uint8 by 255, uint16 by 65535), floats are
    clipped to [0, 1], grayscale is repeated to RGB and a fourth (alpha) channel is dropped.

    Example:
        >>> to_tensor(np.full((2, 2), 65535, dtype=np.uint16)).shape
        torch.Size([3, 2, 2])
    """
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ArgumentError(
            "array", f"must be an (H, W) or (H, W, C) image, got shape {array.shape}"
        )
    channels = array.shape[2]
    if channels in (2, 4):  # gray + alpha, RGB + alpha: drop alpha
        array = array[:, :, : channels - 1]
    elif channels not in (1, 3):
        raise ArgumentError("array", f"must have 1 to 4 channels, got {channels}")
    if array.dtype == np.bool_:
        out = torch.from_numpy(array.astype(np.float32))
    elif np.issubdtype(array.dtype, np.integer):
        scale = float(np.iinfo(array.dtype).max)
        out = torch.from_numpy(array.astype(np.float32)) / scale
    else:
        out = torch.from_numpy(np.clip(array.astype(np.float32), 0.0, 1.0))
    out = out.permute(2, 0, 1).contiguous()
    return out.expand(3, -1, -1).contiguous() if out.shape[0] == 1 else out


def _pil_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.uint16)
    if img.mode == "I":
        # Pillow widens 16-bit grayscale to 32-bit ints; the data is 16-bit.
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    if img.mode in ("L", "RGB"):
        return np.asarray(img)
    return np.asarray(img.convert("RGB"))


def _tiff_array(tifffile: ModuleType, path: Path) -> np.ndarray:
    array = tifffile.imread(path, key=0)
    # Planar TIFFs come back channels-first.
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    return array


def read_image(path: str | Path) -> Tensor:
    """Decode an image file to a ``(3, H, W)`` float32 tensor in [0, 1].

    Raises:
        RCOTError: the file is corrupt, truncated or not an image; the message names it.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "gray.png"
        >>> Image.new("L", (5, 4), color=255).save(path)
        >>> read_image(path).shape, read_image(path).max().item()
        (torch.Size([3, 4, 5]), 1.0)
    """
    path = Path(path)
    tifffile = _tifffile(path) if path.suffix.lower() in _TIFF else None
    try:
        if tifffile is not None:
            array = _tiff_array(tifffile, path)
        else:
            with Image.open(path) as img:
                img.load()
                array = _pil_array(img)
        return to_tensor(array)
    except Exception as err:  # decoders raise many types for one cause: a bad file
        raise _bad_image(path, err) from err
