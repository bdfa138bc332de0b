"""``rcot-export`` against hostile or careless input: it never writes over its checkpoint or an
existing file, refuses maps that return NaN, and ends every problem in one line."""

from __future__ import annotations

import errno
import hashlib
import signal
from pathlib import Path

import pytest

from rcot_lightning.cli import export as export_module
from rcot_lightning.cli.export import export_files
from tests.hostile import (
    config_attacks,
    one_line_exit,
    overflowing,
    pickle_attack,
    save_checkpoint,
    tiny_config,
)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "good.ckpt", tiny_config())


def _export(compose_config, *overrides: str):
    return lambda: export_files(compose_config("export", "format=torchscript", *overrides))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoints_that_would_run_code_are_refused(
    compose_config, capsys, tmp_path: Path, marker: Path
) -> None:
    out = tmp_path / "map.pt"
    bomb = pickle_attack(tmp_path / "bomb.ckpt", marker)
    code, line = one_line_exit(
        "rcot-export", _export(compose_config, f"ckpt_path={bomb}", f"output={out}"), capsys
    )
    assert code == 2 and f"ckpt_path: {bomb} holds more than tensors and plain values" in line
    for name, ckpt in config_attacks(tmp_path, marker).items():
        run = _export(compose_config, f"ckpt_path={ckpt}", f"output={out}")
        code, line = one_line_exit("rcot-export", run, capsys)
        assert code == 2 and f"ckpt_path: {ckpt}: its stored model: " in line, name
        assert "nothing was built" in line, name
    assert not out.exists()


@pytest.mark.integration
def test_export_never_writes_over_its_checkpoint_or_an_existing_file(
    compose_config, capsys, tmp_path: Path, good: Path
) -> None:
    before = _digest(good)
    run = _export(compose_config, f"ckpt_path={good}", f"output={good}")
    code, line = one_line_exit("rcot-export", run, capsys)
    assert code == 2
    assert line == (
        f"rcot-export: error: output: {good} is the checkpoint being exported (ckpt_path); "
        "choose another file, e.g. model.onnx (nothing was written)"
    )
    other = save_checkpoint(tmp_path / "other.pt", tiny_config())  # a checkpoint by content
    for target in (tmp_path / "new.ckpt", other):
        run = _export(compose_config, f"ckpt_path={good}", f"output={target}", "overwrite=true")
        code, line = one_line_exit("rcot-export", run, capsys)
        assert code == 2 and "rcot-export never writes over one" in line
    assert _digest(good) == before

    out = tmp_path / "map.pt"
    out.write_text("keep me")
    code, line = one_line_exit(
        "rcot-export", _export(compose_config, f"ckpt_path={good}", f"output={out}"), capsys
    )
    assert line.endswith(
        f"output: {out} already exists and was kept; pass overwrite=true to replace it, or "
        "choose another file (nothing was written)"
    )
    assert out.read_text() == "keep me"
    _export(
        compose_config, f"ckpt_path={good}", f"output={out}", "overwrite=true", "verify=false"
    )()
    assert out.read_bytes()[:2] == b"PK"  # a TorchScript archive


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("opset=abc", "opset must be a whole number from 17 to 20, got 'abc'"),
        (
            "opset=99",
            "opset must be a whole number from 17 to 20, got 99 (the map needs 17; this torch "
            "writes up to 20)",
        ),
    ],
)
def test_bad_opsets_are_one_line(
    compose_config, capsys, tmp_path: Path, good: Path, override: str, expected: str
) -> None:
    run = _export(compose_config, f"ckpt_path={good}", f"output={tmp_path / 'm.onnx'}", override)
    code, line = one_line_exit("rcot-export", run, capsys)
    assert code == 2 and line == f"rcot-export: error: {expected}"


def test_a_map_that_overflows_is_refused(compose_config, capsys, tmp_path: Path) -> None:
    huge = overflowing(tmp_path / "huge.ckpt")
    out = tmp_path / "m.pt"
    run = _export(compose_config, f"ckpt_path={huge}", f"output={out}")
    code, line = one_line_exit("rcot-export", run, capsys)
    assert code == 2 and "the map returns non-finite values (NaN or infinity)" in line
    assert not out.exists()


def test_ctrl_c_and_an_unwritable_place_are_one_line(
    compose_config, capsys, tmp_path: Path, good: Path, monkeypatch
) -> None:
    out = tmp_path / "m.pt"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "export_map", interrupted)
    previous = signal.getsignal(signal.SIGINT)
    try:
        run = _export(compose_config, f"ckpt_path={good}", f"output={out}")
        code, line = one_line_exit("rcot-export", run, capsys)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130 and line == (
        "rcot-export: interrupted by Ctrl-C; files already written are complete and no "
        "partial file was left"
    )

    def refused(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(export_module, "export_map", refused)
    code, line = one_line_exit(
        "rcot-export", _export(compose_config, f"ckpt_path={good}", f"output={out}"), capsys
    )
    assert code == 2 and line == (
        f"rcot-export: error: output: cannot write {out} (Permission denied); nothing was "
        "written and no partial file was left; choose a place you can write to with free space"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.ckpt"]
