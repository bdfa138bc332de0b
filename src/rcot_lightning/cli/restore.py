"""Restore images: ``python -m rcot_lightning.restore input=FILE_OR_DIR output=DIR``.

The map comes from ``ckpt_path=`` (a training checkpoint) or ``model=NAME`` (a bundled pretrained
entry); with neither, the bundled blind denoiser (:mod:`rcot_lightning.cli.map_source`).

Any image size: a super-resolution map (``model=sr-blind``, or ``upscale=4`` with a checkpoint)
gets each image bicubic-enlarged first; each image is reflect-padded to the map's size multiple
and, when larger than ``tile``, restored in overlapping tiles blended with a smooth window
(``tile=null`` restores whole images). A progress bar counts images and tiles. Writes
``<output>/<name>.png``.

A user's photos are never at risk: every output name is planned and checked before anything is
written (no output may replace an input; inputs sharing a name, ``x.jpg`` and ``x.png``, become
``x_jpg.png`` and ``x_png.png``), the output folder is checked to be writable first, and each
image is written to a temporary file and renamed into place. Restored files already in the
output folder are kept unless ``overwrite=true``. ``skip_bad=true`` restores the readable files
of a folder, lists the others at the end and exits with status 1. The map is run once on a
small probe first and refused when it returns NaN or infinity; no non-finite image is written.
16-bit inputs are restored to 8-bit PNGs, with a note. A bundled model that ships a degradation
detector (``allinone-blind``) prints, per image, the degradation it reads from its own residual
and how sure it is (``photo.jpg: looks like rain (91 %; next: haze 5 %)``,
:mod:`rcot_lightning.detect`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from rcot_lightning.cli import app
from rcot_lightning.cli.checks import check_backend, check_writable_folder
from rcot_lightning.cli.export import OnnxRuntimeMap
from rcot_lightning.errors import RCOTError
from rcot_lightning.inference import (
    InferenceSettings,
    bicubic_upscale,
    run_precision,
    upscale_factor,
)
from rcot_lightning.values import flag

__all__ = ["Restored", "main", "plan_outputs", "restore_files", "run_precision"]

log = logging.getLogger(__name__)


def _inputs(path: Path) -> list[Path]:
    from rcot_lightning.data.images import IMAGE_EXTENSIONS, list_images

    if path.is_dir():
        return list_images(path, "input")
    if not path.exists():
        raise RCOTError(f"input: {path} does not exist; pass an image file or a folder of images")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise RCOTError(
            f"input: {path} is not an image file (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return [path]


class _TileProgress:
    """``progress`` callable for :func:`restore_image`: one rich task per image's tiles."""

    def __init__(self, progress: Any, label: str) -> None:
        self.progress, self.label = progress, label

    def __call__(self, batches: Sequence[Any]) -> Iterable[Any]:
        return self._iterate(batches)

    def _iterate(self, batches: Sequence[Any]) -> Iterator[Any]:
        task = self.progress.add_task(f"  tiles of {self.label}", total=len(batches))
        for item in batches:
            yield item
            self.progress.advance(task)
        self.progress.remove_task(task)


def plan_outputs(files: Sequence[Path], output: Path) -> list[tuple[Path, Path]]:
    """Where each input's restoration goes, checked before anything is written.

    Args:
        files: the input images.
        output: the folder to write into.

    Returns:
        ``(input, output file)`` pairs: ``<stem>.png``; inputs whose stems collide (``x.jpg``,
        ``x.png``; case-insensitively) keep their extension, ``x_jpg.png`` and ``x_png.png``;
        a name still taken gets ``_2``, ``_3``, ...

    Raises:
        RCOTError: an output would replace one of the inputs.

    Example:
        >>> plan = plan_outputs([Path("in/x.jpg"), Path("in/x.png"), Path("in/y.tif")], Path("out"))
        >>> [str(target) for _, target in plan]
        ['out/x_jpg.png', 'out/x_png.png', 'out/y.png']
    """
    stems: dict[str, int] = {}
    for path in files:
        stems[path.stem.lower()] = stems.get(path.stem.lower(), 0) + 1
    taken: set[str] = set()
    plan = []
    for path in files:
        base = path.stem
        if stems[base.lower()] > 1:
            base = f"{base}_{path.suffix.lstrip('.').lower()}"
        name, n = f"{base}.png", 1
        while name.lower() in taken:
            n += 1
            name = f"{base}_{n}.png"
        taken.add(name.lower())
        plan.append((path, output / name))
    inputs = {path.resolve(): path for path in files}
    for _, target in plan:
        if target.resolve() in inputs:
            raise RCOTError(
                f"output: writing {target} would replace the input "
                f"{inputs[target.resolve()]}; choose another output folder (nothing was written)"
            )
    return plan


