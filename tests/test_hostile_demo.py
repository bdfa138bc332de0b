"""``rcot-demo`` under abuse: one user cannot hold the queue, SIGTERM exits cleanly, a hostile
checkpoint folder or a busy port ends in one line, a crafted checkpoint runs nothing.

The page's work is driven through :class:`~rcot_lightning.cli.demo_page.DemoActions` (what its
buttons call) and :func:`~rcot_lightning.cli.demo_page.page_errors` (how an error reaches the
page); the server itself runs as a subprocess on a free loopback port where the process matters
(SIGTERM, a client that leaves).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import nn

import rcot_lightning.cli.demo_inputs as demo_inputs
from rcot_lightning.cli import app
from rcot_lightning.cli.demo_inputs import (
    AUTO,
    RequestLimits,
    RequestStopped,
    StopCheck,
    list_models,
)
from rcot_lightning.cli.demo_page import DemoActions, DemoSettings, Workspace
from rcot_lightning.errors import RCOTError
from rcot_lightning.inference import InferenceSettings
from tests.conftest import cli_env
from tests.hostile import (
    config_attacks,
    one_line_exit,
    pickle_attack,
    save_checkpoint,
    tiny_config,
)

#: The page's inputs besides the photo and the model: no sample, no reference, no degradation,
#: its sliders, tile 64 and float32.
SAMPLE_INPUTS = ("none", 25, 2, 20, 64, "32")


class SlowMap(nn.Module):
    """The identity, ``delay`` seconds a call; counts its calls (tiles)."""

    size_multiple = 8

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay, self.calls = delay, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.delay)
        return x


@pytest.fixture
def demo(
    compose_config: Callable[..., DictConfig],
) -> Iterator[Callable[..., DemoActions]]:
    """``demo(*overrides)``: the page's actions on the demo config (CPU, tiles of 64)."""
    workspaces: list[Workspace] = []

    def make(*overrides: str) -> DemoActions:
        cfg = compose_config(
            "demo", "device=cpu", "tile=64", "tile_overlap=16", "demo.checkpoints_dir=null",
            *overrides,
        )  # fmt: skip
        workspaces.append(Workspace())
        return DemoActions(DemoSettings.from_config(cfg), workspaces[-1])

    yield make
    for workspace in workspaces:
        workspace.close()


def _slow(actions: DemoActions, monkeypatch: pytest.MonkeyPatch, delay: float) -> SlowMap:
    """Every model of ``actions`` becomes a :class:`SlowMap` (nothing is loaded)."""
    net = SlowMap(delay)
    monkeypatch.setattr(actions.maps, "get", lambda choice: (net, "a slow test map"))
    return net


def _flat_png(path: Path, width: int, height: int) -> Path:
    """A flat image: a few hundred kilobytes of PNG for tens of megapixels."""
    Image.new("RGB", (width, height), (90, 120, 200)).save(path)
    return path


