"""Execute the notebooks with this interpreter's kernel; with no argument, store them executed.

``python -m tests.scripts.execute_notebooks`` runs every ``notebooks/*.ipynb`` top to bottom in a
temporary working directory and writes it back with its outputs, so that a reader (and GitHub)
sees what it computes without running it. ``tests/test_notebooks.py`` runs them the same way and
checks their numbers.

The kernel is this interpreter (``sys.executable``) through a kernelspec written into a temporary
folder: the ``python3`` kernelspec found on the Jupyter path may point at another Python (its argv
is a bare ``python``), and installing one into the environment would leave files behind.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "rcot-lightning-notebooks"


def execute(path: Path, workdir: Path, env: dict[str, str] | None = None) -> Any:
    """The notebook at ``path`` executed in a fresh kernel working in ``workdir``."""
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = workdir / "kernels"
    (kernels / KERNEL).mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rcot-lightning",
        "language": "python",
        # One thread: the machine may be shared. IPython's profile goes to the temporary
        # folder, not the user's home. Figures use the kernel's inline backend (stored as PNG).
        "env": {
            "OMP_NUM_THREADS": "1",
            "IPYTHONDIR": str(workdir / "ipython"),
            **(env or {}),
        },
    }
    (kernels / KERNEL / "kernel.json").write_text(json.dumps(spec))
    # Figures of photos as JPEG: PNG copies of them would make a stored notebook megabytes.
    profile = workdir / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text(
        'c.InlineBackend.figure_formats = {"jpeg"}\n'
        'c.InlineBackend.print_figure_kwargs = {"bbox_inches": "tight", '
        '"pil_kwargs": {"quality": 85}}\n'
    )
    manager = KernelManager(
        kernel_name=KERNEL,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
        # The connection file too, so nothing is written under the home directory.
        connection_file=str(workdir / "connection.json"),
    )
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=600,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    # The client shuts down only kernels it started itself; this one it must stop too.
    client.execute(cleanup_kc=True)
    # The stored notebook names the usual kernel, not this temporary one.
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


def main() -> None:
    import nbformat

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        with tempfile.TemporaryDirectory() as tmp:
            notebook = execute(path, Path(tmp))
        nbformat.write(notebook, path)
        print(f"{path.name}: executed, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
