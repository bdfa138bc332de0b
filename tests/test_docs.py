"""Every fenced block of ``README.md`` and ``docs/**/*.md`` is run, composed or marked.

The convention (also in ``docs/development.md``):

* ``python`` blocks run as written, each in a fresh temporary working directory;
* in ``bash`` blocks, every line that calls ``rcot_lightning.<command>`` (``python -m``,
  ``rcot-<command>``, or inside a ``torchrun`` / ``srun`` line) is composed with Hydra against
  the real configs, without training, and a training command also passes the recipe checks;
  ``python benchmarks/<script>.py`` lines are parsed by that script's argument parser; any other
  line in an unmarked block fails;
* a block is exempt only when the line right before its fence is ``<!-- not-run: <reason> -->``
  (printed output, an install, the test suite, a GPU, a cluster); any other unmarked block
  fails, so a new block cannot go unchecked.

The README's commands are also *executed*, in order, by ``tests/test_readme_commands.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import _compose

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: The mark that exempts the block right after it, with the reason.
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>[^>]*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
#: The command a line runs: ``python -m rcot_lightning.train`` or ``rcot-train`` and its arguments.
COMMAND = re.compile(
    r"(?:-m\s+rcot_lightning\.|\brcot-)(?P<name>train|eval|restore|export)\b(?P<args>.*)"
)
BENCHMARK = re.compile(r"^python\s+(?P<script>benchmarks/\w+\.py)(?P<args>.*)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str
    reason: str | None  # the not-run mark's reason

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    """The fenced blocks of ``page`` with their language and not-run mark."""
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        start, indent = i, len(fence["indent"])
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        previous = lines[start - 1] if start > 0 else ""
        mark = NOT_RUN.search(previous)
        yield Block(page, start + 1, fence["lang"], "\n".join(body), mark and mark["reason"])
        i += 1


ALL = [b for page in PAGES for b in blocks(page)]
PYTHON = [b for b in ALL if b.reason is None and b.lang == "python"]
SHELL = [b for b in ALL if b.reason is None and b.lang == "bash"]


def shell_lines(text: str) -> list[str]:
    """Logical lines (``\\`` continuations joined), comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_every_block_is_run_or_marked_with_a_reason() -> None:
    unchecked = [
        f"{b.where} ({b.lang or 'no language'})"
        for b in ALL
        if b.reason is None and b.lang not in ("python", "bash")
    ]
    assert not unchecked, (
        f"mark these <!-- not-run: reason --> or make them python/bash: {unchecked}"
    )
    assert all(b.reason for b in ALL if b.reason is not None), "a not-run mark needs a reason"
    for block in SHELL:
        for line in shell_lines(block.text):
            assert COMMAND.search(line) or BENCHMARK.match(line), (
                f"{block.where}: `{line}` is neither an rcot command nor a benchmark; "
                "mark the block <!-- not-run: reason -->"
            )


def _overrides(args: str) -> list[str]:
    """The Hydra overrides of a command line: comments, flags and sweep alternatives removed.

    ``-m`` sweeps compose their first job (``task=denoise,derain`` composes ``task=denoise``);
    ``--cfg job`` is dropped.
    """
    words = shlex.split(args.split(" #")[0].split("  #")[0], comments=True)
    multirun = "-m" in words or "--multirun" in words
    out = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--cfg", "-c", "--config-dir", "-cd"):
            skip = True
            continue
        if word.startswith("-"):
            continue
        if multirun and "hparams_search=" not in word:
            key, _, value = word.partition("=")
            if not value.startswith(("[", "{")) and "," in value:
                word = f"{key}={value.split(',')[0]}"
        out.append(word)
    return out


def _compose_command(name: str, overrides: list[str], tmp_path: Path) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from rcot_lightning.cli.map_source import model_alias

    if name in ("restore", "export"):
        overrides = model_alias(overrides)
    try:
        cfg = _compose(name, overrides, tmp_path)
        config = {k: v for k, v in cfg.items() if k != "hydra"}
        resolved = OmegaConf.to_container(OmegaConf.create(config), resolve=False)
        assert isinstance(resolved, dict)
        if name == "train":
            from rcot_lightning.cli.app import as_dict
            from rcot_lightning.cli.recipe import check_recipe

            nodes = {k: as_dict(cfg.get(k)) for k in ("task", "data", "model", "trainer")}
            check_recipe(nodes, overrides)
    finally:
        GlobalHydra.instance().clear()


class _Parsed(Exception):
    """Raised by the patched parser once a benchmark's arguments parsed."""


