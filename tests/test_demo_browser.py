"""rcot-demo in a real browser: headless Chromium drives the page as a user would.

The demo runs as a subprocess (``python -m rcot_lightning.demo``) on a free loopback port, with
a checkpoint folder holding one tiny training run. Chromium (Debian's ``chromium`` and
``chromium-driver``) is driven through selenium with the system driver, so nothing is
downloaded. The test uploads a noisy image and its clean original, restores it with the bundled
model, downloads the full-resolution result and checks that it is closer to the clean image than
the noisy one was; compares the bundled model with the latest run (A/B); uploads a file that is
not an image and expects a one-line error; and saves screenshots. With
``RCOT_DEMO_SCREENSHOT=<file.png>`` it also writes a small screenshot there (the docs' one).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from rcot_lightning.data.degradations import GaussianNoise
from rcot_lightning.data.samples import load_photo
from rcot_lightning.metrics import psnr
from rcot_lightning.visualize import save_png
from tests.conftest import TINY_CLI, cli_env, run_cli

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Seconds to wait for the page, for a restoration, for a message. Generous: on a loaded 2-core
#: machine the first checkpoint loaded (which imports Lightning) took 90 s.
START, RESULT, MESSAGE = 180, 480, 60
#: The CSS transforms of an image that is not zoomed.
_IDENTITY = frozenset({"none", "matrix(1, 0, 0, 1, 0, 0)"})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_http(url: str, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"rcot-demo exited early:\n{process.communicate()[0]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"rcot-demo did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, float]]:
    measured: dict[str, float] = {}
    yield measured
    sys.stdout.write("\ndemo browser test timings (s): " + repr(measured) + "\n")


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, timings: dict[str, float]
) -> Iterator[dict[str, Any]]:
    """A running demo whose checkpoint folder holds one tiny run: its URL, its files' folder."""
    root = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    trained = run_cli(
        "rcot_lightning.train", *TINY_CLI, f"paths.log_dir={root / 'outputs'}", cwd=root
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    timings["tiny training run"] = time.perf_counter() - start
    runs = root / "outputs" / "train" / "runs"
    port = _free_port()
    start = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rcot_lightning.demo",
            f"demo.server_port={port}",
            f"demo.checkpoints_dir={runs}",
            f"paths.log_dir={root / 'logs'}",
            "device=cpu",
            "demo.max_megapixels=0.1",  # the test's image has 0.05
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
    )
    url = f"http://127.0.0.1:{port}/"
    workspace = None
    try:
        _wait_for_http(url, process, START)
        timings["demo start"] = time.perf_counter() - start
        assert process.stdout is not None
        for line in iter(process.stdout.readline, ""):  # printed once the page is served
            if "temporary files in " in line:
                workspace = Path(line.split("temporary files in ")[1].split(" ")[0])
                break
        assert workspace is not None and workspace.is_dir()
        yield {"url": url, "runs": runs, "workspace": workspace}
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
    # Stopped by SIGTERM: 128 + 15, the one line, and every file went with the demo.
    assert process.returncode == 143, output
    assert "rcot-demo: stopped by SIGTERM; temporary files deleted" in output
    assert workspace is not None and not workspace.exists()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        reason = "no chromium/chromedriver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":  # .ci/run installs them: CI must run this test
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1400,1500",
    ):
        options.add_argument(argument)
    # The system driver: Selenium Manager (which downloads drivers) is never asked.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _upload(driver: Any, elem_id: str, path: Path) -> None:
    """Upload ``path`` into the file field ``elem_id``, replacing a file it holds."""
    for clear in driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} button[aria-label='Clear']"):
        clear.click()
    field = WebDriverWait(driver, MESSAGE).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} input[type=file]"))
    )
    field.send_keys(str(path))
    shown = f"#{elem_id} td.filename[aria-label='{path.name}']"
    WebDriverWait(driver, MESSAGE).until(ec.presence_of_element_located((By.CSS_SELECTOR, shown)))


def _download(driver: Any, elem_id: str) -> torch.Tensor:
    """The image the page offers for download in ``elem_id``, fetched as the browser would."""
    from PIL import Image

    from rcot_lightning.data.images import to_tensor

    link = WebDriverWait(driver, RESULT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} a[href]"))
    )
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as answer:
        import numpy as np

        return to_tensor(np.asarray(Image.open(io.BytesIO(answer.read())).convert("RGB")))


#: Five mouse-wheel steps (zoom in) over the element given as the script's argument.
_WHEEL = """
const target = arguments[0], box = target.getBoundingClientRect();
for (let step = 0; step < 5; step++) {
  target.dispatchEvent(new WheelEvent("wheel", {deltaY: -100, bubbles: true, cancelable: true,
    clientX: box.left + box.width / 3, clientY: box.top + box.height / 3}));
}
"""


def _screenshot(driver: Any, path: Path) -> Path:
    driver.save_screenshot(str(path))
    return path


