"""What the demo page does with a request, without Gradio: uploads, models, scores.

:mod:`rcot_lightning.cli.demo` serves the page; these are the parts that need no browser and no
Gradio, so they are tested directly: upload limits and the bounds on one request's work, the
model chooser's listing (bundled entries, checkpoints under one folder, the latest run there)
and the model a degradation picks, the synthetic degradations, what stops a run between tiles
(its time is up or its page is gone; the run itself is
:meth:`rcot_lightning.inference.InferenceSettings.restore`), the scores (the library's
:func:`~rcot_lightning.metrics.score_images`) and the residual views (the library's
:mod:`~rcot_lightning.visualize`).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rcot_lightning.data.degradations import Degradation, build_degradation
from rcot_lightning.errors import RCOTError, RequestStopped

log = logging.getLogger(__name__)

#: What a user can add to a clean photo: the page's name -> (registry name, fixed parameters).
#: Rain and haze draw their parameters from the library's defaults (seeded by ``demo.seed``).
SYNTHETIC = {
    "none": None,
    "noise": "noise",
    "rain": "rain",
    "haze": "haze",
    "blur": "gaussian_blur",
    "jpeg": "jpeg",
}

#: Sides below this are refused: SSIM's 11x11 window needs room, and nothing smaller is a photo.
MIN_SIDE = 16

#: The task of each degradation: the bundled entries whose ``info["task"]`` it is restore it.
TASKS = {"noise": "denoise", "rain": "derain", "haze": "dehaze", "blur": "deblur", "jpeg": "jpeg"}

#: How the model chooser labels its entries.
BUNDLED, LATEST, CHECKPOINT = "bundled: ", "latest run in ", "checkpoint: "

#: The chooser's entry that lets the degradation pick the model (:func:`pick_model`).
AUTO = "auto: the bundled model for the degradation"


# ------------------------------------------------------------------------------ uploads
@dataclass(frozen=True)
class UploadLimits:
    """The largest upload the page accepts, in megabytes of file and megapixels of image."""

    max_mb: float
    max_megapixels: float

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> UploadLimits:
        """Read ``demo.max_upload_mb`` and ``demo.max_megapixels``, each a positive number.

        Example:
            >>> UploadLimits.from_config({"max_upload_mb": 50, "max_megapixels": 40})
            UploadLimits(max_mb=50.0, max_megapixels=40.0)
        """
        values = []
        for key in ("max_upload_mb", "max_megapixels"):
            value = node.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise RCOTError(f"demo.{key} must be a positive number, got {value!r}")
            values.append(float(value))
        return cls(*values)


def read_upload(
    path: str | Path,
    limits: UploadLimits,
    what: str = "photo",
    before_decoding: Callable[[str, int, int], None] | None = None,
) -> Tensor:
    """An uploaded image as ``(3, H, W)`` float32 in [0, 1], checked before it is decoded.

    The file size and the image size (read from the header: a small file can hold a huge image)
    are checked against ``limits`` first.

    Args:
        path: the uploaded file.
        limits: the largest file and image accepted.
        what: what the page calls the file (``photo``, ``reference``), for the messages.
        before_decoding: called with (a name of the image, its height, its width) before it
            is decoded, e.g. :meth:`RequestLimits.limit_work`; it raises to refuse the image.

    Returns:
        The decoded image.

    Raises:
        RCOTError: too large a file or image, too small an image, or not an image; the message
            names the file, the limit and its config key.
    """
    from rcot_lightning.data.images import image_size, read_image

    path = Path(path)
    megabytes = path.stat().st_size / 1e6
    if megabytes > limits.max_mb:
        raise RCOTError(
            f"{what} {path.name} is {megabytes:.1f} MB, over the demo's limit of "
            f"{limits.max_mb:g} MB (demo.max_upload_mb); upload a smaller file"
        )
    try:
        height, width = image_size(path)
    except RCOTError as err:
        # The decoder's reason, without the temporary folder the upload sits in.
        reason = str(err.__cause__ or err).replace(str(path), path.name)
        raise RCOTError(
            f"{what} {path.name} is not an image the demo can read ({reason}); upload a PNG, "
            "JPEG, WebP, BMP or TIFF image"
        ) from None
    megapixels = height * width / 1e6
    if megapixels > limits.max_megapixels:
        raise RCOTError(
            f"{what} {path.name} is {width}x{height} ({megapixels:.3g} megapixels), over the "
            f"demo's limit of {limits.max_megapixels:g} megapixels (demo.max_megapixels); "
            "downscale it or start the demo with a higher limit"
        )
    if min(height, width) < MIN_SIDE:
        raise RCOTError(f"{what} {path.name} is {width}x{height}; the demo needs >= {MIN_SIDE}")
    if before_decoding is not None:
        before_decoding(f"{what} {path.name}", height, width)
    return read_image(path)


# ---------------------------------------------------------------------- work per request
@dataclass(frozen=True)
class RequestLimits:
    """The most work one request may ask for: one user must not hold the shared queue.

    A restoration can only be stopped between two calls of the map (tiles, passes of the
    self-ensemble), so a tile is bounded too, and the page's "whole image" (tile 0) is refused
    for photos larger than one tile.
    """

    #: Megapixels restored per request: the photo's, times the models run (2 for A/B), times
    #: the self-ensemble size (``demo.max_request_megapixels``).
    max_megapixels: float
    #: Seconds of restoration per request, both models of A/B together
    #: (``demo.max_request_seconds``).
    max_seconds: float
    #: The largest tile side, in pixels (``demo.max_tile``).
    max_tile: int

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> RequestLimits:
        """Read ``demo.max_request_megapixels``, ``demo.max_request_seconds`` (positive numbers)
        and ``demo.max_tile`` (a positive multiple of 8).

        Raises:
            RCOTError: a value of the wrong kind, naming its key.

        Example:
            >>> RequestLimits.from_config(
            ...     {"max_request_megapixels": 16, "max_request_seconds": 60, "max_tile": 1024})
            RequestLimits(max_megapixels=16.0, max_seconds=60.0, max_tile=1024)
        """
        from rcot_lightning.values import tile_size

        values = []
        for key in ("max_request_megapixels", "max_request_seconds"):
            value = node.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise RCOTError(f"demo.{key} must be a positive number, got {value!r}")
            values.append(float(value))
        max_tile = tile_size(node.get("max_tile"), "demo.max_tile", keyed=True)
        if max_tile is None:
            raise RCOTError("demo.max_tile must be a positive multiple of 8, got None")
        return cls(values[0], values[1], max_tile)

    def limit_work(self, name: str, height: int, width: int, models: int, ensemble: int) -> None:
        """Refuse an image whose restoration would be more than :attr:`max_megapixels` of work.

        Raises:
            RCOTError: one line naming the image, its work and ``demo.max_request_megapixels``.

        Example:
            >>> RequestLimits(16, 60, 1024).limit_work("photo a.png", 6000, 6000, 1, 1)
            Traceback (most recent call last):
            ...
            rcot_lightning.errors.RCOTError: photo a.png is 6000x6000 (36 megapixels): restoring \
