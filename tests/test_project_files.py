"""The files every release carries agree with pyproject.toml: the licence text it declares, the
citation's version and the changelog's latest version."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
# tomllib is Python 3.11+; the three keys read here are plain one-line strings.
PROJECT = {
    key: re.search(rf"^{key} = (.+)$", PYPROJECT, re.M)[1]
    for key in ("version", "license", "license-files")
}
VERSION = PROJECT["version"].strip('"')


def test_licence_file_is_the_one_pyproject_declares() -> None:
    assert PROJECT["license"] == '"MIT"' and PROJECT["license-files"] == '["LICENSE"]'
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "the rcot-lightning authors" in text


def test_citation_names_this_version_and_the_paper() -> None:
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == VERSION and citation["license"] == "MIT"
    (paper,) = citation["references"]
    assert paper["title"].startswith("Residual-Conditioned Optimal Transport")
    assert [a["family-names"] for a in paper["authors"]] == ["Tang", "Hu", "Gu", "Sun"]
    assert "2405.02843" in paper["url"]


def test_changelog_has_a_section_for_this_version() -> None:
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert versions and versions[0] == VERSION