def test_restore_download_compare_and_refuse_a_non_image(
    browser: Any, demo: dict[str, Any], tmp_path: Path, timings: dict[str, float]
) -> None:
    clean = load_photo("coffee")[:, :192, 160:416].contiguous()
    noisy = GaussianNoise(sigma=25)(clean[None], torch.Generator().manual_seed(1))[0]
    noisy_png = Path(save_png(noisy, tmp_path / "noisy.png"))
    clean_png = Path(save_png(clean, tmp_path / "clean.png"))

    start = time.perf_counter()
    browser.get(demo["url"])
    WebDriverWait(browser, START).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]"))
    )
    timings["page load"] = time.perf_counter() - start

    # One model: the bundled denoiser (preselected), against the clean reference.
    _upload(browser, "photo", noisy_png)
    _upload(browser, "reference", clean_png)
    start = time.perf_counter()
    browser.find_element(By.ID, "restore-button").click()
    restored = _download(browser, "download")
    timings["restore (page round trip)"] = time.perf_counter() - start
    assert restored.shape == clean.shape  # full resolution
    noisy_psnr = float(psnr(noisy[None], clean[None]))
    restored_psnr = float(psnr(restored[None], clean[None]))
    assert restored_psnr > noisy_psnr + 3, (noisy_psnr, restored_psnr)
    report = browser.find_element(By.ID, "report").text
    assert "PSNR" in report and "denoise-blind" in report, report
    shot = _screenshot(browser, tmp_path / "demo_restore.png")
    if os.environ.get("RCOT_DEMO_SCREENSHOT"):
        _small_copy(shot, Path(os.environ["RCOT_DEMO_SCREENSHOT"]))

    # A/B: the bundled model (A) against the latest run of the checkpoint folder (B).
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'A/B compare')]").click()
    model_b = browser.find_element(By.CSS_SELECTOR, "#model-b input").get_attribute("value")
    assert model_b == f"latest run in {demo['runs']}", model_b
    start = time.perf_counter()
    browser.find_element(By.ID, "compare-button").click()
    result_a, result_b = _download(browser, "download-a"), _download(browser, "download-b")
    timings["A/B compare (page round trip)"] = time.perf_counter() - start
    assert torch.allclose(result_a, restored, atol=1 / 255)  # the same model, the same input
    assert result_b.shape == clean.shape
    ab_report = browser.find_element(By.ID, "ab-report").text
    assert "B − A" in ab_report, ab_report
    # Zoom on the A | B view (mouse wheel): both halves get the same transform.
    halves = browser.find_elements(By.CSS_SELECTOR, "#ab-slider img")
    assert len(halves) == 2
    browser.execute_script(_WHEEL, halves[0])

    def _zoom_settled(_: Any) -> set[str] | None:
        # The slider applies the zoom on its next frames: read it once both halves agree.
        found = {half.value_of_css_property("transform") for half in halves}
        return found if len(found) == 1 and found.isdisjoint(_IDENTITY) else None

    try:
        WebDriverWait(browser, 10, poll_frequency=0.1).until(_zoom_settled)
    except TimeoutException as error:
        found = {half.value_of_css_property("transform") for half in halves}
        raise AssertionError(f"A | B halves not zoomed alike: {found}") from error
    _screenshot(browser, tmp_path / "demo_ab.png")

    # Not an image: one line on the page, no traceback.
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Restore')]").click()
    _upload(browser, "photo", fake)
    browser.find_element(By.ID, "restore-button").click()
    WebDriverWait(browser, MESSAGE).until(
        ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "is not an image the demo can read")
    )
    assert "Traceback" not in browser.find_element(By.TAG_NAME, "body").text
    _screenshot(browser, tmp_path / "demo_error.png")

    # Over the megapixel limit: refused from the file's header, with the key to raise it.
    large = Path(save_png(torch.rand(3, 300, 400), tmp_path / "large.png"))
    _upload(browser, "photo", large)
    browser.find_element(By.ID, "restore-button").click()
    WebDriverWait(browser, MESSAGE).until(
        ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "(demo.max_megapixels)")
    )

    # Closing the page deletes its uploads and results (Gradio tells the server it left).
    browser.get("about:blank")
    workspace = demo["workspace"]
    deadline = time.monotonic() + MESSAGE
    while time.monotonic() < deadline and _kept(workspace):
        time.sleep(0.5)
    assert not _kept(workspace), _kept(workspace)
    sys.stdout.write(f"\nscreenshots: {sorted(str(p) for p in tmp_path.glob('demo_*.png'))}\n")


def _kept(workspace: Path) -> list[Path]:
    """The test's uploads and the page's results still in the demo's folder."""
    uploads = [p for p in workspace.rglob("*") if p.name in ("noisy.png", "clean.png", "large.png")]
    return uploads + [p for p in workspace.rglob("sessions/*/*") if p.is_file()]


def _small_copy(screenshot: Path, target: Path, width: int = 900) -> None:
    """A copy for the docs: scaled to ``width`` and reduced to 256 colours (well under 200 KB)."""
    from PIL import Image

    with Image.open(screenshot) as image:
        small = image.convert("RGB")
        small = small.resize((width, round(small.height * width / small.width)), Image.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        small.quantize(colors=256).save(target, optimize=True)
