"""The README's commands, executed in the order it gives them, on small generated data.

``tests/test_docs.py`` composes every documented command with Hydra; here each command of the
README runs as a user types it (``python -m rcot_lightning.<command> ...``, a new process), in
one scratch folder holding small generated images, in the README's order: the default job, the
two restores with the bundled model, training on paired folders, then eval, restore and export
of that run with ``ckpt_path=last``. A command line stays what the README says; settings that
keep it tiny are appended (:data:`SHRINK`). After each command the test checks what the README
says it does, and that it left one run folder holding a non-empty log.

A README block that this test does not run is listed, with the reason, either by the README
itself (``<!-- not-run: reason -->`` before the block) or in :data:`NOT_RUN_HERE`; the test
reports how many blocks ran and how many are marked.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_CLI, cli_env
from tests.test_docs import ROOT, Block, blocks, shell_lines

pytestmark = pytest.mark.integration

README = ROOT / "README.md"

#: README blocks that run elsewhere, by language: the reason (the one list of this test).
NOT_RUN_HERE = {
    "python": "the Python API example trains for a minute; tests/test_docs.py runs it "
    "(test_python_block_runs) in a folder of its own",
}

#: Appended to each command of a kind: what keeps it to seconds on a 2-core CPU.
SHRINK: dict[str, tuple[str, ...]] = {
    "train": TINY_CLI,  # the tiny model, 32 px crops, 2 iterations, no test stage
    "eval": (),
    "restore": (),
    "export": (),
}


def _image(path: Path, seed: int, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A blocky colour picture (something a map can restore), saved to ``path``."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3))
    image = np.kron(cells, np.ones((8, 8, 1))).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return image


def _scratch(folder: Path) -> None:
    """The files the README's commands name: a photo, a folder of photos, rain pairs."""
    noise = np.random.default_rng(9)
    _image(folder / "photo.jpg", 0, (48, 64))
    _image(folder / "my_photos" / "beach.png", 1, (40, 56))
    _image(folder / "my_photos" / "street.jpg", 2, (48, 48))
    for split, count in (("train", 3), ("test", 2)):
        for i in range(count):
            clean = _image(folder / "rain" / split / "target" / f"{i}.png", 10 + i)
            streaks = (noise.random(clean.shape[:2]) < 0.05)[..., None] * 120
            rainy = np.clip(clean.astype(int) + streaks, 0, 255).astype(np.uint8)
            (folder / "rain" / split / "input").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rainy).save(folder / "rain" / split / "input" / f"{i}.png")


def _runs(folder: Path, command: str) -> set[Path]:
    runs = folder / "outputs" / command / "runs"
    return set(runs.iterdir()) if runs.is_dir() else set()


def _run(line: str, block: Block, folder: Path) -> tuple[str, str, Path]:
    """Run one README command line in ``folder``; ``(command, stdout, its run folder)``."""
    words = shlex.split(line, comments=True)
    assert words[:2] == ["python", "-m"] and words[2].startswith("rcot_lightning."), (
        f"{block.where}: `{line}` is not a `python -m rcot_lightning.<command>` line; add it to "
        "NOT_RUN_HERE with the reason"
    )
    command = words[2].split(".", 1)[1]
    before = _runs(folder, command)
    proc = subprocess.run(
        [sys.executable, *words[1:], *SHRINK[command]],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(),
    )
    assert proc.returncode == 0, (
        f"{block.where}: `{line}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    )
    new = _runs(folder, command) - before
    assert len(new) == 1, f"{block.where}: `{line}` left {len(new)} run folders: {sorted(new)}"
    (run,) = new
    log = run / f"{command}.log"
    assert log.is_file() and log.stat().st_size > 0, f"{block.where}: `{line}`: {log} is empty"
    return command, proc.stdout, run


def _check(command: str, line: str, out: str, run: Path, folder: Path) -> None:
    """What the README says each command does."""
    first = out.lstrip("\n").splitlines()[0]
    if command == "train":
        assert first.startswith("Recipe: "), f"the recipe block is not printed first: {first!r}"
        assert "RCOT training summary" in out and (run / "checkpoints" / "last.ckpt").is_file()
    elif command == "eval":
        trained = max(_runs(folder, "train"), key=lambda p: p.name)
        assert first == (
            f"ckpt_path=last: outputs/train/runs/{trained.name}/checkpoints/last.ckpt (the latest "
            f"training run {trained.name}, task derain)"
        )
        assert (run / "metrics.csv").is_file() and "mean" in out
        assert len(list((run / "restored").glob("*.png"))) == 2
    elif command == "restore":
        output = folder / next(w.split("=", 1)[1] for w in shlex.split(line) if "output=" in w)
        source = next(w.split("=", 1)[1] for w in shlex.split(line) if w.startswith("input="))
        inputs = [Path(source)] if Path(source).suffix else sorted((folder / source).iterdir())
        for path in inputs:
            assert (output / f"{path.stem}.png").is_file(), (line, path)
        if "ckpt_path=last" in line:
            assert first.startswith("ckpt_path=last: ") and first.endswith("task derain)")
        else:
            named = [w.split("=", 1)[1] for w in shlex.split(line) if w.startswith("model=")]
            model = named[0] if named else "denoise-blind"
            assert first.startswith(f"model: bundled model {model}"), first
            if model == "allinone-blind":  # it names what it sees in each image (issue 31)
                assert any(
                    ln.startswith(f"{Path(source).name}: looks like ") for ln in out.splitlines()
                ), out
    elif command == "export":
        assert (folder / "map.pt").is_file()


def test_every_readme_command_runs_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _scratch(tmp_path)
    ran: list[str] = []  # command lines
    blocks_run = 0
    marked: list[str] = []  # blocks, with the reason
    try:
        for block in blocks(README):
            if block.reason is not None:
                marked.append(f"{block.where} ({block.reason})")
                continue
            if block.lang in NOT_RUN_HERE:
                marked.append(f"{block.where} ({NOT_RUN_HERE[block.lang]})")
                continue
            assert block.lang == "bash", f"{block.where}: a {block.lang!r} block; run or mark it"
            blocks_run += 1
            for line in shell_lines(block.text):
                command, out, run = _run(line, block, tmp_path)
                _check(command, line, out, run, tmp_path)
                ran.append(line)
    finally:
        summary = (
            f"README: {blocks_run} blocks run ({len(ran)} commands, in order), {len(marked)} "
            "blocks marked not run here: " + "; ".join(marked)
        )
        with capsys.disabled():  # shown in every run of the test, passed or not
            print(f"\n{summary}")
    # The ones the README gives: the default job, three restores (noise, anything else, a
    # folder), training on folders, then eval, restore and export of that run.
    assert [shlex.split(line)[2] for line in ran] == [
        "rcot_lightning.train",
        "rcot_lightning.restore",
        "rcot_lightning.restore",
        "rcot_lightning.restore",
        "rcot_lightning.train",
        "rcot_lightning.eval",
        "rcot_lightning.restore",
        "rcot_lightning.export",
    ], summary
