"""Restore and compare in the browser: ``python -m rcot_lightning.demo`` (``rcot-demo``).

A local web page (Gradio; ``pip install -e ".[demo]"``): drop a photo or pick a sample photo,
choose a model (a bundled entry, a checkpoint under ``demo.checkpoints_dir``, or the latest run
there), optionally degrade the photo synthetically (it then serves as the clean reference), and
see a before/after slider, the residual and its log-spectrum, PSNR/SSIM against the reference,
the time taken, and download the restored image at full resolution. The "A/B compare" tab runs
two models on the same input and shows their score difference.

Safe by default: served on 127.0.0.1 only, no public link unless ``demo.share=true``, models
only from the bundled registry or ``demo.checkpoints_dir`` (the browser names a listed entry,
never a path), uploads over ``demo.max_upload_mb`` or ``demo.max_megapixels`` refused. Every
file lives in one temporary folder: Gradio's cache and each page's uploads and results; a
page's files are deleted when it is closed, and the folder when the demo stops.

The page is :mod:`rcot_lightning.cli.demo_page`, what it does with a request
:mod:`rcot_lightning.cli.demo_inputs`; Gradio is imported only to serve, never by the library.
"""

import logging
import os
import signal
import sys
from pathlib import Path
from types import ModuleType

import hydra
from omegaconf import DictConfig

from rcot_lightning.cli import app
from rcot_lightning.errors import MissingExtraError

log = logging.getLogger(__name__)


def import_gradio(cache: Path | None = None) -> ModuleType:
    """Gradio, offline: no analytics, its cache in ``cache`` (set before the first import).

    Raises:
        MissingExtraError: Gradio is not installed (the message names the extra).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if cache is not None:
        os.environ["GRADIO_TEMP_DIR"] = str(cache)
    try:
        import gradio
    except ImportError as err:
        raise MissingExtraError(
            f'rcot-demo needs Gradio ({err}): pip install -e ".[demo]" in a checkout, or '
            'pip install "rcot-lightning[demo]"'
        ) from None
    return gradio


def serve(cfg: DictConfig) -> None:
    """Build the page from ``cfg`` and serve it until interrupted; then delete every file."""
    from rcot_lightning.cli.demo_page import DemoSettings, Workspace, build_page, offline_theme

    settings = DemoSettings.from_config(cfg)
    node = cfg.demo
    share = bool(node.get("share", False))
    workspace = Workspace()
    # SIGTERM (a service manager, a test) stops the demo like Ctrl+C: the folder is removed.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Each HTTP request of the page would be logged at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    page = None
    try:
        import_gradio(workspace.cache)
        page = build_page(settings, workspace)
        if share:
            log.warning(
                "demo.share=true: Gradio publishes this page at a public *.gradio.live address; "
                "anyone with the link can upload images and run models on this machine"
            )
        page.queue(default_concurrency_limit=1)  # one restoration at a time: they share the device
        _, local_url, share_url = page.launch(
            server_name=str(node.get("server_name", "127.0.0.1")),
            server_port=node.get("server_port"),
            share=share,
            inbrowser=bool(node.get("inbrowser", False)),
            max_file_size=f"{settings.limits.max_mb:g}mb",
            allowed_paths=[str(workspace.root)],
            show_error=True,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            run_history=False,  # would keep every request's inputs and outputs
            footer_links=["gradio", "settings"],
            theme=offline_theme(),
            quiet=True,  # its hints name launch() arguments; ours name the config keys
            prevent_thread_lock=True,
        )
        app.report(f"rcot-demo: serving {local_url} (Ctrl+C stops it)")
        if share_url:
            app.report(f"rcot-demo: public link {share_url}")
        app.report(f"rcot-demo: temporary files in {workspace.root} (deleted when it stops)")
        page.block_thread()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if page is not None:
            page.close()
        workspace.close()


@hydra.main(version_base="1.3", config_path="../conf", config_name="demo")
def _hydra_main(cfg: DictConfig) -> None:
    with app.exit_on_user_error("rcot-demo"):
        serve(cfg)


def main() -> None:
    """Console entry point ``rcot-demo``."""
    from rcot_lightning.cli.map_source import model_alias

    sys.argv = model_alias(sys.argv)
    app.run_cli("rcot-demo", _hydra_main)


if __name__ == "__main__":
    main()
