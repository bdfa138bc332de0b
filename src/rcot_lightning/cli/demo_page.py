"""The demo's web page (Gradio Blocks), what its buttons do, and the folder its files live in.

:class:`DemoActions` holds what the buttons do, without Gradio (tests call it directly); the
page, :func:`build_page`, binds it to Gradio's controls. Both are built from
:class:`DemoSettings` (the checked config) and served by :func:`rcot_lightning.cli.demo.serve`,
which imports Gradio first (offline, its cache in the :class:`Workspace`). Every request handler
turns an error into one line on the page.

One user must not hold the shared queue: a request's work is bounded before it starts
(:class:`~rcot_lightning.cli.demo_inputs.RequestLimits`) and its restoration stops between two
tiles when its time is up, when its page is closed or disconnected, or when the demo stops
(:class:`~rcot_lightning.cli.demo_inputs.StopCheck`).
"""

import contextlib
import functools
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from rcot_lightning.cli import app
from rcot_lightning.cli.demo_inputs import (
    AUTO,
    BUNDLED,
    SYNTHETIC,
    LoadedMaps,
    ModelChoice,
    RequestLimits,
    RequestStopped,
    StopCheck,
    UploadLimits,
    default_models,
    degrade,
    list_models,
    pick_model,
    read_upload,
    residual_views,
    resolve_model,
    score_rows,
    score_table,
    synthetic_degradation,
    to_display,
)
from rcot_lightning.errors import RCOTError
from rcot_lightning.inference import InferenceSettings
from rcot_lightning.pretrained import DEFAULT_MODEL
from rcot_lightning.values import positive_int

log = logging.getLogger(__name__)

#: What the page says under the model chooser: what "auto" picks.
AUTO_INFO = (
    "auto: the bundled model for the synthetic degradation's task "
    f"({DEFAULT_MODEL} when none is bundled, or with no degradation); the report names the model"
)


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

    #: Device, precision, tile, tile overlap and self-ensemble (the page may change the tile
    #: and the precision per request).
    inference: InferenceSettings
    #: The label the page preselects: :data:`AUTO` (the degradation picks), or ``bundled:
    #: NAME`` when ``pretrained`` (``model=NAME``) names one: the user's choice.
    default_model: str
    checkpoints_dir: str | None
    max_checkpoints: int
    limits: UploadLimits
    seed: int
    cache_max_age: int
    requests: RequestLimits

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "DemoSettings":
        """Read and check the demo's config.

        Raises:
            RCOTError: a bad value, naming its key.
        """
        from rcot_lightning.pretrained import _known

        node = cfg.demo
        # bf16 on a CPU without it runs in fp32, with a note.
        inference = InferenceSettings.from_config(cfg)
        name = cfg.get("pretrained")
        if name:
            _known(str(name))
        folder = node.get("checkpoints_dir")
        requests = RequestLimits.from_config(node)
        tile = inference.tile
        if tile is not None and tile > requests.max_tile:
            raise RCOTError(
                f"tile={tile} is over demo.max_tile={requests.max_tile}; set a smaller tile, or "
                "raise demo.max_tile"
            )
        return cls(
            inference=inference,
            default_model=f"{BUNDLED}{name}" if name else AUTO,
            checkpoints_dir=None if folder in (None, "") else str(folder),
            max_checkpoints=positive_int(
                node.get("max_checkpoints"), "demo.max_checkpoints", keyed=True
            ),
            limits=UploadLimits.from_config(node),
            seed=int(node.get("seed", 0)),
            cache_max_age=positive_int(node.get("cache_max_age"), "demo.cache_max_age", keyed=True),
            requests=requests,
        )

    def models(self) -> dict[str, ModelChoice]:
        """The model chooser's entries, read now: :data:`AUTO`, then :func:`list_models`."""
        return {AUTO: ModelChoice(AUTO), **list_models(self.checkpoints_dir, self.max_checkpoints)}


class _NoProgress:
    """A progress display that shows nothing (Gradio's ``gr.Progress`` on the page)."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def tqdm(self, iterable: Iterable[Any], *args: Any, **kwargs: Any) -> Iterable[Any]:
        return iterable


class _Running:
    """One request in progress: its page, and why it must stop (None: go on)."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.reason: str | None = None


