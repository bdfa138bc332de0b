"""Restore images: ``python -m rcot_lightning.restore input=FILE_OR_DIR output=DIR``.

The map comes from ``ckpt_path=`` (a training checkpoint) or ``model=NAME`` (a bundled pretrained
entry); with neither, the bundled blind denoiser (:mod:`rcot_lightning.map_source`).

Any image size: each image is reflect-padded to the map's size multiple and, when larger than
``tile``, restored in overlapping tiles blended with a smooth window (``tile=null`` restores
whole images). A progress bar counts images and tiles. Writes ``<output>/<name>.png``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from rcot_lightning import app
from rcot_lightning.errors import RCOTError

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


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise RCOTError(f"device: {name!r} is not a device (auto, cpu, cuda, cuda:1)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RCOTError(f"device={name}: no CUDA GPU is available; use device=cpu")
    return device


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision in ("32", "32-true", "fp32"):
        return contextlib.nullcontext()
    if precision in ("bf16", "bf16-mixed"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise RCOTError(f"precision must be 32 or bf16, got {precision!r}")


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


def restore_files(cfg: DictConfig) -> list[Path]:
    """Restore ``cfg.input`` into ``cfg.output``; returns the files written."""
    from rich.progress import Progress

    from rcot_lightning.data.images import read_image
    from rcot_lightning.inference import restore_image
    from rcot_lightning.map_source import choose_map
    from rcot_lightning.visualize import save_png

    tile = cfg.get("tile")
    if tile is not None and (int(tile) <= 0 or int(tile) % 8):
        raise RCOTError(f"tile must be a positive multiple of 8 or null, got {tile!r}")
    overlap = int(cfg.get("tile_overlap", 32))
    if tile is not None and not 0 <= overlap < int(tile):
        raise RCOTError(f"tile_overlap must be in [0, tile={tile}), got {overlap}")
    files = _inputs(Path(str(cfg.input)).expanduser())
    output = Path(str(cfg.output)).expanduser()
    if output.exists() and not output.is_dir():
        raise RCOTError(f"output: {output} is a file; pass a folder to write images into")
    device = _device(str(cfg.get("device", "auto")))
    precision = str(cfg.get("precision", "32"))

    chosen = choose_map(cfg.get("ckpt_path"), cfg.get("pretrained"), map_location=device)
    app.report(f"model: {chosen.source}")
    net, multiple = chosen.net.to(device).eval(), chosen.multiple
    written: list[Path] = []
    with Progress(transient=True) as progress:
        images = progress.add_task("restoring", total=len(files))
        for path in files:
            degraded = read_image(path).unsqueeze(0).to(device)
            with torch.inference_mode(), _autocast(precision, device):
                restored = restore_image(
                    net,
                    degraded,
                    tile=None if tile is None else int(tile),
                    overlap=overlap,
                    multiple=multiple,
                    progress=_TileProgress(progress, path.name),
                )
            target = output / f"{path.stem}.png"
            if target.resolve() == path.resolve():
                raise RCOTError(
                    f"output: writing {target} would overwrite the input; choose another folder"
                )
            written.append(Path(save_png(restored[0].float().clamp(0, 1), target)))
            progress.advance(images)
    app.report(f"restored {len(written)} image(s) into {output}")
    return written


@hydra.main(version_base="1.3", config_path="conf", config_name="restore")
def _hydra_main(cfg: DictConfig) -> None:
    with app.exit_on_user_error("rcot-restore"):
        restore_files(cfg)


def main() -> None:
    """Console entry point ``rcot-restore``."""
    from rcot_lightning.map_source import model_alias

    sys.argv = model_alias(sys.argv)
    app.run_cli("rcot-restore", _hydra_main)


if __name__ == "__main__":
    main()
