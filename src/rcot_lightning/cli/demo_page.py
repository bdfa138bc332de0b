"""The demo's web page (Gradio Blocks) and the temporary folder its files live in.

Built by :func:`build_page` from :class:`DemoSettings` (the checked config); served by
:func:`rcot_lightning.cli.demo.serve`, which imports Gradio first (offline, its cache in the
:class:`Workspace`). Every request handler turns an error into one line on the page.
"""

import functools
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from rcot_lightning.cli import app
from rcot_lightning.cli.checks import positive_int
from rcot_lightning.cli.demo_inputs import (
    BUNDLED,
    SYNTHETIC,
    LoadedMaps,
    ModelChoice,
    UploadLimits,
    default_models,
    degrade,
    list_models,
    read_upload,
    residual_views,
    resolve_model,
    run_map,
    score_rows,
    score_table,
    synthetic_degradation,
    to_display,
)
from rcot_lightning.errors import RCOTError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- workspace
class Workspace:
    """The demo's one temporary folder: Gradio's cache and each page's files.

    Each page (Gradio session) writes its results under ``gradio/sessions/<id>/``; :meth:`forget`
    deletes them and the page's uploads when the page is closed, :meth:`close` everything.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rcot-demo-"))
        self.cache = self.root / "gradio"
        self.cache.mkdir()
        self._uploads: dict[str, set[Path]] = {}
        self._lock = threading.Lock()

    def _session_folder(self, session: str) -> Path:
        # Inside Gradio's cache, so that Gradio serves the results from there, uncopied.
        return self.cache / "sessions" / "".join(c for c in session if c.isalnum())[:64]

    def session_dir(self, session: str) -> Path:
        """The folder of one page's results (created)."""
        folder = self._session_folder(session)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def remember(self, session: str, path: str | Path) -> None:
        """Delete ``path`` (an upload in Gradio's cache) with the page's other files."""
        with self._lock:
            self._uploads.setdefault(session, set()).add(Path(path))

    def forget(self, session: str) -> None:
        """Delete one page's uploads and results (the page was closed)."""
        with self._lock:
            uploads = self._uploads.pop(session, set())
        for path in uploads:
            if path.resolve().is_relative_to(self.root.resolve()):  # never outside our folder
                path.unlink(missing_ok=True)
        shutil.rmtree(self._session_folder(session), ignore_errors=True)

    def close(self) -> None:
        """Delete everything (the demo stops)."""
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class DemoSettings:
    """What the page needs from the config, read and checked once at start."""

    device: torch.device
    tile: int | None
    overlap: int
    precision: str
    ensemble: int
    default_model: str
    checkpoints_dir: str | None
    max_checkpoints: int
    limits: UploadLimits
    seed: int
    cache_max_age: int

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "DemoSettings":
        from rcot_lightning.cli.checks import tile_size
        from rcot_lightning.cli.restore import _autocast, _device
        from rcot_lightning.pretrained import DEFAULT_MODEL, _known

        node = cfg.demo
        device = _device(str(cfg.get("device", "auto")))
        precision = str(cfg.get("precision", "32"))
        _autocast(precision, device)  # rejects an unknown precision now, not on first use
        from rcot_lightning.cli.checks import ensemble_size

        ensemble = ensemble_size(cfg.get("ensemble", 1))
        overlap = cfg.get("tile_overlap", 32)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
            raise RCOTError(f"tile_overlap must be a whole number of pixels, got {overlap!r}")
        name = str(cfg.get("pretrained") or DEFAULT_MODEL)
        _known(name)
        folder = node.get("checkpoints_dir")
        return cls(
            device=device,
            tile=tile_size(cfg.get("tile")),
            overlap=overlap,
            precision=precision,
            ensemble=ensemble,
            default_model=f"{BUNDLED}{name}",
            checkpoints_dir=None if folder in (None, "") else str(folder),
            max_checkpoints=positive_int(node.get("max_checkpoints"), "demo.max_checkpoints"),
            limits=UploadLimits.from_config(node),
            seed=int(node.get("seed", 0)),
            cache_max_age=positive_int(node.get("cache_max_age"), "demo.cache_max_age"),
        )

    def models(self) -> dict[str, ModelChoice]:
        return list_models(self.checkpoints_dir, self.max_checkpoints)


def offline_theme() -> Any:
    """Gradio's default look with local fonts: a Google font would make each page view call
    the internet."""
    import gradio as gr

    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def _page_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show an error as one line on the page (a Gradio error box), never a traceback page."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            message = app.user_error_message(err)
            if message is None:
                log.exception("the demo failed on a request")
                message = f"unexpected error ({type(err).__name__}: {err}); see the terminal"
            raise gr.Error(message, print_exception=False) from None

    return wrapper