# ------------------------------------------------------------ 1. work bounded per request
def test_a_flat_6000x6000_png_is_refused_before_it_is_decoded(
    demo: Callable[..., DemoActions], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a 105 KB PNG of 36 megapixels held the queue for 12 minutes."""
    actions = demo()
    photo = _flat_png(tmp_path / "flat.png", 6000, 6000)
    assert photo.stat().st_size < 1_000_000  # under every upload limit in bytes
    import rcot_lightning.data.images as images

    def no_decoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the photo was decoded")

    monkeypatch.setattr(images, "read_image", no_decoding)
    start = time.monotonic()
    with pytest.raises(RCOTError) as err:
        actions.restore(photo, None, None, *SAMPLE_INPUTS, "bundled: denoise-blind", session="s")
    assert time.monotonic() - start < 2
    assert str(err.value) == (
        "photo flat.png is 6000x6000 (36 megapixels): restoring it with 1 model is 36 "
        "megapixels of work, over the demo's limit of 16 per request "
        "(demo.max_request_megapixels); downscale it, or start the demo with a higher limit"
    )


def test_ab_compare_and_the_self_ensemble_count_as_more_work(
    demo: Callable[..., DemoActions], tmp_path: Path
) -> None:
    photo = _flat_png(tmp_path / "photo.png", 3000, 3000)  # 9 megapixels: one model is fine
    with pytest.raises(RCOTError, match=r"with 2 models is 18 megapixels of work, over"):
        demo().compare(
            photo, None, None, *SAMPLE_INPUTS, "bundled: denoise-blind",
            "bundled: denoise-blind-fast", session="s",
        )  # fmt: skip
    with pytest.raises(RCOTError, match=r"with 1 model and ensemble=2 is 18 megapixels of work"):
        demo("ensemble=2").restore(
            photo, None, None, *SAMPLE_INPUTS, "bundled: denoise-blind", session="s"
        )


def test_whole_images_and_tiles_are_bounded_since_a_run_stops_only_between_tiles(
    demo: Callable[..., DemoActions], tmp_path: Path
) -> None:
    actions = demo()
    photo = _flat_png(tmp_path / "photo.png", 2000, 1500)
    inputs = (photo, None, None, "none", 25, 2, 20)
    with pytest.raises(RCOTError) as err:
        actions.restore(*inputs, 0, "32", "bundled: denoise-blind", session="s")
    assert str(err.value) == (
        "a 2000x1500 image is too large to restore whole: the demo restores at most 1024 "
        "pixels a side at once (demo.max_tile); set a tile side (e.g. 512) in Options"
    )
    with pytest.raises(RCOTError) as err:
        actions.restore(*inputs, 2048, "32", "bundled: denoise-blind", session="s")
    assert str(err.value) == (
        "tile 2048 is over the demo's largest tile, 1024 (demo.max_tile); choose a tile side "
        "up to 1024 in Options"
    )


def test_a_restoration_stops_between_tiles_when_its_time_is_up(
    demo: Callable[..., DemoActions], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = demo("demo.max_request_seconds=0.3")
    net = _slow(actions, monkeypatch, delay=0.05)
    start = time.monotonic()
    with pytest.raises(RequestStopped) as err:
        actions.restore(None, "camera", None, *SAMPLE_INPUTS, "bundled: denoise-blind", session="s")
    assert time.monotonic() - start < 5
    assert 3 <= net.calls < 20  # of the 100 tiles of a 512x512 photo
    line = str(err.value)
    assert line.startswith("restoration stopped after 0.")
    assert line.endswith(
        "s, over the demo's limit of 0.3 s per request (demo.max_request_seconds); restore a "
        "smaller photo (or crop it), or start the demo with a higher limit"
    )
    assert actions.running() == 0


def test_the_clock_runs_on_across_the_models_of_one_request() -> None:
    now = [100.0]
    check = StopCheck(60, clock=lambda: now[0])
    check()  # the first tile starts the clock
    now[0] += 59
    check()  # model B, still within the request's minute
    now[0] += 2
    with pytest.raises(RequestStopped, match=r"^restoration stopped after 61\.0 s, over the"):
        check()
    with pytest.raises(RCOTError, match=r"^demo\.max_request_seconds must be a positive number"):
        RequestLimits.from_config({"max_request_megapixels": 1, "max_request_seconds": 0})
    with pytest.raises(RCOTError, match=r"^demo\.max_tile must be a positive multiple of 8"):
        RequestLimits.from_config(
            {"max_request_megapixels": 1, "max_request_seconds": 1, "max_tile": 100}
        )


def test_closing_the_page_stops_its_restoration_at_the_next_tile(
    demo: Callable[..., DemoActions], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = demo()
    net = _slow(actions, monkeypatch, delay=0.05)  # 100 tiles: 5 s if not stopped
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            actions.restore(
                None, "camera", None, *SAMPLE_INPUTS, "bundled: denoise-blind", session="s1"
            )
        except RCOTError as err:
            outcome["error"] = str(err)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while net.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert actions.running() == 1
    actions.cancel("s2", "another page was closed")  # not this one
    closed_at = time.monotonic()
    actions.closed("s1")  # what the page's unload event calls
    worker.join(10)
    assert not worker.is_alive() and time.monotonic() - closed_at < 2
    assert outcome == {"error": "restoration stopped: the page was closed"}
    assert net.calls < 20 and actions.running() == 0


def test_a_page_that_disconnects_stops_its_restoration(
    demo: Callable[..., DemoActions], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = demo()
    net = _slow(actions, monkeypatch, delay=0)
    with pytest.raises(RequestStopped, match=r"^restoration stopped: the page disconnected$"):
        actions.restore(
            None, "camera", None, *SAMPLE_INPUTS, "bundled: denoise-blind", session="s",
            alive=lambda: net.calls < 3,
        )  # fmt: skip
    assert net.calls == 3


def test_a_stopping_demo_stops_every_restoration_and_refuses_new_ones(
    demo: Callable[..., DemoActions], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = demo()
    _slow(actions, monkeypatch, delay=0)
    actions.stop_all("the demo is stopping")
    with pytest.raises(RequestStopped, match=r"^restoration refused: the demo is stopping$"):
        actions.restore(None, "camera", None, *SAMPLE_INPUTS, "bundled: denoise-blind", session="s")
    assert actions.wait_idle(0.1)


def test_the_check_is_asked_before_every_tile() -> None:
    calls: list[int] = []
    image = torch.rand(1, 3, 100, 130)
    settings = InferenceSettings(device="cpu", tile=64, tile_overlap=16)
    restored = settings.restore(SlowMap(0), image, before_each_call=lambda: calls.append(1))
    assert torch.allclose(restored, image, atol=1e-6) and len(calls) == 6  # 2 x 3 tiles


def test_both_buttons_share_one_queue(demo: Callable[..., DemoActions]) -> None:
    pytest.importorskip("gradio", reason="the demo extra is not installed")
    from rcot_lightning.cli.demo import import_gradio
    from rcot_lightning.cli.demo_page import build_page

    actions = demo()
    import_gradio(actions.workspace.cache)
    page = build_page(actions)
    ids = {fn.name: fn.concurrency_id for fn in page.fns.values()}
    assert ids["restore"] == ids["compare"] == "restoration"


# ------------------------------------------------------------------- 2. SIGTERM, 4. port
class _SigtermPage:
    """Serves nothing: ``block_thread`` is where SIGTERM arrives."""

    def queue(self, **kwargs: Any) -> None:
        pass

    def launch(self, **kwargs: Any) -> tuple[None, str, None]:
        return None, "http://127.0.0.1:1/", None

    def block_thread(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the demo")

    def close(self, verbose: bool = True) -> None:
        pass


def _no_gradio_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)  # whatever serve() sets is undone after the test


def test_sigterm_ends_the_demo_with_status_143_and_one_line(
    compose_config: Callable[..., DictConfig],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("gradio", reason="the demo extra is not installed")
    import rcot_lightning.cli.demo_page as demo_page
    from rcot_lightning.cli.demo import serve

    _no_gradio_settings(monkeypatch)
    monkeypatch.setattr(demo_page, "build_page", lambda actions: _SigtermPage())
    before = signal.getsignal(signal.SIGTERM)
    cfg = compose_config("demo", "device=cpu", "demo.checkpoints_dir=null")
    with pytest.raises(SystemExit) as info:
        serve(cfg)
    assert info.value.code == 143
    captured = capsys.readouterr()
    assert captured.err == "rcot-demo: stopped by SIGTERM; temporary files deleted\n"
    folder = captured.out.split("temporary files in ")[1].split(" ")[0]
    assert not Path(folder).exists()
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_busy_port_ends_in_one_line_naming_the_key(
    compose_config: Callable[..., DictConfig],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("gradio", reason="the demo extra is not installed")
    from rcot_lightning.cli.demo import serve

    _no_gradio_settings(monkeypatch)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = compose_config("demo", "device=cpu", f"demo.server_port={port}")
        code, line = one_line_exit("rcot-demo", lambda: serve(cfg), capsys)
    assert code == 2
    assert line == (
        f"rcot-demo: error: demo.server_port={port}: the port is in use on 127.0.0.1 (Cannot "
        f"find empty port in range: {port}-{port}); pick another port, e.g. "
        f"demo.server_port={port + 1}, or demo.server_port=null for the first free one from 7860"
    )
    cfg = compose_config("demo", "device=cpu", "demo.server_port=http")
    code, line = one_line_exit("rcot-demo", lambda: serve(cfg), capsys)
    assert code == 2 and line == (
        "rcot-demo: error: demo.server_port must be a port number from 1 to 65535, or null for "
        "the first free one from 7860, got 'http'"
    )


# ------------------------------------------------------------- 3. the checkpoint folder scan
def _ckpt(path: Path, mtime: float = 1_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_files_and_folders_that_vanish_or_cannot_be_read_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    kept = _ckpt(runs / "a" / "checkpoints" / "last.ckpt", 2_000)
    vanishing = _ckpt(runs / "b" / "gone.ckpt")
    _ckpt(runs / "locked" / "hidden.ckpt")
    (runs / "dangling.ckpt").symlink_to(runs / "nowhere.ckpt")
    (runs / "loop.ckpt").symlink_to(runs / "loop.ckpt")
    real_stat, real_scandir = Path.stat, os.scandir

    def stat(self: Path, **kwargs: Any) -> os.stat_result:
        if self == vanishing:  # deleted between the folder's listing and its stat
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_stat(self, **kwargs)

    def scandir(path: Any = ".") -> Any:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(Path, "stat", stat)
    monkeypatch.setattr(os, "scandir", scandir)
    labels = [label for label in list_models(runs) if not label.startswith("bundled: ")]
    assert labels == [f"latest run in {runs}", "checkpoint: a/checkpoints/last.ckpt"]
    assert list_models(runs)[f"latest run in {runs}"].ckpt_path == kept

    import rcot_lightning.cli.run_folder as run_folder

    def vanished(parent: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory", "runs/x/checkpoints/last.ckpt")

    monkeypatch.setattr(run_folder, "latest_run", vanished)
    assert [label for label in list_models(runs) if label.startswith("latest")] == []


def test_a_folder_that_changes_during_the_scan_is_listed_without_error(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _ckpt(runs / "steady" / "checkpoints" / "last.ckpt")
    stop = threading.Event()

    def churn() -> None:
        index = 0
        while not stop.is_set():
            folder = runs / f"run{index % 5}" / "checkpoints"
            _ckpt(folder / "last.ckpt")
            for path in folder.parent.rglob("*"):
                if path.is_file():
                    path.unlink(missing_ok=True)
            index += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(30):
            assert "checkpoint: steady/checkpoints/last.ckpt" in list_models(runs)
    finally:
        stop.set()
        worker.join()


def test_the_scan_of_a_huge_folder_is_bounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``demo.checkpoints_dir=/``: /proc changes under the scan, and the whole disk is big."""
    monkeypatch.setattr(demo_inputs, "SCAN_ENTRIES", 3_000)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="rcot_lightning.cli.demo_inputs"):
        for root in ("/", "/proc"):
            list_models(root)
    assert time.monotonic() - start < 10
    assert "listed the checkpoints among the first" in caplog.text


