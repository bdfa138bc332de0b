"""docs/architecture.md stays true: every file it names exists, and the layering rule holds."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rcot_lightning"
PAGE = ROOT / "docs" / "architecture.md"

#: The torch-only core: it imports the standard library, torch and itself, nothing else.
CORE = (
    "contract",
    "errors",
    "shapes",
    "values",
    "seeding",
    "hardware",
    "objective",
    "nets",
    "inference",
)
#: The two-line ``python -m rcot_lightning.<name>`` files that forward to ``cli``.
FORWARDERS = ("train", "eval", "restore", "export", "demo", "upgrade_checkpoint")


def _named_paths() -> list[str]:
    """Every backquoted file or folder name of the page (``x.py``, ``conf/task/``, ...)."""
    names = re.findall(r"`([\w./-]+)`", PAGE.read_text())
    return sorted({n for n in names if "/" in n or n.endswith((".py", ".yaml", ".md"))})


@pytest.mark.parametrize("name", _named_paths())
def test_every_path_named_in_architecture_md_exists(name: str) -> None:
    for base in (ROOT, PACKAGE, ROOT / "docs"):
        if (base / name).exists():
            return
    # A bare file name stands in the package folder its line names.
    assert "/" not in name and any(PACKAGE.rglob(name)), f"docs/architecture.md names {name}"


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: imports for annotations, never run."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return found


def _imports(path: Path) -> set[str]:
    """What ``path`` imports when it runs: at the top or inside a function, not for annotations."""
    names = set()
    tree = ast.parse(path.read_text())
    annotations_only = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "rcot_lightning":
                names |= {f"rcot_lightning.{a.name}" for a in node.names}
            else:
                names.add(node.module)
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_core_imports_only_torch_and_itself() -> None:
    core = {f"rcot_lightning.{name}" for name in CORE}
    for path in _sources():
        name = _module_name(path)
        if not any(name == c or name.startswith(c + ".") for c in core):
            continue
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in sys.stdlib_module_names or top in ("__future__", "torch"):
                continue
            inside = ".".join(imported.split(".")[:2])
            assert inside in core, f"{name} imports {imported}"


def test_nothing_below_the_entry_points_imports_them() -> None:
    allowed = {f"rcot_lightning.{name}" for name in FORWARDERS}
    for path in _sources():
        name = _module_name(path).removesuffix(".__init__")
        if name.startswith("rcot_lightning.cli") or name in allowed:
            continue
        cli = [
            i
            for i in _imports(path)
            if i == "rcot_lightning.cli" or i.startswith("rcot_lightning.cli.")
        ]
        assert not cli, f"{name} imports {cli}"


def _part(module: str) -> str:
    """The part of the package a module belongs to: ``rcot_lightning.checkpoints.load`` ->
    ``checkpoints``, ``rcot_lightning.module`` -> ``module``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _import_cycles() -> list[list[str]]:
    """Cycles between the parts of the package (modules at the top, sub-packages)."""
    edges: dict[str, set[str]] = {}
    for path in _sources():
        here = _part(_module_name(path).removesuffix(".__init__"))
        for imported in _imports(path):
            if imported.startswith("rcot_lightning.") and _part(imported) != here:
                edges.setdefault(here, set()).add(_part(imported))
    cycles = []

    def walk(node: str, trail: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == trail[0]:
                cycles.append([*trail, nxt])
            elif nxt not in trail and nxt > trail[0]:  # each cycle once, from its least part
                walk(nxt, [*trail, nxt])

    for start in sorted(edges):
        walk(start, [start])
    return cycles


def test_no_two_parts_of_the_package_import_each_other() -> None:
    """Imports run one way between the parts of the package: ``module`` uses the checkpoint
    format (``checkpoints/keys.py``, ``trust.py``, ``upgrade.py``) and ``checkpoints`` names the
    module only through its registry; ``conf`` holds its resolvers' logic and imports no ``cli``.
    """
    assert _import_cycles() == []


@pytest.mark.integration
def test_importing_the_checkpoints_never_imports_the_module() -> None:
    """``checkpoints/load.py`` builds an RCOTModule by its registry name, as every class it
    builds, so the checkpoint format loads without the module (and the module with it)."""
    code = (
        "import sys, pkgutil, importlib, rcot_lightning.checkpoints as c\n"
        "for m in pkgutil.iter_modules(c.__path__):\n"
        "    importlib.import_module(f'{c.__name__}.{m.name}')\n"
        "print(sorted(m for m in sys.modules if m == 'rcot_lightning.module'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


#: Module-level calls that run at import, each with the reason it must.
IMPORT_TIME_CALLS = {
    "rcot_lightning.conf": "register_resolvers(): Hydra imports the configs' package to read "
    "them, so its resolvers exist wherever the configs compose (another Hydra app too)",
}


def _calls_at_import(tree: ast.Module) -> list[str]:
    """Bare calls among a module's top-level statements (in ``if``/``try``/``with`` too), except
    under ``if __name__ == "__main__":``."""
    found: list[str] = []
    body: list[ast.stmt] = list(tree.body)
    while body:
        stmt = body.pop(0)
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            found.append(ast.unparse(stmt.value))
        elif isinstance(stmt, ast.If) and "__main__" not in ast.unparse(stmt.test):
            body += stmt.body + stmt.orelse
        elif isinstance(stmt, ast.Try):
            body += stmt.body + stmt.orelse + stmt.finalbody
        elif isinstance(stmt, ast.With):
            body += stmt.body
    return found


def test_importing_the_library_calls_nothing() -> None:
    """No module does work when it is imported (quieting other packages' logs, registering
    things): that happens where it is needed (``RCOTModule.__init__``, the entry points)."""
    found = {}
    for path in _sources():
        calls = _calls_at_import(ast.parse(path.read_text()))
        if calls:
            found[_module_name(path).removesuffix(".__init__")] = calls
    unexpected = sorted(found.keys() - IMPORT_TIME_CALLS.keys())
    assert not unexpected, {name: found[name] for name in unexpected}
    stale = sorted(IMPORT_TIME_CALLS.keys() - found.keys())
    assert not stale, f"IMPORT_TIME_CALLS names modules that call nothing at import: {stale}"


@pytest.mark.integration
def test_importing_the_library_leaves_logging_and_warnings_as_they_were() -> None:
    code = (
        "import logging, warnings, lightning, hydra, omegaconf, torch\n"
        "before = (list(warnings.filters), [list(logging.getLogger(n).filters) for n in\n"
        "          ('lightning.pytorch.utilities.rank_zero', 'lightning', '')])\n"
        "import rcot_lightning, rcot_lightning.module, rcot_lightning.callbacks\n"
        "import rcot_lightning.checkpoints.load, rcot_lightning.cli.app, rcot_lightning.cli.train\n"
        "after = (list(warnings.filters), [list(logging.getLogger(n).filters) for n in\n"
        "         ('lightning.pytorch.utilities.rank_zero', 'lightning', '')])\n"
        "print(before == after)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("name", FORWARDERS)
def test_python_dash_m_forwarders_stay_two_lines(name: str) -> None:
    code = [
        line
        for line in (PACKAGE / f"{name}.py").read_text().splitlines()
        if line.strip() and not line.startswith('"""')
    ]
    assert code == [
        f"from rcot_lightning.cli.{name} import main",
        'if __name__ == "__main__":',
        "    main()",
    ]


#: The homes of checks: tensor checks, plain-value checks, checks of a CLI value.
CHECK_HOMES = ("rcot_lightning.shapes", "rcot_lightning.values", "rcot_lightning.cli.checks")
#: Checker-named functions outside the homes, each with the reason it stays where it is.
CHECKER_EXCEPTIONS = {
    "rcot_lightning.nets.restormer.check_restormer_config": "the U-Net's own size rule (heads "
    "divide each level's width), shared by restormer.py and two_pass.py; built on values.py",
    "rcot_lightning.data.datasets._check_sizes": "reads every image's size from a source; "
    "about the data on disk, not a value or a tensor",
    "rcot_lightning.checkpoints.finite.check_finite": "the one finiteness check of a state dict "
    "(its own home, named in docs/architecture.md)",
    "rcot_lightning.checkpoints.spec.check_spec": "the whole-spec check of a stored model "
    "config; lives beside the registry and the builder that trusts only what it passed",
    "rcot_lightning.conf.run_dir.check_run_dir": "reads what a folder on disk holds (a run of "
    "ours, a user's files, links) before a run writes there; about files, not a value",
    "rcot_lightning.conf.run_dir._check_links": "part of check_run_dir: files of a run folder "
    "that are links",
    "rcot_lightning.checkpoints.load.check_resumable": "compares a checkpoint with the module "
    "it resumes; needs both loaded",
    "rcot_lightning.cli.recipe.check_recipe": "the recipe checks (their own home, named in "
    "docs/architecture.md)",
    "rcot_lightning.cli.export._check": "runs an exported file against the network and returns "
    "the largest difference; a numerical comparison, not a value check",
}
#: ``_check*``, ``check_*``, ``_validate*``, ``validate*`` as whole words (``_check``,
#: ``check_x``, ``_validate_y``), not ``_checkpoints_under`` or ``validation_step``.
CHECKER_NAME = re.compile(r"_?(check|validate)(_|$)")


def test_checks_live_in_their_homes() -> None:
    found = set()
    for path in _sources():
        module = _module_name(path).removesuffix(".__init__")
        if module in CHECK_HOMES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and CHECKER_NAME.match(
                node.name
            ):
                found.add(f"{module}.{node.name}")
    unexpected = sorted(found - CHECKER_EXCEPTIONS.keys())
    assert not unexpected, f"checkers outside shapes.py, values.py and cli/checks.py: {unexpected}"
    stale = sorted(CHECKER_EXCEPTIONS.keys() - found)
    assert not stale, f"CHECKER_EXCEPTIONS names functions that are gone: {stale}"
