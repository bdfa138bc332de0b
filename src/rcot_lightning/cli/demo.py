"""Restore and compare in the browser: ``python -m rcot_lightning.demo`` (``rcot-demo``).

A local web page (Gradio; ``pip install -e ".[demo]"``): drop a photo or pick a sample photo,
choose a model (``auto``, the default: the bundled entry for the synthetic degradation's task; a
bundled entry, a checkpoint under ``demo.checkpoints_dir``, or the latest run there), optionally
degrade the photo synthetically (it then serves as the clean reference), and see a before/after
slider, the residual and its log-spectrum, PSNR/SSIM against the reference, the time taken, and
download the restored image at full resolution. The "A/B compare" tab runs two models on the
same input and shows their score difference.

Safe by default: served on 127.0.0.1 only, no public link unless ``demo.share=true``, models
only from the bundled registry or ``demo.checkpoints_dir`` (the browser names a listed entry,
never a path), uploads over ``demo.max_upload_mb`` or ``demo.max_megapixels`` refused. One
user cannot hold the shared queue: a request over ``demo.max_request_megapixels`` of work is
refused, and a restoration stops between tiles after ``demo.max_request_seconds``, when its
page is closed or disconnected, or when the demo stops. Every file lives in one temporary
folder: Gradio's cache and each page's uploads and results; a page's files are deleted when it
is closed, and the folder when the demo stops (Ctrl+C, or SIGTERM: exit status 143).

The page is :mod:`rcot_lightning.cli.demo_page`, what it does with a request
:mod:`rcot_lightning.cli.demo_inputs`; Gradio is imported only to serve, never by the library.
"""

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import hydra
from omegaconf import DictConfig

from rcot_lightning.cli import app
from rcot_lightning.errors import MissingExtraError, RCOTError, Terminated

log = logging.getLogger(__name__)

#: Exit status after SIGTERM (128 + 15, as a shell reports a process that SIGTERM ended).
TERMINATED = 128 + signal.SIGTERM

#: Seconds a stopping demo waits for a restoration in progress to reach its next tile.
STOP_WAIT = 10.0

#: The ports Gradio tries when ``demo.server_port`` is null.
FIRST_PORT, PORTS_TRIED = 7860, 100


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


def server_port(value: Any) -> int | None:
    """``demo.server_port`` checked: a port number, or None for the first free one from 7860.

    Raises:
        RCOTError: anything else, naming the key.

    Example:
        >>> server_port(8080), server_port(None)
        (8080, None)
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    raise RCOTError(
        f"demo.server_port must be a port number from 1 to 65535, or null for the first free "
        f"one from {FIRST_PORT}, got {value!r}"
    )


def port_in_use(port: int | None, server_name: str, err: OSError) -> RCOTError:
    """The one line for a port the demo cannot serve on (Gradio says "Cannot find empty port").

    Example:
        >>> print(port_in_use(7860, "127.0.0.1", OSError("Cannot find empty port")))
        demo.server_port=7860: the port is in use on 127.0.0.1 (Cannot find empty port); pick \
another port, e.g. demo.server_port=7861, or demo.server_port=null for the first free one \
from 7860
    """
    reason = str(err).split(".")[0].strip() or type(err).__name__
    if port is None:
        last = FIRST_PORT + PORTS_TRIED - 1
        return RCOTError(
            f"demo.server_port=null: no free port from {FIRST_PORT} to {last} on {server_name} "
            f"({reason}); pick a free port, e.g. demo.server_port=8080"
        )
    other = port + 1 if port < 65535 else port - 1
    return RCOTError(
        f"demo.server_port={port}: the port is in use on {server_name} ({reason}); pick another "
        f"port, e.g. demo.server_port={other}, or demo.server_port=null for the first free one "
        f"from {FIRST_PORT}"
    )


def serve(cfg: DictConfig) -> None:
    """Build the page from ``cfg`` and serve it until interrupted; then delete every file.

    Ctrl+C stops it; so does SIGTERM (a service manager, ``kill``): the restoration in progress
    stops at its next tile, the temporary folder is deleted, one line says so on stderr and the
    process exits with status 143.

    Raises:
        RCOTError: a bad setting, or a port that is in use (naming ``demo.server_port``).
        SystemExit: 143 after SIGTERM.
    """
    from rcot_lightning.cli.demo_page import (
        DemoActions,
        DemoSettings,
        Workspace,
        build_page,
        offline_theme,
    )

    settings = DemoSettings.from_config(cfg)
    node = cfg.demo
    share = bool(node.get("share", False))
    port = server_port(node.get("server_port"))
    server_name = str(node.get("server_name", "127.0.0.1"))
    workspace = Workspace()
    actions = DemoActions(settings, workspace)
    terminated = False
    busy = 0  # restorations in progress when the demo was told to stop

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal terminated, busy
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
        terminated, busy = True, actions.running()
        actions.stop_all("the demo is stopping (SIGTERM)")
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    # Each HTTP request of the page would be logged at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    page = None
    idle = True
    try:
        import_gradio(workspace.cache)
        page = build_page(actions)
        if share:
            log.warning(
                "demo.share=true: Gradio publishes this page at a public *.gradio.live address; "
                "anyone with the link can upload images and run models on this machine"
            )
        page.queue(default_concurrency_limit=1)  # one restoration at a time: they share the device
        try:
            _, local_url, share_url = page.launch(
                server_name=server_name,
                server_port=port,
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
        except OSError as err:
            if "port" not in str(err).lower():  # Gradio's "Cannot find empty port in range"
                raise
            raise port_in_use(port, server_name, err) from None
        app.report(f"rcot-demo: serving {local_url} (Ctrl+C stops it)")
        if share_url:
            app.report(f"rcot-demo: public link {share_url}")
        app.report(f"rcot-demo: temporary files in {workspace.root} (deleted when it stops)")
        page.block_thread()
    except Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nothing may cut the clean-up short
        # A restoration in progress stops at its next tile: the interpreter must not exit while
        # a worker thread is inside torch ("terminate called without an active exception").
        busy = busy or actions.running()
        actions.stop_all("the demo is stopping")
        if page is not None:
            page.close(verbose=False)  # waits up to 5 s for the pages' open connections
        idle = actions.wait_idle(STOP_WAIT)
        workspace.close()
        signal.signal(signal.SIGTERM, previous)
    if terminated:
        stopped = " (the restoration in progress was stopped)" if busy else ""
        sys.stderr.write(f"rcot-demo: stopped by SIGTERM{stopped}; temporary files deleted\n")
        sys.stderr.flush()
        if not idle:  # still inside one call of the map: leave without finalising torch
            sys.stdout.flush()
            logging.shutdown()
            os._exit(TERMINATED)
        raise SystemExit(TERMINATED)


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