class DemoActions:
    """What the page's buttons do, without Gradio: each returns what the page shows.

    A request's inputs are checked against :attr:`DemoSettings.requests` before anything is
    decoded or loaded, and its restoration stops between two tiles once its time is up, once
    :meth:`closed` is called for its page, once its ``alive`` says the page disconnected, or
    once :meth:`stop_all` is called (the demo stops).

    Args:
        settings: the checked config.
        workspace: where results are written.
    """

    def __init__(self, settings: DemoSettings, workspace: Workspace) -> None:
        self.settings, self.workspace = settings, workspace
        self.maps = LoadedMaps(torch.device(settings.inference.device))
        self._running: set[_Running] = set()
        self._changed = threading.Condition()
        self._stopping: str | None = None

    # -------------------------------------------------------------- requests in progress
    @contextlib.contextmanager
    def _request(self, session: str, alive: Callable[[], bool]) -> Iterator[StopCheck]:
        """Track one request while it runs; the check its restoration calls between tiles."""
        entry = _Running(session)
        with self._changed:
            if self._stopping is not None:
                raise RequestStopped(f"restoration refused: {self._stopping}")
            self._running.add(entry)

        def why_stop() -> str | None:
            if self._stopping is not None:
                return self._stopping
            if entry.reason is None and not alive():
                entry.reason = "the page disconnected"
            return entry.reason

        try:
            yield StopCheck(self.settings.requests.max_seconds, why_stop)
        finally:
            with self._changed:
                self._running.discard(entry)
                self._changed.notify_all()

    def running(self) -> int:
        """How many requests are in progress."""
        with self._changed:
            return len(self._running)

    def cancel(self, session: str, reason: str) -> None:
        """Stop the requests of page ``session`` at their next tile, for ``reason``."""
        with self._changed:
            for entry in self._running:
                if entry.session == session:
                    entry.reason = reason

    def stop_all(self, reason: str) -> None:
        """Stop every request at its next tile and refuse new ones (the demo is stopping)."""
        with self._changed:
            self._stopping = reason

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the requests in progress to end.

        Returns:
            True when none is left.
        """
        with self._changed:
            return self._changed.wait_for(lambda: not self._running, timeout)

    def closed(self, session: str) -> None:
        """Page ``session`` was closed: stop its requests and delete its files."""
        self.cancel(session, "the page was closed")
        self.workspace.forget(session)

    # ------------------------------------------------------------------------- the work
    def load_input(
        self, photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float, models: int,
    ) -> tuple[Tensor, Tensor | None, str]:  # fmt: skip
        """The degraded input, the clean reference or None, and a file stem for downloads.

        The photo's size is checked against the request's bound on work for ``models`` models
        before it is decoded.

        Raises:
            RCOTError: no photo, a refused upload, too much work, a mismatched reference.
        """
        from rcot_lightning.data.samples import load_photo

        settings = self.settings

        def before_decoding(name: str, height: int, width: int) -> None:
            settings.requests.limit_work(name, height, width, models, settings.inference.ensemble)

        if photo:
            image = read_upload(photo, settings.limits, before_decoding=before_decoding)
            stem = Path(photo).stem
        elif sample:
            image, stem = load_photo(sample), sample
            before_decoding(f"sample {sample}", image.shape[1], image.shape[2])
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

    def request_settings(self, tile: Any, precision: Any, image: Tensor) -> InferenceSettings:
        """The settings of one request: the page's tile side (0: the whole image) and precision
        over the config's, the tile checked against ``demo.max_tile`` for ``image``.

        Raises:
            RCOTError: a bad tile or precision, or a tile (or whole image) over the bound.
        """
        settings = self.settings.inference.replace(tile=tile or None, precision=str(precision))
        self.settings.requests.limit_tile(settings.tile, image.shape[1], image.shape[2])
        return settings

    def load_model(self, label: str, kind: str, progress: Any) -> tuple[nn.Module, str]:
        """The map of the listed model ``label`` and where it came from; :data:`AUTO` loads the
        bundled entry of the degradation ``kind`` and says which and why
        (:func:`~rcot_lightning.cli.demo_inputs.pick_model`).

        A checkpoint is loaded as the command line loads it (a crafted one is refused with the
        command line's line, before anything is built).

        Raises:
            RCOTError: an unlisted, vanished or refused model.
        """
        choice, why = pick_model(resolve_model(label, self.settings.models()), kind)
        progress(0.0, desc=f"loading {choice.label}")
        net, source = self.maps.get(choice)
        return net, source if why is None else f"auto: {why} — {source}"

    def run_model(
        self, label: str, model: tuple[nn.Module, str], image: Tensor,
        settings: InferenceSettings, progress: Any, check: StopCheck,
    ) -> tuple[Tensor, float, str]:  # fmt: skip
        """Restore ``image`` ``(3, H, W)`` with ``model`` (:meth:`load_model` of ``label``).

        Returns:
            The restored image ``(3, H, W)`` in [0, 1] on the CPU, the seconds taken and where
            the model came from.

        Raises:
            RCOTError: a tile the map cannot take; :class:`RequestStopped` (``check``, asked
                before every call of the map).
        """
        net, source = model

        def tiles(batches: Sequence[Any]) -> Iterable[Any]:
            return progress.tqdm(batches, desc=f"{label}: tiles")

        start = time.perf_counter()
        restored = settings.restore(net, image[None], progress=tiles, before_each_call=check)
        restored = restored[0].clamp(0.0, 1.0).cpu()  # .cpu() waits for the device
        seconds = time.perf_counter() - start
        log.info("restored a %s image with %s in %.2f s", tuple(image.shape), source, seconds)
        return restored, seconds, source

    def restore(
        self, photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float, tile: Any, precision: str,
        model: str, *, session: str, progress: Any = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> tuple[Any, ...]:  # fmt: skip
        """The *Restore* button: restore the input with ``model``.

        Args:
            photo: the uploaded photo's path, or None.
            sample: a sample photo's name (when no photo was uploaded), or None.
            reference: the uploaded clean reference's path, or None.
            kind: the synthetic degradation (``none``: the photo as it is).
            noise_sigma: the noise degradation's sigma (0-255).
            blur_sigma: the blur degradation's sigma (pixels).
            jpeg_quality: the JPEG degradation's quality.
            tile: the tile side (0: the whole image).
            precision: ``32`` or ``bf16``.
            model: a label of the model chooser (:data:`AUTO`: the degradation's bundled
                model; the report names it and why).
            session: the page's id (its results go to its folder; :meth:`closed` stops it).
            progress: the page's progress display (``gr.Progress``); None shows nothing.
            alive: False once the page's connection is gone (checked between tiles).

        Returns:
            (the before/after pair, residual, spectrum, the report, the restored file).

        Raises:
            RCOTError: one line for the page; :class:`RequestStopped` when stopped.
        """
        from rcot_lightning.visualize import save_png

        progress = progress or _NoProgress()
        degraded, clean, stem = self.load_input(
            photo, sample, reference, kind, noise_sigma, blur_sigma, jpeg_quality, models=1
        )
        settings = self.request_settings(tile, precision, degraded)  # before a model is loaded
        with self._request(session, alive) as check:
            loaded = self.load_model(model, kind, progress)
            restored, seconds, source = self.run_model(
                model, loaded, degraded, settings, progress, check
            )
        target = save_png(restored, self.workspace.session_dir(session) / f"{stem}_restored.png")
        residual, spectrum = residual_views(degraded, restored)
        table = score_table(score_rows(degraded, clean, {model: restored}), {model: seconds})
        size = f"{degraded.shape[2]}x{degraded.shape[1]}"
        report = f"**{source}** on a {size} image\n\n{table}"
        return (to_display(degraded), to_display(restored)), residual, spectrum, report, target

    def compare(
        self, photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float, tile: Any, precision: str,
        model_a: str, model_b: str, *, session: str, progress: Any = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> tuple[Any, ...]:  # fmt: skip
        """The *Compare* button: restore the input with ``model_a`` and ``model_b``.

        Args: as :meth:`restore`, with two model labels.

        Returns:
            (the A|B pair, A, B, the report, A's file, B's file).

        Raises:
            RCOTError: one line for the page; :class:`RequestStopped` when stopped.
        """
        from rcot_lightning.visualize import save_png

        progress = progress or _NoProgress()
        degraded, clean, stem = self.load_input(
            photo, sample, reference, kind, noise_sigma, blur_sigma, jpeg_quality, models=2
        )
        settings = self.request_settings(tile, precision, degraded)
        results = {}
        with self._request(session, alive) as check:
            # Both first: a model that is refused is refused before the other one runs.
            labels = {"A": model_a, "B": model_b}
            loaded = {
                name: self.load_model(label, kind, progress) for name, label in labels.items()
            }
            for name, label in labels.items():
                results[name] = self.run_model(
                    label, loaded[name], degraded, settings, progress, check
                )
        folder = self.workspace.session_dir(session)
        files = [save_png(results[n][0], folder / f"{stem}_{n}.png") for n in ("A", "B")]
        restored = {name: result[0] for name, result in results.items()}
        rows = score_rows(degraded, clean, restored)
        table = score_table(rows, {name: result[1] for name, result in results.items()})
        report = f"**A**: {results['A'][2]}  \n**B**: {results['B'][2]}\n\n{table}"
        a, b = to_display(restored["A"]), to_display(restored["B"])
        return (a, b), a, b, report, *files

    def choices(self) -> tuple[list[str], str, str]:
        """The chooser's labels, and the models preselected as A (and Restore) and B.

        Nothing is loaded: a hostile checkpoint preselected as B runs nothing until chosen, and
        then it is refused (:meth:`load_model`).
        """
        labels = list(self.settings.models())
        chosen, other = default_models(labels, self.settings.default_model)
        return labels, chosen, other


def offline_theme() -> Any:
    """Gradio's default look with local fonts: a Google font would make each page view call
    the internet."""
    import gradio as gr

    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def page_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its errors shown as one line on the page (a Gradio error box), never a
    traceback page; an unexpected error is logged in the terminal.

    Args:
        fn: a request handler.

    Returns:
        The wrapped handler; it raises ``gr.Error`` with the one line.
    """
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            message = app.user_error_message(err)
            if isinstance(err, RequestStopped):
                log.info("%s", err)
            if message is None:
                log.exception("the demo failed on a request")
                message = f"unexpected error ({type(err).__name__}: {err}); see the terminal"
            raise gr.Error(message, print_exception=False) from None

    return wrapper


def _event_alive(page: Any) -> Callable[[], bool]:
    """Whether the request this thread runs is still wanted by its page.

    Gradio marks a running event dead when its page's connection closes (a closed tab, a client
    that left) but cannot stop the thread that runs it; the restoration asks this between
    tiles. It reads Gradio's queue, which is not public API: when that changes, this answers
    True and the other bounds (time, a closed page) still hold.
    """
    try:
        from gradio.context import LocalContext

        event_id = LocalContext.event_id.get(None)
        queue = page._queue
    except Exception:  # another Gradio version: no such check
        return lambda: True
    if event_id is None:
        return lambda: True

    def alive() -> bool:
        try:
            for job in list(queue.active_jobs):
                for event in job or ():
                    if event._id == event_id:
                        return bool(event.alive)
        except Exception:  # the queue changed shape: no answer
            pass
        return True

    return alive


def build_page(actions: DemoActions) -> Any:
    """The demo's page (a ``gr.Blocks``) bound to ``actions``, not yet launched.

    Import Gradio with :func:`rcot_lightning.cli.demo.import_gradio` first: its settings (no
    analytics, its cache folder) are read when it is first imported.

    Args:
        actions: what the buttons do (its settings and workspace serve the page too).

    Returns:
        The page.
    """
    import gradio as gr

    from rcot_lightning.data.samples import SAMPLE_PHOTOS

    settings, workspace = actions.settings, actions.workspace

    def restore(
        photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float, tile: Any, precision: str,
        model: str, request: gr.Request, progress: Any = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:  # fmt: skip
        return actions.restore(
            photo, sample, reference, kind, noise_sigma, blur_sigma, jpeg_quality, tile,
            precision, model, session=request.session_hash or "anonymous", progress=progress,
            alive=_event_alive(page),
        )  # fmt: skip

    def compare(
        photo: str | None, sample: str | None, reference: str | None, kind: str,
        noise_sigma: float, blur_sigma: float, jpeg_quality: float, tile: Any, precision: str,
        model_a: str, model_b: str, request: gr.Request, progress: Any = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:  # fmt: skip
        return actions.compare(
            photo, sample, reference, kind, noise_sigma, blur_sigma, jpeg_quality, tile,
            precision, model_a, model_b, session=request.session_hash or "anonymous",
            progress=progress, alive=_event_alive(page),
        )  # fmt: skip

    def refresh() -> tuple[Any, ...]:
        labels, chosen, other = actions.choices()
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
            actions.closed(request.session_hash)

    labels = list(settings.models())  # the page's first view; each page load reads them again
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
                        value=settings.inference.tile or 0, precision=0, elem_id="tile",
                        label=(
                            f"tile side (a multiple of 8, up to {settings.requests.max_tile}; 0: "
                            f"the whole image at once, up to {settings.requests.max_tile} a side)"
                        ),
                    )  # fmt: skip
                    precision = gr.Radio(
                        ["32", "bf16"], value=settings.inference.precision, label="precision"
                    )
            with gr.Column(scale=2), gr.Tabs():
                with gr.Tab("Restore", id="restore"):
                    with gr.Row():
                        model = gr.Dropdown(
                            labels, value=settings.default_model, label="Model", elem_id="model",
                            info=AUTO_INFO,
                        )  # fmt: skip
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
        # One queue for both buttons: one restoration at a time, they share the device.
        run.click(
            page_errors(restore),
            [*inputs, model],
            [slider, residual, spectrum, report, download],
            concurrency_id="restoration",
        )
        run_ab.click(
            page_errors(compare),
            [*inputs, model_a, model_b],
            [ab_slider, image_a, image_b, ab_report, download_a, download_b],
            concurrency_id="restoration",
        )
        page.load(refresh, None, [model, model_a, model_b])
        for upload in (photo, reference):
            upload.upload(uploaded, upload, None, show_progress="hidden")
        page.unload(closed)
    return page
