"""The declared floors are the tested ones: ``ci/floors.txt`` pins every dependency to its floor.

CI's floors step installs ``-c ci/floors.txt -e ".[dev]"`` and runs the fast tests, so a floor in
``pyproject.toml`` is only tested while the constraints file pins the same version. This test
fails when the two drift apart (a floor raised or lowered in one file only, a dependency added
or removed in one file only).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]


def declared_floors() -> dict[str, Version]:
    """``{name: floor}`` from pyproject.toml's ``dependencies``, each of the form ``name>=X``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    floors: dict[str, Version] = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == ">=", (
            f"{line!r}: a dependency is declared with one lower bound (>=) only, "
            "so that CI's floors step can install exactly that version"
        )
        floors[canonicalize_name(requirement.name)] = Version(specifiers[0].version)
    return floors


def pinned_floors() -> dict[str, Version]:
    """``{name: version}`` from ci/floors.txt, each line ``name==X`` (comments aside)."""
    pins: dict[str, Version] = {}
    for raw in (REPO / "ci" / "floors.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"ci/floors.txt: {line!r} must pin one version (name==X)"
        )
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"ci/floors.txt pins {name} twice"
        pins[name] = Version(specifiers[0].version)
    return pins


def test_every_dependency_floor_is_the_version_ci_installs() -> None:
    declared, pinned = declared_floors(), pinned_floors()
    assert sorted(declared) == sorted(pinned), (
        "pyproject.toml's dependencies and ci/floors.txt name different packages: "
        f"only in pyproject {sorted(set(declared) - set(pinned))}, "
        f"only in ci/floors.txt {sorted(set(pinned) - set(declared))}"
    )
    differ = {
        name: (str(declared[name]), str(pinned[name]))
        for name in declared
        if declared[name] != pinned[name]
    }
    assert not differ, f"floor in pyproject.toml != pin in ci/floors.txt: {differ}"


def test_ci_installs_the_floors_file() -> None:
    assert '-c ci/floors.txt -e ".[dev]"' in (REPO / ".ci" / "run").read_text()