def test_the_page_lists_the_root_folder(demo: Callable[..., DemoActions]) -> None:
    labels, chosen, _ = demo("demo.checkpoints_dir=/").choices()
    assert chosen == AUTO and chosen in labels


# ----------------------------------------------------------------- 5. crafted checkpoints
def _page_line(handler: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The one line the page shows for ``handler``'s error."""
    gr = pytest.importorskip("gradio", reason="the demo extra is not installed")
    from rcot_lightning.cli.demo_page import page_errors

    with pytest.raises(gr.Error) as err:
        page_errors(handler)(*args, **kwargs)
    message = str(err.value.message)
    assert len(message.splitlines()) == 1, message
    return message


def _cli_line(ckpt: Path) -> str:
    """What the command line says about ``ckpt`` (after ``rcot-restore: error: ``)."""
    from rcot_lightning.cli.map_source import choose_map

    with pytest.raises(RCOTError) as err:
        choose_map(ckpt, None)
    message = app.user_error_message(err.value)
    assert message is not None
    return message


def test_a_crafted_checkpoint_chosen_on_the_page_gets_the_command_lines_line(
    demo: Callable[..., DemoActions], tmp_path: Path, marker: Path
) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    attacks = [
        *config_attacks(folder, marker).values(),
        pickle_attack(folder / "bomb.ckpt", marker),
    ]
    unlink = {"_target_": "pathlib.Path.unlink", "_args_": [str(marker)]}  # the case
    attacks.append(save_checkpoint(folder / "unlink.ckpt", unlink))
    home = tiny_config()
    home["transport_map"] = {**home["transport_map"], "dim": "${oc.env:HOME}"}
    attacks.append(save_checkpoint(folder / "home.ckpt", home))
    actions = demo(f"demo.checkpoints_dir={folder}")
    for ckpt in attacks:
        label = f"checkpoint: {ckpt.name}"
        assert label in actions.choices()[0]
        line = _page_line(actions.restore, None, "camera", None, *SAMPLE_INPUTS, label, session="s")
        assert line == _cli_line(ckpt), ckpt.name
        assert line.startswith(f"ckpt_path: {ckpt}"), line
    assert actions.maps._maps == {}  # nothing was built, nothing kept
    # marker: the fixture checks the victim file is still there, unchanged


def test_a_crafted_latest_run_preselected_as_b_runs_nothing(
    demo: Callable[..., DemoActions], tmp_path: Path, marker: Path
) -> None:
    runs = tmp_path / "runs"
    last = runs / "evil" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    unlink = {"_target_": "pathlib.Path.unlink", "_args_": [str(marker)]}
    save_checkpoint(last, unlink)
    actions = demo(f"demo.checkpoints_dir={runs}")
    _, a, b = actions.choices()  # what the page preselects when it loads
    assert (a, b) == (AUTO, f"latest run in {runs}")
    pytest.importorskip("gradio", reason="the demo extra is not installed")
    from rcot_lightning.cli.demo import import_gradio
    from rcot_lightning.cli.demo_page import build_page

    import_gradio(actions.workspace.cache)
    build_page(actions)  # the page with B preselected: nothing is loaded
    assert marker.read_text() == "untouched"
    line = _page_line(actions.compare, None, "camera", None, *SAMPLE_INPUTS, a, b, session="s")
    assert line == _cli_line(last)
    assert len(actions.maps._maps) == 1  # A, the bundled model auto picked, only


# ------------------------------------------------------------- the server, as a process
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server:
    """``python -m rcot_lightning.demo`` on a free loopback port, driven over Gradio's queue
    protocol (what a page, or a script, sends)."""

    def __init__(self, cwd: Path, *overrides: str) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rcot_lightning.demo", "device=cpu",
             f"demo.server_port={self.url.rsplit(':', 1)[1]}", "demo.checkpoints_dir=null",
             *overrides],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cli_env(OMP_NUM_THREADS="2"),
        )  # fmt: skip
        import httpx

        self.http = httpx
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"rcot-demo exited early: {self.process.communicate()}")
            try:
                self.config = httpx.get(f"{self.url}/config", timeout=5).json()
                break
            except (httpx.HTTPError, ValueError):
                if time.monotonic() > deadline:
                    raise AssertionError("rcot-demo did not answer") from None
                time.sleep(0.3)

    def join(self, session: str, api_name: str, data: list[Any]) -> None:
        """Queue a request of page ``session``."""
        fn = next(d["id"] for d in self.config["dependencies"] if d.get("api_name") == api_name)
        body = {"data": data, "fn_index": fn, "session_hash": session, "event_data": None,
                "trigger_id": None}  # fmt: skip
        self.http.post(f"{self.url}/gradio_api/queue/join", json=body).raise_for_status()

    def wait_for(self, session: str, messages: set[str]) -> dict[str, Any]:
        """Listen as page ``session`` until one of ``messages``; then leave (disconnect)."""
        with self.http.stream(
            "GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": session},
            timeout=120,
        ) as stream:  # fmt: skip
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") in messages:
                        return dict(message)
        raise AssertionError(f"the stream of {session} ended before {messages}")

    def stop(self, session: str | None = None, after: float = 0.0) -> tuple[int, str, str]:
        """SIGTERM (``after`` seconds into the restoration of page ``session``, while the page
        listens); the exit status, stdout and stderr."""
        import httpx

        if session is not None:
            with httpx.stream(
                "GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": session},
                timeout=120,
            ) as stream:  # fmt: skip
                for line in stream.iter_lines():
                    if '"process_starts"' in line:
                        time.sleep(after)
                        self.process.send_signal(signal.SIGTERM)
                        break
        else:
            self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err

    def kill(self) -> None:
        """End the server if a failed test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., _Server]]:
    """``server(*overrides)``: a demo server in ``tmp_path``, killed after the test if alive."""
    started: list[_Server] = []

    def start(*overrides: str) -> _Server:
        started.append(_Server(tmp_path, *overrides))
        return started[-1]

    yield start
    for each in started:
        each.kill()


#: A long restoration of a sample photo: about 4000 tiles of 24 (minutes on a CPU).
LONG = [None, "astronaut", None, "none", 25, 2, 20, 24, "32", "bundled: denoise-blind"]
#: A short one: a small photo, whole.
NEXT = [None, "coins", None, "none", 25, 2, 20, 0, "32", "bundled: denoise-blind-fast"]


@pytest.mark.integration
def test_sigterm_during_a_restoration_exits_143_in_one_line(
    server: Callable[..., _Server],
) -> None:
    """Before: ``terminate called without an active exception``, status 134 (about 15 s: the
    server starts in a subprocess)."""
    demo = server("tile_overlap=16")
    demo.join("page1", "restore", LONG)
    code, out, err = demo.stop("page1", after=3)  # the model is loaded, tiles are running
    assert code == 143, err
    assert err == (
        "rcot-demo: stopped by SIGTERM (the restoration in progress was stopped); temporary "
        "files deleted\n"
    )
    folder = out.split("temporary files in ")[1].split(" ")[0]
    assert not Path(folder).exists()


@pytest.mark.slow
@pytest.mark.integration
def test_a_client_that_leaves_frees_the_queue(server: Callable[..., _Server]) -> None:
    demo = server("tile_overlap=16", "demo.max_request_seconds=600")
    demo.join("leaver", "restore", LONG)
    demo.wait_for("leaver", {"process_starts"})  # then its connection closes
    left = time.monotonic()
    demo.join("next", "restore", NEXT)
    done = demo.wait_for("next", {"process_completed"})
    assert done["success"], done
    waited = time.monotonic() - left
    code, out, err = demo.stop()
    assert waited < 30, waited  # the leaver's restoration alone takes minutes
    assert "restoration stopped: the page disconnected" in out + err
    assert code == 143
