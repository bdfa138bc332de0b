"""Figures of the package layout: what a reader meets in ``src/rcot_lightning``.

Prints one JSON object: files and lines per package (the top level and each sub-package), the
15 longest functions, the constructor argument counts of the LightningModule and the
DataModules, the number of top-level modules, and the number of pairs of repeated code found
in ``src`` by a separate duplicate-code scan, given with ``--duplicate-pairs N`` (null without).

    python tools/layout_figures.py --duplicate-pairs 13 > docs/assets/layout_after.json

Reads the source as text (``ast``); imports nothing of the package.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rcot_lightning"
# The classes whose constructors the layout work keeps small; every other *DataModule is added.
CONSTRUCTORS = ("RCOTModule", "RestorationDataModule")


def _sources(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path, package: Path) -> str:
    parts = path.relative_to(package).parts[:-1]
    return ".".join((package.name, *parts))


def files_and_lines(package: Path) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for path in _sources(package):
        row = table.setdefault(_package_of(path, package), {"files": 0, "lines": 0})
        row["files"] += 1
        row["lines"] += len(path.read_text(encoding="utf-8").splitlines())
    return dict(sorted(table.items()))


def _functions(package: Path) -> list[dict[str, Any]]:
    found = []
    for path in _sources(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found.append(
                    {
                        "function": node.name,
                        "path": str(path.relative_to(ROOT)),
                        "line": node.lineno,
                        "lines": (node.end_lineno or node.lineno) - first + 1,
                    }
                )
    return found


def longest_functions(package: Path, count: int) -> list[dict[str, Any]]:
    return sorted(_functions(package), key=lambda f: (-f["lines"], f["path"]))[:count]


def constructor_arguments(package: Path) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    for path in _sources(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            if node.name not in CONSTRUCTORS and not node.name.endswith("DataModule"):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args
                    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
                    counts[node.name] = {
                        "path": str(path.relative_to(ROOT)),
                        # ``self`` is not an argument a caller passes.
                        "arguments": len(named) - 1,
                    }
    return dict(sorted(counts.items()))


def top_level_modules(package: Path) -> int:
    return sum(1 for p in package.glob("*.py") if p.name != "__init__.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--longest", type=int, default=15, help="how many functions to list")
    parser.add_argument(
        "--duplicate-pairs",
        type=int,
        default=None,
        help="pairs of repeated code in src, from a duplicate-code scan (recorded as given)",
    )
    args = parser.parse_args(argv)
    report = {
        "package": str(PACKAGE.relative_to(ROOT)),
        "files_and_lines": files_and_lines(PACKAGE),
        "total": {
            "files": len(_sources(PACKAGE)),
            "lines": sum(
                len(p.read_text(encoding="utf-8").splitlines()) for p in _sources(PACKAGE)
            ),
        },
        "top_level_modules": top_level_modules(PACKAGE),
        "longest_functions": longest_functions(PACKAGE, args.longest),
        "constructor_arguments": constructor_arguments(PACKAGE),
        "duplicate_pairs": args.duplicate_pairs,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
