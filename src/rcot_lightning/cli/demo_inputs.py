"""What the demo page does with a request, without Gradio: uploads, models, scores.

:mod:`rcot_lightning.cli.demo` serves the page; these are the parts that need no browser and no
Gradio, so they are tested directly: upload limits, the model chooser's listing (bundled
entries, checkpoints under one folder, the latest run there), the synthetic degradations, the
run itself (the library's tiled :func:`~rcot_lightning.inference.restore_image`), the scores
(the library's :func:`~rcot_lightning.metrics.score_images`) and the residual views (the
library's :mod:`~rcot_lightning.visualize`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rcot_lightning.data.degradations import Degradation, build_degradation
from rcot_lightning.errors import RCOTError

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

#: How the model chooser labels its entries.
BUNDLED, LATEST, CHECKPOINT = "bundled: ", "latest run in ", "checkpoint: "


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


def read_upload(path: str | Path, limits: UploadLimits, what: str = "photo") -> Tensor:
    """An uploaded image as ``(3, H, W)`` float32 in [0, 1], checked before it is decoded.

    The file size and the image size (read from the header: a small file can hold a huge image)
    are checked against ``limits`` first.

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
    return read_image(path)


# ------------------------------------------------------------------------------- models
class ModelChoice(NamedTuple):
    """One entry of the page's model chooser: a bundled name or a checkpoint file."""

    label: str
    ckpt_path: Path | None = None
    pretrained: str | None = None


def _checkpoints_under(root: Path, limit: int) -> list[Path]:
    """The ``*.ckpt`` files under ``root``, newest first; links leading outside it are left out."""
    if not root.is_dir():
        return []
    inside = root.resolve()
    found = [
        path
        for path in root.rglob("*.ckpt")
        if path.is_file() and path.resolve().is_relative_to(inside)
    ]
    found.sort(key=lambda path: (-path.stat().st_mtime, str(path)))
    return found[:limit]


def list_models(checkpoints_dir: str | Path | None, limit: int = 100) -> dict[str, ModelChoice]:
    """What the page's model chooser offers, by label.

    The bundled entries (``bundled: NAME``), then, when ``checkpoints_dir`` is set, ``latest run
    in <folder>`` (the run whose ``checkpoints/last.ckpt`` was written last, as ``ckpt_path=last``
    of training finds it) and every ``*.ckpt`` under the folder (``checkpoint: <relative
    path>``), the newest ``limit`` of them.

    Example:
        >>> list(list_models(None))
        ['bundled: denoise-blind-fast', 'bundled: denoise-blind']
    """
    from rcot_lightning.cli.run_folder import LAST_CHECKPOINT, latest_run
    from rcot_lightning.pretrained import available

    choices = {
        f"{BUNDLED}{name}": ModelChoice(f"{BUNDLED}{name}", None, name) for name in available()
    }
    if checkpoints_dir in (None, ""):
        return choices
    root = Path(str(checkpoints_dir)).expanduser()
    latest = latest_run(root)
    if latest is not None and (latest / LAST_CHECKPOINT).resolve().is_relative_to(root.resolve()):
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


class LoadedMaps:
    """The last few maps the page used, kept loaded so that a second request starts at once."""

    def __init__(self, device: torch.device, keep: int = 2) -> None:
        self.device, self.keep = device, keep
        self._maps: OrderedDict[tuple[str, float], tuple[nn.Module, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice) -> tuple[nn.Module, str]:
        """The map of ``choice`` in eval mode on the device, and where it came from."""
        from rcot_lightning.cli.map_source import choose_map

        if choice.ckpt_path is not None:
            path = Path(choice.ckpt_path)
            if not path.is_file():
                raise RCOTError(f"model {choice.label!r}: {path} is gone; reload the page")
            key = (str(path.resolve()), path.stat().st_mtime)  # a rewritten last.ckpt reloads
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


# ------------------------------------------------------------------------------ running
def run_map(
    net: nn.Module,
    image: Tensor,
    *,
    device: torch.device,
    tile: int | None,
    overlap: int,
    precision: str,
    progress: Callable[[Sequence[Any]], Iterable[Any]] | None = None,
    ensemble: int = 1,
) -> tuple[Tensor, float]:
    """Restore one image ``(3, H, W)`` with the library's tiled inference (and ``ensemble``:
    its geometric self-ensemble, 1 = off).

    Returns:
        The restored image ``(3, H, W)`` float32 in [0, 1] on the CPU, and the seconds taken.
    """
    from rcot_lightning.cli.restore import _autocast
    from rcot_lightning.inference import restore_image

    start = time.perf_counter()
    with torch.inference_mode(), _autocast(precision, device):
        restored = restore_image(
            net,
            image[None].to(device),
            tile=tile,
            overlap=overlap,
            progress=progress,
            ensemble=ensemble,
        )
    restored = restored[0].float().clamp(0.0, 1.0).cpu()  # .cpu() waits for the device
    return restored, time.perf_counter() - start


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
