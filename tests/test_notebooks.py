"""The notebooks execute top to bottom, the numbers they compute make sense, and they are
stored executed (with their outputs, under 1 MB each).

Each notebook writes its results to the JSON file named by ``RCOT_NOTEBOOK_RESULTS`` (it skips
that when the variable is unset, so users never see it). They run in a kernel of this
interpreter (``tests/scripts/execute_notebooks.py``, which also stores them executed).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from tests.scripts.execute_notebooks import NOTEBOOKS, execute  # noqa: E402  (after the skips)

# Subprocesses: the integration tier (docs/development.md).
pytestmark = pytest.mark.integration

#: A stored notebook's size limit: outputs, pictures included, stay small.
MAX_BYTES = 1_000_000


def execute_notebook(name: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``notebooks/<name>`` in a fresh kernel with ``tmp_path`` as its working directory."""
    results = tmp_path / "results.json"
    # Agg: no figure output is needed to check the numbers.
    execute(
        NOTEBOOKS / name, tmp_path, {"RCOT_NOTEBOOK_RESULTS": str(results), "MPLBACKEND": "Agg"}
    )
    return json.loads(results.read_text())


@pytest.mark.parametrize("name", ["quickstart.ipynb", "residual_analysis.ipynb"])
def test_committed_notebooks_are_stored_executed(name: str) -> None:
    """Every code cell ran, in order, without error (python -m tests.scripts.execute_notebooks)."""
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert path.stat().st_size < MAX_BYTES
    counts = [c.execution_count for c in notebook.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert all(o.output_type != "error" for o in cell.outputs), cell.source[:80]


def test_quickstart_trains_validates_and_restores(tmp_path: Path) -> None:
    results = execute_notebook("quickstart.ipynb", tmp_path)
    assert results["iterations"] == 200 and results["global_step"] == 400
    assert results["restored_shape"] == results["image_shape"]
    assert results["image_shape"][-2:] == [300, 451]  # chelsea at full size (not a multiple of 8)
    val = results["val_metrics"]
    assert {"val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input"} <= set(val)
    # 200 iterations of the tiny model with the supervised term: clearly better than the input
    # (about +4 to +5 dB here; the margin leaves room for other CPUs and library versions).
    assert val["val/psnr"] > val["val/psnr_input"] + 1.0
    assert results["psnr_after"] > results["psnr_before"] + 1.0
    assert results["ssim_after"] > results["ssim_before"]
    # Without matplotlib the picture is saved as a PNG in the working directory.
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert has_matplotlib or (tmp_path / "quickstart_restored.png").is_file()


def test_residual_analysis_noise_is_the_flat_spectrum(tmp_path: Path) -> None:
    table = execute_notebook("residual_analysis.ipynb", tmp_path)
    assert {"noise", "rain", "haze", "gaussian_blur", "downscale"} <= set(table)
    noise = table.pop("noise")
    assert noise["norm_used"] == 2
    # White noise: the top 5% of |F r|^2 hold 0.05 (1 + ln 20) ~ 0.20 of the energy and
    # l1/l2 = sqrt(pi)/2 ~ 0.886 (clipping and 8-bit rounding change this a little).
    assert 0.17 < noise["top5_energy"] < 0.25
    assert 0.85 < noise["l1_over_l2"] < 0.9
    # Parseval: with the unitary FFT the l2 Fourier cost is the pixel RMS.
    assert abs(noise["g_l2"] - noise["pixel_rms"]) < 1e-4
    for name, row in table.items():
        assert row["norm_used"] == 1, name
        # Every other residual is sparser in frequency than noise.
        assert row["top5_energy"] > noise["top5_energy"] + 0.05, name
        assert row["l1_over_l2"] < noise["l1_over_l2"] - 0.03, name
