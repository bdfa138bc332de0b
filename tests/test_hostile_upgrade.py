"""``rcot-upgrade-checkpoint`` never writes over a file it did not read as a checkpoint, never
over an existing ``--output`` without ``--overwrite``, and ends every error in one line.

A *victim* is a file the command must leave byte for byte as it was after a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY
from rcot_lightning.cli.upgrade_checkpoint import PROG, main
from tests.hostile import old_style, one_line_exit, save_checkpoint, tiny_config

VICTIM_BYTES = b"my notes, not a checkpoint\n"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A checkpoint of 0.3 (OmegaConf nodes inside): the command's real input."""
    return old_style(tmp_path / "old.ckpt")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_bytes(VICTIM_BYTES)
    return path


def _upgrade(*args: str | Path) -> Callable[[], None]:
    return lambda: main([*map(str, args), "--trust-checkpoint"])


def _refused(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    code, line = one_line_exit(PROG, _upgrade(*args), capsys)
    assert code == 2, line
    assert line.startswith(f"{PROG}: error: "), line
    return line


def _loads_upgraded(path: Path) -> None:
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(stored[BUILD_CONFIG_KEY], dict)
    assert not isinstance(stored[BUILD_CONFIG_KEY], DictConfig)
    assert stored["hyper_parameters"] == {"n_critic": 1}


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.integration
def test_an_unrelated_file_given_as_output_is_never_replaced(
    capsys: pytest.CaptureFixture[str], old: Path, victim: Path, overwrite: bool
) -> None:
    before = old.read_bytes()
    line = _refused(capsys, old, "--output", victim, *(["--overwrite"] if overwrite else []))
    assert victim.read_bytes() == VICTIM_BYTES
    assert old.read_bytes() == before
    assert f"--output: {victim} " in line and "nothing was written" in line
    if overwrite:
        assert "does not read (weights-only) as a checkpoint" in line
        assert "never replaced, even with --overwrite" in line
    else:
        assert "already exists and was kept; pass --overwrite" in line
    assert [p.name for p in victim.parent.iterdir() if p.name.startswith(".")] == []


def test_an_existing_checkpoint_as_output_needs_overwrite(
    capsys: pytest.CaptureFixture[str], old: Path, tmp_path: Path
) -> None:
    other = save_checkpoint(tmp_path / "other.ckpt", tiny_config())
    before = other.read_bytes()
    line = _refused(capsys, old, "--output", other)
    assert line.endswith(
        f"--output: {other} already exists and was kept; pass --overwrite to replace it (only "
        "a checkpoint is ever replaced), or choose another file (nothing was written)"
    )
    assert other.read_bytes() == before

    main([str(old), "--output", str(other), "--overwrite", "--trust-checkpoint"])
    assert capsys.readouterr().out.strip() == f"{other}: rewritten; it loads weights-only"
    _loads_upgraded(other)


def test_in_place_and_a_new_output_need_no_overwrite(
    capsys: pytest.CaptureFixture[str], old: Path, tmp_path: Path
) -> None:
    new = tmp_path / "sub" / "new.ckpt"
    main([str(old), "--output", str(new), "--trust-checkpoint"])
    _loads_upgraded(new)
    # The input named again as --output (another spelling of it) is the in-place rewrite.
    main([str(old), "--output", str(tmp_path / "." / old.name), "--trust-checkpoint"])
    _loads_upgraded(old)
    main([str(old), "--trust-checkpoint"])
    _loads_upgraded(old)
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def _not_a_checkpoint(folder: Path) -> dict[str, tuple[list[str | Path], str]]:
    """Inputs and outputs that must end in one line naming the argument: name -> (args, text)."""
    junk = folder / "junk.ckpt"
    junk.write_bytes(b"\x00junk bytes, not a pickle")
    a_list, no_state = folder / "list.ckpt", folder / "dict.ckpt"
    torch.save([1, 2, 3], a_list)
    torch.save({"weights": torch.zeros(2)}, no_state)
    good = save_checkpoint(folder / "good.ckpt", tiny_config())
    blocker = folder / "a-file"
    blocker.write_bytes(VICTIM_BYTES)
    return {
        "missing": ([folder / "missing.ckpt"], f"checkpoint: {folder / 'missing.ckpt'} does not "),
        "folder": ([folder], f"checkpoint: {folder} is a folder"),
        "junk": ([junk], f"checkpoint: {junk} is not a readable PyTorch checkpoint"),
        "list-pickle": ([a_list], f"checkpoint: {a_list} is not a checkpoint (it holds a list"),
        "dict-without-state": ([no_state], f"checkpoint: {no_state} is not a checkpoint"),
        "output-folder": ([good, "--output", folder], f"--output: {folder} is a folder"),
        "unwritable-output-folder": (
            [good, "--output", blocker / "x.ckpt"],
            f"--output: cannot write {blocker / 'x.ckpt'} ({blocker} is a file, not a folder)",
        ),
    }


CASES = [
    "missing",
    "folder",
    "junk",
    "list-pickle",
    "dict-without-state",
    "output-folder",
    "unwritable-output-folder",
]


@pytest.mark.parametrize("case", CASES)
def test_every_error_is_one_line_and_nothing_changes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    args, expected = _not_a_checkpoint(tmp_path)[case]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    line = _refused(capsys, *args)
    assert line.startswith(f"{PROG}: error: {expected}"), line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_trust_flag_is_still_required(
    capsys: pytest.CaptureFixture[str], old: Path, victim: Path
) -> None:
    before = old.read_bytes()
    with pytest.raises(SystemExit) as info:
        main([str(old), "--output", str(victim), "--overwrite"])
    assert info.value.code == 2 and "--trust-checkpoint" in capsys.readouterr().err
    assert old.read_bytes() == before and victim.read_bytes() == VICTIM_BYTES