def build_page(settings: DemoSettings, workspace: Workspace) -> Any:
    """The demo's page (a ``gr.Blocks``), not yet launched.

    Import Gradio with :func:`rcot_lightning.cli.demo.import_gradio` first: its settings (no
    analytics, its cache folder) are read when it is first imported.
    """
    import gradio as gr

    from rcot_lightning.data.samples import SAMPLE_PHOTOS, load_photo
    from rcot_lightning.shapes import size_multiple
    from rcot_lightning.visualize import save_png

    maps = LoadedMaps(settings.device)

    def load_input(
        photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float,
    ) -> tuple[Tensor, Tensor | None, str]:  # fmt: skip
        """(degraded input, clean reference or None, a file stem for downloads)."""
        if photo:
            image, stem = read_upload(photo, settings.limits), Path(photo).stem
        elif sample:
            image, stem = load_photo(sample), sample
        else:
            raise RCOTError("drop a photo on the page, or choose a sample photo")
        degradation = synthetic_degradation(kind, noise_sigma, blur_sigma, jpeg_quality)
        if degradation is not None:
            return degrade(image, degradation, settings.seed), image, stem
        if not reference:
            return image, None, stem
        clean = read_upload(reference, settings.limits, what="reference")
        if clean.shape != image.shape:
            raise RCOTError(
                f"the reference is {clean.shape[2]}x{clean.shape[1]} and the photo "
                f"{image.shape[2]}x{image.shape[1]}; a reference must have the photo's size"
            )
        return image, clean, stem

    def restore_with(
        label: str, image: Tensor, tile: Any, precision: str, progress: Any
    ) -> tuple[Tensor, float, str]:
        from rcot_lightning.cli.checks import tile_size

        choice = resolve_model(label, settings.models())
        progress(0.0, desc=f"loading {label}")
        net, source = maps.get(choice)
        side = tile_size(tile or None, multiple=size_multiple(net))
        if side is not None and side <= settings.overlap:
            raise RCOTError(f"tile must be larger than tile_overlap={settings.overlap}")

        def tiles(batches: Sequence[Any]) -> Iterable[Any]:
            return progress.tqdm(batches, desc=f"{label}: tiles")

        restored, seconds = run_map(
            net, image, device=settings.device, tile=side, overlap=settings.overlap,
            precision=str(precision), progress=tiles, ensemble=settings.ensemble,
        )  # fmt: skip
        log.info("restored a %s image with %s in %.2f s", tuple(image.shape), source, seconds)
        return restored, seconds, source

    def restore(
        photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float, tile: Any, precision: str,
        model: str, request: gr.Request, progress: Any = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:  # fmt: skip
        session = request.session_hash or "anonymous"
        degraded, clean, stem = load_input(
            photo, sample, reference, kind, noise_sigma, blur_sigma, jpeg_quality
        )
        restored, seconds, source = restore_with(model, degraded, tile, precision, progress)
        target = save_png(restored, workspace.session_dir(session) / f"{stem}_restored.png")
        residual, spectrum = residual_views(degraded, restored)
        table = score_table(score_rows(degraded, clean, {model: restored}), {model: seconds})
        size = f"{degraded.shape[2]}x{degraded.shape[1]}"
        report = f"**{source}** on a {size} image\n\n{table}"
        return (to_display(degraded), to_display(restored)), residual, spectrum, report, target

    def compare(
        photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float, tile: Any, precision: str,
        model_a: str, model_b: str, request: gr.Request, progress: Any = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:  # fmt: skip
        session = request.session_hash or "anonymous"
        degraded, clean, stem = load_input(
            photo, sample, reference, kind, noise_sigma, blur_sigma, jpeg_quality
        )
        results = {}
        for name, label in (("A", model_a), ("B", model_b)):
            results[name] = restore_with(label, degraded, tile, precision, progress)
        folder = workspace.session_dir(session)
        files = [save_png(results[n][0], folder / f"{stem}_{n}.png") for n in ("A", "B")]
        restored = {name: result[0] for name, result in results.items()}
        rows = score_rows(degraded, clean, restored)
        table = score_table(rows, {name: result[1] for name, result in results.items()})
        report = f"**A**: {results['A'][2]}  \n**B**: {results['B'][2]}\n\n{table}"
        a, b = to_display(restored["A"]), to_display(restored["B"])
        return (a, b), a, b, report, *files

    def refresh() -> tuple[Any, ...]:
        labels = list(settings.models())
        chosen, other = default_models(labels, settings.default_model)
        return (
            gr.Dropdown(choices=labels, value=chosen),
            gr.Dropdown(choices=labels, value=chosen),
            gr.Dropdown(choices=labels, value=other),
        )

    def uploaded(path: str | None, request: gr.Request) -> None:
        if path and request.session_hash:
            workspace.remember(request.session_hash, path)

    def closed(request: gr.Request) -> None:
        if request.session_hash:
            workspace.forget(request.session_hash)

    labels = list(settings.models())
    image = functools.partial(gr.Image, format="png", interactive=False, buttons=["fullscreen"])
    with gr.Blocks(
        title="rcot-lightning demo",
        analytics_enabled=False,
        delete_cache=(max(60, settings.cache_max_age // 4), settings.cache_max_age),
    ) as page:
        gr.Markdown(
            "# RCOT restoration\nDrop a photo (or pick a sample), choose a model, restore. "
            "Add a synthetic degradation to a clean photo to get PSNR/SSIM against it."
        )
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.File(label="Photo (drop or click)", elem_id="photo")
                sample = gr.Dropdown(
                    list(SAMPLE_PHOTOS), value=None, label="or a sample photo", elem_id="sample"
                )
                kind = gr.Radio(
                    list(SYNTHETIC), value="none", label="Synthetic degradation",
                    elem_id="degradation",
                )  # fmt: skip
                noise_sigma = gr.Slider(0, 100, value=25, step=1, label="noise sigma (0-255)")
                blur_sigma = gr.Slider(0.5, 5, value=2, step=0.1, label="blur sigma (pixels)")
                jpeg_quality = gr.Slider(1, 100, value=20, step=1, label="JPEG quality")
                reference = gr.File(
                    label="Clean reference (optional; for PSNR/SSIM without a degradation)",
                    elem_id="reference",
                )
                with gr.Accordion("Options", open=False):
                    tile = gr.Number(
                        value=settings.tile or 0, precision=0, elem_id="tile",
                        label="tile side (a multiple of 8; 0: the whole image at once)",
                    )  # fmt: skip
                    precision = gr.Radio(
                        ["32", "bf16"], value=settings.precision, label="precision"
                    )
            with gr.Column(scale=2), gr.Tabs():
                with gr.Tab("Restore", id="restore"):
                    with gr.Row():
                        model = gr.Dropdown(
                            labels, value=settings.default_model, label="Model", elem_id="model"
                        )
                        run = gr.Button("Restore", variant="primary", elem_id="restore-button")
                    slider = gr.ImageSlider(
                        label="Before / after (drag the bar; scroll to zoom)", format="png",
                        elem_id="before-after",
                    )  # fmt: skip
                    with gr.Row():
                        residual = image(label="Residual (input − restored)", elem_id="residual")
                        spectrum = image(label="Log-spectrum of the residual", elem_id="spectrum")
                    report = gr.Markdown(elem_id="report")
                    download = gr.File(label="Restored image, full resolution", elem_id="download")
                with gr.Tab("A/B compare", id="ab"):
                    with gr.Row():
                        model_a = gr.Dropdown(labels, label="Model A", elem_id="model-a")
                        model_b = gr.Dropdown(labels, label="Model B", elem_id="model-b")
                        run_ab = gr.Button("Compare", variant="primary", elem_id="compare-button")
                    ab_slider = gr.ImageSlider(
                        label="A | B (one view: scrolling zooms both)", format="png",
                        elem_id="ab-slider",
                    )  # fmt: skip
                    with gr.Row():
                        image_a = image(label="A", elem_id="image-a")
                        image_b = image(label="B", elem_id="image-b")
                    ab_report = gr.Markdown(elem_id="ab-report")
                    with gr.Row():
                        download_a = gr.File(label="A, full resolution", elem_id="download-a")
                        download_b = gr.File(label="B, full resolution", elem_id="download-b")
        inputs = [
            photo,
            sample,
            reference,
            kind,
            noise_sigma,
            blur_sigma,
            jpeg_quality,
            tile,
            precision,
        ]
        run.click(
            _page_errors(restore),
            [*inputs, model],
            [slider, residual, spectrum, report, download],
        )
        run_ab.click(
            _page_errors(compare),
            [*inputs, model_a, model_b],
            [ab_slider, image_a, image_b, ab_report, download_a, download_b],
        )
        page.load(refresh, None, [model, model_a, model_b])
        for upload in (photo, reference):
            upload.upload(uploaded, upload, None, show_progress="hidden")
        page.unload(closed)
    return page