it with 1 model is 36 megapixels of work, over the demo's limit of 16 per request \
(demo.max_request_megapixels); downscale it, or start the demo with a higher limit
        """
        megapixels = height * width / 1e6
        work = megapixels * models * ensemble
        if work <= self.max_megapixels:
            return
        how = f"with {models} model{'s' if models > 1 else ''}"
        if ensemble > 1:
            how += f" and ensemble={ensemble}"
        raise RCOTError(
            f"{name} is {width}x{height} ({megapixels:.3g} megapixels): restoring it {how} is "
            f"{work:.3g} megapixels of work, over the demo's limit of {self.max_megapixels:g} "
            "per request (demo.max_request_megapixels); downscale it, or start the demo with a "
            "higher limit"
        )

    def limit_tile(self, tile: int | None, height: int, width: int) -> None:
        """Refuse a tile over :attr:`max_tile`, or a whole image (``tile`` None) larger than it.

        Raises:
            RCOTError: one line naming ``demo.max_tile`` and what to choose instead.

        Example:
            >>> RequestLimits(16, 60, 1024).limit_tile(None, 800, 1000)  # fits in one tile
            >>> RequestLimits(16, 60, 1024).limit_tile(2048, 800, 1000)
            Traceback (most recent call last):
            ...
            rcot_lightning.errors.RCOTError: tile 2048 is over the demo's largest tile, 1024 \
(demo.max_tile); choose a tile side up to 1024 in Options
        """
        if tile is not None and tile > self.max_tile:
            raise RCOTError(
                f"tile {tile} is over the demo's largest tile, {self.max_tile} (demo.max_tile); "
                f"choose a tile side up to {self.max_tile} in Options"
            )
        if tile is None and max(height, width) > self.max_tile:
            raise RCOTError(
                f"a {width}x{height} image is too large to restore whole: the demo restores at "
                f"most {self.max_tile} pixels a side at once (demo.max_tile); set a tile side "
                f"(e.g. {min(512, self.max_tile)}) in Options"
            )


class StopCheck:
    """Stops a request between two calls of the map: once :attr:`max_seconds` of restoration
    have passed, or once ``cancelled`` gives a reason (the page was closed, the demo stops).

    The clock starts at the first :meth:`__call__` (the first tile), so loading a model does
    not count; it runs on across the models of one request.

    Args:
        max_seconds: the restoration time allowed (``demo.max_request_seconds``).
        cancelled: returns why the request must stop, or None to go on.
        clock: seconds, monotonic (a test's fake clock).
    """

    def __init__(
        self,
        max_seconds: float,
        cancelled: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_seconds, self.cancelled, self.clock = max_seconds, cancelled, clock
        self.started: float | None = None

    def __call__(self) -> None:
        """Go on, or raise.

        Raises:
            RequestStopped: the time is up (one line naming ``demo.max_request_seconds``), or
                the request was cancelled (its reason).
        """
        now = self.clock()
        if self.started is None:
            self.started = now
        reason = self.cancelled()
        if reason is not None:
            raise RequestStopped(f"restoration stopped: {reason}")
        elapsed = now - self.started
        if elapsed > self.max_seconds:
            raise RequestStopped(
                f"restoration stopped after {elapsed:.1f} s, over the demo's limit of "
                f"{self.max_seconds:g} s per request (demo.max_request_seconds); restore a "
                "smaller photo (or crop it), or start the demo with a higher limit"
            )


# ------------------------------------------------------------------------------- models
class ModelChoice(NamedTuple):
    """One entry of the page's model chooser: a bundled name or a checkpoint file."""

    label: str
    ckpt_path: Path | None = None
    pretrained: str | None = None


#: The scan of ``demo.checkpoints_dir`` looks at this many files and folders at most, for at
#: most this many seconds: a folder such as ``/`` is listed in part, not walked for minutes.
SCAN_ENTRIES, SCAN_SECONDS = 50_000, 2.0


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``, its links followed, is under ``root`` (False when it cannot be read)."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # vanished, unreadable, a loop of links
        return False


def _checkpoints_under(root: Path, limit: int) -> list[Path]:
    """The ``*.ckpt`` files under ``root``, newest first; links leading outside it are left out.

    Files and folders that vanish or cannot be read during the scan are skipped; the scan stops
    after :data:`SCAN_ENTRIES` entries or :data:`SCAN_SECONDS` seconds (with a warning).
    """
    try:
        if not root.is_dir():
            return []
        inside = root.resolve()
    except (OSError, RuntimeError):
        return []
    found: list[tuple[float, str, Path]] = []
    seen, deadline = 0, time.monotonic() + SCAN_SECONDS
    # os.walk skips the folders it cannot list and does not follow links to folders.
    for folder, dirs, files in os.walk(root):
        seen += len(dirs) + len(files)
        for name in files:
            if not name.endswith(".ckpt"):
                continue
            path = Path(folder, name)
            try:
                info = path.stat()  # follows a link; raises if the file vanished
            except (OSError, RuntimeError):
                continue
            if stat.S_ISREG(info.st_mode) and _inside(path, inside):
                found.append((-info.st_mtime, str(path), path))
        if seen > SCAN_ENTRIES or time.monotonic() > deadline:
            log.warning(
                "demo.checkpoints_dir=%s: listed the checkpoints among the first %d entries "
                "only (the scan stops after %d entries or %g s); point it at a training runs "
                "folder",
                root, seen, SCAN_ENTRIES, SCAN_SECONDS,
            )  # fmt: skip
            break
    found.sort()
    return [path for *_, path in found[:limit]]


def _latest_run(root: Path) -> Path | None:
    """:func:`~rcot_lightning.cli.run_folder.latest_run` of ``root``, or None when a file of
    the runs vanishes or cannot be read meanwhile."""
    from rcot_lightning.cli.run_folder import LAST_CHECKPOINT, latest_run

    try:
        latest = latest_run(root)
    except (OSError, RuntimeError) as err:
        log.warning("demo.checkpoints_dir=%s: no latest run (%s)", root, err)
        return None
    if latest is None or not _inside(latest / LAST_CHECKPOINT, root.resolve()):
        return None
    return latest


def list_models(checkpoints_dir: str | Path | None, limit: int = 100) -> dict[str, ModelChoice]:
    """The maps the page's model chooser offers, by label (besides :data:`AUTO`).

    The bundled entries (``bundled: NAME``), then, when ``checkpoints_dir`` is set, ``latest run
    in <folder>`` (the run whose ``checkpoints/last.ckpt`` was written last, as ``ckpt_path=last``
    of training finds it) and every ``*.ckpt`` under the folder (``checkpoint: <relative
    path>``), the newest ``limit`` of them. Nothing is loaded: listing a hostile checkpoint runs
    nothing. Files that vanish or cannot be read during the scan are left out, and the scan is
    bounded (:data:`SCAN_ENTRIES`, :data:`SCAN_SECONDS`).

    Example:
        >>> list_models(None)["bundled: denoise-blind"].pretrained
        'denoise-blind'
    """
    from rcot_lightning.cli.run_folder import LAST_CHECKPOINT
    from rcot_lightning.pretrained import available

    choices = {
        f"{BUNDLED}{name}": ModelChoice(f"{BUNDLED}{name}", None, name)
        for name, entry in available().items()
        # The page restores at the image's size: a super-resolution map is rcot-restore's.
        if entry.upscale == 1
    }
    if checkpoints_dir in (None, ""):
        return choices
    root = Path(str(checkpoints_dir)).expanduser()
    latest = _latest_run(root)
    if latest is not None:
        label = f"{LATEST}{root}"
        choices[label] = ModelChoice(label, latest / LAST_CHECKPOINT)
    for path in _checkpoints_under(root, limit):
        label = f"{CHECKPOINT}{path.relative_to(root)}"
        choices[label] = ModelChoice(label, path)
    return choices


def default_models(labels: Sequence[str], default: str) -> tuple[str, str]:
    """The models the page preselects: ``default`` (A), and B to compare it with.

    B is the latest training run when the checkpoint folder has one, else the first other
    listed model; only a page with a single model compares it with itself.

    Example:
        >>> default_models(["bundled: a", "bundled: b", "latest run in runs"], "bundled: a")
        ('bundled: a', 'latest run in runs')
        >>> default_models(["bundled: a", "bundled: b"], "bundled: b")
        ('bundled: b', 'bundled: a')
    """
    if not labels:
        raise RCOTError("no model to offer: no bundled entry and no checkpoint")
    chosen = default if default in labels else labels[0]
    others = [label for label in labels if label != chosen]
    latest = [label for label in others if label.startswith(LATEST)]
    return chosen, (latest or others or [chosen])[0]


def resolve_model(label: Any, choices: Mapping[str, ModelChoice]) -> ModelChoice:
    """The listed entry ``label`` names; the browser can name nothing else (no paths).

    Raises:
        RCOTError: ``label`` is not listed (a checkpoint deleted since the page was loaded).
    """
    if isinstance(label, str) and label in choices:
        return choices[label]
    raise RCOTError(
        f"model {label!r} is not one of the listed models; reload the page for the current list"
    )


#: The bundled map trained on every degradation at once (issue 31).
ALLINONE_MODEL = "allinone-blind"


def task_model(kind: str) -> tuple[str, str]:
    """The bundled entry that restores the page's degradation ``kind``, and why, in words.

    The entry whose ``info["task"]`` is the task of ``kind`` (:data:`TASKS`), ``<task>-blind``
    first (a specialist restores its own degradation best); without one, the all-in-one map
    (:data:`ALLINONE_MODEL`) when it is bundled; without a degradation, or for noise with no
    specialist, the default model (:data:`~rcot_lightning.pretrained.DEFAULT_MODEL`).

    Example:
        >>> task_model("noise")
        ('denoise-blind', 'denoise-blind (matches the noise degradation)')
    """
    from rcot_lightning.pretrained import DEFAULT_MODEL, available

    task = TASKS.get(kind)
    if task is None:
        return DEFAULT_MODEL, f"{DEFAULT_MODEL} (the default model: no degradation chosen)"
    entries = available()
    names = [name for name, entry in entries.items() if entry.info.get("task") == task]
    if names:
        name = f"{task}-blind" if f"{task}-blind" in names else names[0]
        return name, f"{name} (matches the {kind} degradation)"
    if ALLINONE_MODEL in entries and kind != "noise":
        why = f"{ALLINONE_MODEL} (no bundled model for {kind} alone: the one for all)"
        return ALLINONE_MODEL, why
    return DEFAULT_MODEL, f"{DEFAULT_MODEL} (no bundled model for {kind} yet)"


def pick_model(choice: ModelChoice, kind: str) -> tuple[ModelChoice, str | None]:
    """The model to load for ``choice``: itself (None: no reason to give), or for :data:`AUTO`
    the bundled entry of the degradation ``kind`` and why (:func:`task_model`).

    Example:
        >>> pick_model(ModelChoice(AUTO), "none")[0].pretrained
        'denoise-blind'
    """
    if choice.label != AUTO:
        return choice, None
    name, why = task_model(kind)
    return ModelChoice(f"{BUNDLED}{name}", None, name), why


class LoadedMaps:
    """The last few maps the page used, kept loaded so that a second request starts at once."""

    def __init__(self, device: torch.device, keep: int = 2) -> None:
        self.device, self.keep = device, keep
        self._maps: OrderedDict[tuple[str, float], tuple[nn.Module, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice) -> tuple[nn.Module, str]:
        """The map of ``choice`` in eval mode on the device, and where it came from.

        A checkpoint is loaded as the command line loads one
        (:func:`rcot_lightning.cli.map_source.choose_map`: weights only, its stored config
        checked before anything is built), so a crafted file is refused with the same line.

        Raises:
            RCOTError: the file is gone, or :func:`~rcot_lightning.cli.map_source.choose_map`
                refuses it.
        """
        from rcot_lightning.cli.map_source import choose_map

        if choice.ckpt_path is not None:
            path = Path(choice.ckpt_path)
            try:
                if not path.is_file():
                    raise FileNotFoundError(path)
                key = (str(path.resolve()), path.stat().st_mtime)  # a rewritten last.ckpt reloads
            except (OSError, RuntimeError):
                gone = f"model {choice.label!r}: {path} is gone; reload the page"
                raise RCOTError(gone) from None
        else:
            key = (f"bundled:{choice.pretrained}", 0.0)
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
            chosen = choose_map(choice.ckpt_path, choice.pretrained, map_location=self.device)
            loaded = (chosen.net.to(self.device).eval(), chosen.source)
            self._maps[key] = loaded
            while len(self._maps) > self.keep:
                self._maps.popitem(last=False)
            return loaded


# ------------------------------------------------------------------------- degradations
def synthetic_degradation(
    kind: str, noise_sigma: float = 25.0, blur_sigma: float = 2.0, jpeg_quality: float = 20.0
) -> Degradation | None:
    """The library's degradation the page's ``kind`` names (None for ``"none"``).

    Example:
        >>> synthetic_degradation("noise", noise_sigma=15)
        GaussianNoise(sigma=(15.0, 15.0), clip=True, quantize=True)
        >>> synthetic_degradation("none") is None
        True
    """
    if kind not in SYNTHETIC:
        raise RCOTError(f"degradation {kind!r} is not one of {', '.join(SYNTHETIC)}")
    name = SYNTHETIC[kind]
    if name is None:
        return None
    settings: dict[str, dict[str, float]] = {
        "noise": {"sigma": float(noise_sigma)},
        "gaussian_blur": {"sigma": float(blur_sigma)},
        "jpeg": {"quality": float(jpeg_quality)},
    }
    return build_degradation(name, **settings.get(name, {}))


def degrade(clean: Tensor, degradation: Degradation, seed: int = 0) -> Tensor:
    """``degradation`` of one clean image ``(3, H, W)``, drawn from ``seed``, in [0, 1]."""
    generator = torch.Generator().manual_seed(int(seed))
    return degradation(clean[None].float(), generator)[0].clamp(0.0, 1.0)


# ------------------------------------------------------------------------------- scores
def score_rows(
    degraded: Tensor, reference: Tensor | None, restored: Mapping[str, Tensor]
) -> dict[str, dict[str, float]]:
    """PSNR (dB) and SSIM against ``reference`` of the input and of each restored image.

    Returns:
        ``{"input": {"psnr", "ssim"}, <model>: {...}, ...}``; ``{}`` without a reference.

    Example:
        >>> clean = torch.zeros(3, 16, 16)
        >>> rows = score_rows(clean + 0.1, clean, {"a": clean + 0.01})
        >>> round(rows["input"]["psnr"], 1), round(rows["a"]["psnr"], 1)
        (20.0, 40.0)
    """
    from rcot_lightning.metrics import score_images

    if reference is None:
        return {}
    rows: dict[str, dict[str, float]] = {}
    for name, image in restored.items():
        scores = score_images(image[None], reference[None], degraded=degraded[None])
        rows.setdefault(
            "input", {"psnr": float(scores["psnr_input"]), "ssim": float(scores["ssim_input"])}
        )
        rows[name] = {"psnr": float(scores["psnr"]), "ssim": float(scores["ssim"])}
    return rows


def score_table(rows: Mapping[str, Mapping[str, float]], seconds: Mapping[str, float]) -> str:
    """A Markdown table of :func:`score_rows` and the time of each model; with two models a
    last row gives the second's gain over the first.

    Example:
        >>> rows = {"input": {"psnr": 20.0, "ssim": 0.5}, "A": {"psnr": 30.0, "ssim": 0.9},
        ...         "B": {"psnr": 31.5, "ssim": 0.92}}
        >>> print(score_table(rows, {"A": 1.0, "B": 2.0}).splitlines()[-1])
        | B − A | +1.50 | +0.0200 | |
    """
    lines = ["| | PSNR (dB) | SSIM | time |", "|---|---|---|---|"]
    names = list(seconds)
    if not rows:
        lines = ["| | time |", "|---|---|"]
        lines += [f"| {name} | {seconds[name]:.2f} s |" for name in names]
        return "\n".join(lines) + "\n\nNo clean reference: add a degradation or a reference."
    lines.append(f"| input | {rows['input']['psnr']:.2f} | {rows['input']['ssim']:.4f} | |")
    for name in names:
        score = rows[name]
        lines.append(
            f"| {name} | {score['psnr']:.2f} | {score['ssim']:.4f} | {seconds[name]:.2f} s |"
        )
    if len(names) == 2:
        a, b = (rows[name] for name in names)
        lines.append(f"| B − A | {b['psnr'] - a['psnr']:+.2f} | {b['ssim'] - a['ssim']:+.4f} | |")
    return "\n".join(lines)


def to_display(image: Tensor) -> Any:
    """``(3, H, W)`` in [0, 1] to the ``(H, W, 3)`` uint8 array the page shows."""
    from rcot_lightning.visualize import to_uint8_hwc

    return to_uint8_hwc(image).numpy()


def residual_views(degraded: Tensor, restored: Tensor) -> tuple[Any, Any]:
    """The residual ``degraded - restored`` and its log-spectrum, as displayable arrays."""
    from rcot_lightning.visualize import log_spectrum, residual_image

    residual = (degraded - restored)[None]
    return to_display(residual_image(residual)[0]), to_display(log_spectrum(residual)[0])