def _parse_benchmark(script: str, args: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / script
    assert path.is_file(), script
    spec = importlib.util.spec_from_file_location(f"_doc_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(ROOT))
    # Registered, as an import would: a script's dataclasses look their module up by name.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    real = argparse.ArgumentParser.parse_args

    def parse_only(self: argparse.ArgumentParser, args=None, namespace=None):  # type: ignore[no-untyped-def]
        real(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    argv = shlex.split(args.split(" #")[0], comments=True)
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    with pytest.raises(_Parsed):
        module.main()


@pytest.mark.parametrize("block", SHELL, ids=[b.where for b in SHELL])
def test_shell_block_commands_compose(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for line in shell_lines(block.text):
        if benchmark := BENCHMARK.match(line):
            _parse_benchmark(benchmark["script"], benchmark["args"], monkeypatch)
            continue
        command = COMMAND.search(line)
        assert command is not None
        try:
            _compose_command(command["name"], _overrides(command["args"]), tmp_path)
        except Exception as err:  # the line in the message, not only Hydra's words
            raise AssertionError(f"{block.where}: `{line}`: {err}") from err


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(block.text, block.where, "exec")
    exec(code, {"__name__": "__docs__"})
    # An example that trains must show a gain: it prints the input's and the output's PSNR.
    for before, after in re.findall(
        r"input ([\d.]+) dB, restored ([\d.]+) dB", capsys.readouterr().out
    ):
        assert float(after) > float(before) + 0.3, (block.where, before, after)


def test_the_readme_is_one_screen_of_what_a_newcomer_needs() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for heading in (
        "## Install",
        "## Restore a photo",
        "## Train on your own folders",
        "## Python API",
    ):
        assert heading in text, heading
    # The test command stays the one .ci/run runs, verbatim.
    command = 'pip install -q -e ".[dev]" && python -m pytest'
    assert command in text and command in (ROOT / ".ci" / "run").read_text()
    # The CPU build of torch comes before the package (else pip resolves the CUDA build), and
    # CI installs torch with the README's line, verbatim.
    assert text.index("pip install torch==") < text.index('pip install -e ".[dev]"')
    install = next(b for b in ALL if b.page.name == "README.md" and "pip install torch" in b.text)
    torch_line = install.text.splitlines()[0]
    assert torch_line.startswith("pip install torch==") and "--index-url" in torch_line
    assert torch_line in (ROOT / ".ci" / "run").read_text(), torch_line


def test_every_documented_link_to_a_page_exists() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} -> {target}"


WEIGHTS = ROOT / "src" / "rcot_lightning" / "weights"


def _bundled(model: str) -> tuple[float, float, dict]:
    """``(M parameters, MB on disk, registry entry)`` of a bundled model, from its files."""
    import yaml

    from rcot_lightning.pretrained import load

    entry = yaml.safe_load((WEIGHTS / f"{model}.yaml").read_text())
    parameters = sum(p.numel() for p in load(model).parameters()) / 1e6
    return parameters, (WEIGHTS / entry["weights"]).stat().st_size / 1e6, entry


def test_bundled_model_sizes_in_the_docs_are_those_of_its_weights() -> None:
    """deploy.md gave denoise-blind as 0.35 M parameters / 1.4 MB (the v1 map) and as 1.33 M /
    5.4 MB: every figure now names the model it follows and equals what its weights hold."""
    sizes = {name: _bundled(name) for name in ("denoise-blind", "denoise-blind-fast")}
    for name, (parameters, _, entry) in sizes.items():
        assert f"{parameters:.2f} M parameters" in entry["map"], (name, entry["map"])
    checked = 0
    for page in (ROOT / "README.md", ROOT / "docs" / "deploy.md"):
        text = " ".join(page.read_text().split())
        for found in re.finditer(r"(\d+\.\d+) (M parameters|MB)", text):
            named = re.findall(r"`(denoise-blind(?:-fast)?)`", text[: found.start()])
            if not named or found.start() - text.rfind(f"`{named[-1]}`") > 400:
                continue  # a figure of another network (the paper's, a training model)
            parameters, megabytes, _ = sizes[named[-1]]
            value = parameters if found[2] == "M parameters" else megabytes
            assert found[1] == f"{value:.{len(found[1].split('.')[1])}f}", (
                f"{page.name}: {named[-1]} given as {found[0]}, its weights: {value:.2f}"
            )
            checked += 1
    assert checked >= 5


def test_readme_quality_figures_come_from_the_registry_and_the_curve() -> None:
    """The README's figures for denoise-blind are its registry's (benchmarks/pretrained_quality.py)
    and its table's shipped column the training curve's last checkpoint (heldout_curve.py,
    other noise seeds): each from its one source, rounded to two decimals."""
    import json

    text = " ".join((ROOT / "README.md").read_text().split())
    heldout = _bundled("denoise-blind")[2]["heldout"]
    prose = re.search(
        r"held-out ([\d.]+) / ([\d.]+) / ([\d.]+) dB at sigma 15 / 25 / 50; BM3D told the "
        r"sigma ([\d.]+) / ([\d.]+) / ([\d.]+)",
        text,
    )
    assert prose is not None
    sigmas = (15, 25, 50)
    expected = [f"{heldout[f'sigma{s}']['model'][0]:.2f}" for s in sigmas]
    expected += [f"{heldout[f'sigma{s}']['bm3d'][0]:.2f}" for s in sigmas]
    assert list(prose.groups()) == expected
    curve = [
        json.loads(line)
        for line in (ROOT / "docs" / "quality" / "heldout_curve_v2.jsonl").read_text().splitlines()
    ]
    header = re.search(r"\| CPU-hours of training \|([^\n]*?)\| BM3D \|", text)
    assert header is not None
    hours = [float(h.split()[0]) for h in header[1].split("|") if h.strip()]
    for sigma in sigmas:
        row = re.search(rf"\| sigma {sigma} \|((?: [\d.]+ \|)+)", text)
        assert row is not None
        *cells, bm3d = [c.strip() for c in row[1].split("|") if c.strip()]
        assert bm3d == f"{heldout[f'sigma{sigma}']['bm3d'][0]:.2f}"
        points = [p for p in curve if p.get("sigma") == sigma and "cpu_seconds" in p]
        for hour, cell in zip(hours, cells, strict=True):
            near = [f"{p['psnr']:.2f}" for p in points if round(p["cpu_seconds"] / 3600, 1) == hour]
            assert cell in near, (sigma, hour, cell, near)
        assert cells[-1] == f"{points[-1]['psnr']:.2f}" and points[-1]["checkpoint"] == "last.ckpt"


def test_development_page_names_the_declared_floors() -> None:
    """docs/development.md named lightning >= 2.4 after the floor had moved to 2.6."""
    from packaging.version import Version

    floors = dict(
        line.split("==")
        for line in (ROOT / "ci" / "floors.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    text = " ".join((ROOT / "docs" / "development.md").read_text().split())
    named = dict(re.findall(r"([a-z][\w-]*) >= ([\w.]+)", text))
    for package, version in floors.items():
        assert package in named and Version(named[package]) == Version(version), (
            package,
            named.get(package),
            version,
        )


def test_readme_task_table_is_the_benchmark_json() -> None:
    """Issue 30: each per-task row of the README (input / anchor / model, mean RGB PSNR at each
    severity) is what benchmarks/tasks.py wrote for that run, rounded to two decimals; issue 31:
    its last column is allinone-blind's run (tasks.py --skip-anchors), SR excepted."""
    import json

    text = (ROOT / "README.md").read_text()
    allinone = json.loads((ROOT / "docs/quality/tasks_allinone_run1.json").read_text())["tasks"]
    runs = {
        "rain": ("tasks_derain_run1.json", "derain", "median"),
        "haze": ("tasks_jpeg2_dehaze_run1.json", "dehaze", "dcp"),
        "JPEG": ("tasks_jpeg3_run1.json", "jpeg", "bm3d"),
        "blur": ("tasks_deblur_sr_run1.json", "deblur", "richardson_lucy"),
        "SR": ("tasks_deblur_sr_run1.json", "sr", "lanczos"),
        "low light": ("tasks_lowlight_run1.json", "lowlight", "gamma"),
    }
    for label, (name, task, anchor) in runs.items():
        report = json.loads((ROOT / "docs" / "quality" / name).read_text())["tasks"][task]
        row = re.search(rf"^\| {label} [^|]*\|([^\n]*)\|\s*$", text, re.MULTILINE)
        assert row is not None, label
        cells = [re.findall(r"\d+\.\d\d", cell) for cell in row[1].split("|")]
        # The JPEG row is the saved (libjpeg) files, what a user has.
        severities = [s for s in report["severities"] if ("libjpeg" in s) == (label == "JPEG")]
        if label == "SR":  # the anchor cell names bicubic (the input) before Lanczos
            cells[1] = cells[1][1:]
        for column, method in zip(cells[:3], ("input", anchor, "model"), strict=True):
            expected = [
                f"{report['severities'][s]['methods'][method]['mean']['psnr']:.2f}"
                for s in severities
            ]
            assert column == expected, (label, method, column, expected)
        if task == "sr":  # not one of the all-in-one's degradations: "not trained"
            assert cells[3] == [], (label, "allinone", cells[3])
            continue
        scored = allinone[task]["severities"]
        expected = [f"{scored[s]['methods']['model']['mean']['psnr']:.2f}" for s in severities]
        assert cells[3] == expected, (label, "allinone", cells[3], expected)