class Restored(list[Path]):
    """The files :func:`restore_files` wrote, and in :attr:`skipped` the unreadable inputs."""

    def __init__(self, written: Iterable[Path] = (), skipped: Iterable[Path] = ()) -> None:
        super().__init__(written)
        self.skipped = list(skipped)


def _existing(plan: Sequence[tuple[Path, Path]], overwrite: bool) -> None:
    """Keep files already in the output folder unless ``overwrite=true`` (before any work)."""
    existing = [target for _, target in plan if target.exists()]
    if existing and not overwrite:
        names = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise RCOTError(
            f"output: {len(existing)} of the restored files already exist in "
            f"{existing[0].parent} ({names}) and were kept; pass overwrite=true to replace them, "
            "or choose another output folder (nothing was written)"
        )


def _sixteen_bit(path: Path) -> bool:
    """Whether ``path`` stores 16 bits per sample (PNG header, or TIFF/Pillow's mode)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(25)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            return head[24] == 16
        from PIL import Image

        with Image.open(path) as img:
            return img.mode.startswith("I;16") or img.mode == "I"
    except Exception:  # unreadable files are reported when they are decoded
        return False


def _bool(cfg: DictConfig, key: str) -> bool:
    return flag(cfg.get(key, False), key, keyed=True)


def _refuse_for_onnxruntime(cfg: DictConfig) -> None:
    """``backend=onnxruntime`` runs the exported map on the CPU in float32: an explicit bf16 or
    GPU is refused before the settings are read, so no bf16 or device warning comes first."""
    device = str(cfg.get("device", "auto"))
    if device not in ("auto", "cpu"):
        raise RCOTError(
            f"device: backend=onnxruntime runs on the CPU, not {device}; "
            "use device=cpu, or backend=torch for the GPU"
        )
    if str(cfg.get("precision")) in ("bf16", "bf16-mixed"):
        raise RCOTError(
            "precision: backend=onnxruntime runs the map in float32; use precision=32 (or auto), "
            "or backend=torch for bf16"
        )


#: ``backend=auto`` runs ONNX Runtime from this many megapixels of map input (all the images of
#: one call, after any upscaling): the export costs 2-6 s once, and ONNX Runtime then saves about
#: 4 s per megapixel against PyTorch's bf16 on an AVX-512 BF16 AMD EPYC and 9 s against its fp32
#: on an AVX2 one (``benchmarks/onnx_speed.py``), so below this PyTorch finishes first.
AUTO_ONNX_MEGAPIXELS = 2.0


def _megapixels(files: Sequence[Path]) -> float:
    """The images' total size from their headers (an unreadable file counts 0: it is reported
    when it is read)."""
    from rcot_lightning.data.images import image_size

    total = 0
    for path in files:
        try:
            height, width = image_size(path)
        except RCOTError:
            continue
        total += height * width
    return total / 1e6


def _auto_backend(cfg: DictConfig, device: torch.device, megapixels: float) -> str:
    """``backend=auto``: ``onnxruntime`` on the CPU, in float32 (precision ``auto`` or ``32``),
    for at least :data:`AUTO_ONNX_MEGAPIXELS` of input, when ``onnx`` and ``onnxruntime`` are
    installed (the ``export`` extra); else ``torch``. ONNX Runtime ran the bundled map 2.6x as
    fast as PyTorch fp32 on both AMD EPYCs measured, and 1.5x as fast as PyTorch bf16 where bf16
    is native (AVX-512 BF16), to the same numbers (``docs/deploy.md``)."""
    import importlib.util

    if device.type != "cpu" or str(cfg.get("precision")) in ("bf16", "bf16-mixed"):
        return "torch"
    if megapixels < AUTO_ONNX_MEGAPIXELS:
        return "torch"
    installed = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
    return "onnxruntime" if installed else "torch"


def restore_files(cfg: DictConfig) -> Restored:
    """Restore ``cfg.input`` into ``cfg.output``; returns the files written (and skipped)."""
    from rich.progress import Progress

    from rcot_lightning.checkpoints.atomic import atomic_path
    from rcot_lightning.checkpoints.trust import trust_settings
    from rcot_lightning.cli.map_source import choose_map
    from rcot_lightning.data.images import BadImageError, read_image, set_max_megapixels
    from rcot_lightning.visualize import save_png

    set_max_megapixels(cfg.get("max_megapixels", 178))
    backend = check_backend(cfg.get("backend"))
    if backend == "onnxruntime":
        _refuse_for_onnxruntime(cfg)
    settings = InferenceSettings.from_config(cfg)  # device, precision, tiles: before the work
    if backend == "onnxruntime":  # device=auto means the CPU here
        settings = settings.replace(device="cpu")
    trust, targets = trust_settings(cfg)
    asked_upscale = None if cfg.get("upscale") is None else upscale_factor(cfg.upscale)
    skip_bad, overwrite = _bool(cfg, "skip_bad"), _bool(cfg, "overwrite")
    files = _inputs(Path(str(cfg.input)).expanduser())
    output = Path(str(cfg.output)).expanduser()
    plan = plan_outputs(files, output)
    _existing(plan, overwrite)
    check_writable_folder(output, "output")
    device = torch.device(settings.device)  # a checked device (the field also takes a name)
    chosen = choose_map(app.checkpoint_of(cfg), cfg.get("pretrained"), device, trust, targets)
    net = chosen.net.to(device).eval()
    upscale = chosen.upscale if asked_upscale is None else asked_upscale
    if chosen.upscale > 1 and upscale != chosen.upscale:
        log.warning("upscale=%d given: the model was trained at x%d", upscale, chosen.upscale)

    said = backend
    if backend == "auto":
        backend = _auto_backend(cfg, device, _megapixels(files) * upscale**2)
        said = f"auto chose {backend}"
    runner: torch.nn.Module = net
    if backend == "onnxruntime":
        try:
            runner = OnnxRuntimeMap(net)
        except Exception as err:
            if said == "onnxruntime":
                raise
            # auto: a map that does not export (a custom one) still restores, in PyTorch.
            log.warning("backend=auto: ONNX Runtime cannot run this map (%s); using torch", err)
            backend = "torch"
        else:
            settings = settings.replace(precision="32")
            said += f" (CPU provider, {torch.get_num_threads()} thread(s))"

    app.report(f"model: {chosen.source}")
    if backend == "onnxruntime":  # PyTorch, the usual runner, goes unsaid
        app.report(f"backend: {said}")
    if upscale > 1:
        app.report(f"upscale: x{upscale} (bicubic, 8-bit), then the map")
    if str(cfg.get("precision")) == "auto":
        app.report(f"precision: auto chose {settings.precision} on {device.type}")
    result = Restored()
    deep = [path.name for path in files if _sixteen_bit(path)]
    try:
        with Progress(transient=True) as progress:
            images = progress.add_task("restoring", total=len(plan))
            for path, target in plan:
                try:
                    degraded = bicubic_upscale(read_image(path).unsqueeze(0), upscale)
                except BadImageError as err:
                    if not skip_bad:
                        raise RCOTError(
                            f"input: {path} cannot be read as an image ({err.reason}); remove "
                            "it or pass skip_bad=true to restore the other files"
                        ) from err
                    log.warning("skipping %s: %s", path, err.reason)
                    result.skipped.append(path)
                    progress.advance(images)
                    continue
                if chosen.detector is not None:  # why the image comes out as it does
                    found = chosen.detector.detect(net, degraded.to(device))
                    app.report(f"{path.name}: looks like {found.line()}")
                restored = settings.restore(
                    runner, degraded, progress=_TileProgress(progress, path.name)
                )
                if not bool(torch.isfinite(restored).all()):
                    raise RCOTError(
                        f"{chosen.source}: restoring {path} gave non-finite values (NaN or "
                        f"infinity), so {target.name} was not written ({len(result)} image(s) "
                        f"written before it are complete); try precision=32, or another checkpoint"
                    )
                try:
                    with atomic_path(target) as temp:
                        save_png(restored[0].clamp(0, 1), temp)
                except OSError as err:
                    raise RCOTError(
                        f"output: cannot write {target} ({err.strerror or err}); the {len(result)} "
                        f"image(s) written before it in {output} are complete and no partial file "
                        "was left; free some space or choose another output folder"
                    ) from None
                result.append(target)
                progress.advance(images)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"{len(result)} of {len(plan)} image(s) were restored into {output}"
        ) from None
    ensemble = settings.ensemble  # said when on: the only sign the user gets that it was used
    averaged = f" (ensemble={ensemble}: each the mean of {ensemble} flips/rotations)"
    app.report(f"restored {len(result)} image(s) into {output}{averaged if ensemble > 1 else ''}")
    if deep:
        app.report(
            f"note: {len(deep)} input(s) are 16-bit ({', '.join(deep[:3])}"
            f"{', ...' if len(deep) > 3 else ''}); the restored PNGs are 8-bit"
        )
    if result.skipped:
        names = ", ".join(p.name for p in result.skipped)
        app.report(f"skipped {len(result.skipped)} unreadable file(s): {names}")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="restore")
def _hydra_main(cfg: DictConfig) -> None:
    with app.exit_on_user_error("rcot-restore"):
        result = restore_files(cfg)
    if result.skipped:  # the command did not do all it was asked: say so to scripts
        raise SystemExit(1)


def main() -> None:
    """Console entry point ``rcot-restore``."""
    from rcot_lightning.cli.map_source import model_alias

    sys.argv = model_alias(sys.argv)
    app.run_cli("rcot-restore", _hydra_main)


if __name__ == "__main__":
    main()
