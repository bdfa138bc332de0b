"""``rcot-restore`` against hostile or unlucky input: each case ends in one line, nothing is lost,
and no file a user points at runs code."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rcot_lightning.cli import app
from rcot_lightning.cli.restore import restore_files
from tests.conftest import cli_env, run_cli
from tests.hostile import (
    config_attacks,
    image,
    old_style,
    one_line_exit,
    overflowing,
    pickle_attack,
    save_checkpoint,
    tiny_config,
)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return image(tmp_path / "a.png")


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "good.ckpt", tiny_config())


def _restore(compose_config, ckpt: Path, source: Path, output: Path, *extra: str):
    return lambda: restore_files(
        compose_config(
            "restore",
            f"ckpt_path={ckpt}",
            f"input={source}",
            f"output={output}",
            "device=cpu",
            *extra,
        )
    )


def test_checkpoints_that_would_run_code_are_refused(
    compose_config, capsys, tmp_path: Path, marker: Path, photo: Path
) -> None:
    bomb = pickle_attack(tmp_path / "bomb.ckpt", marker)
    code, line = one_line_exit(
        "rcot-restore", _restore(compose_config, bomb, photo, tmp_path / "o"), capsys
    )
    assert code == 2
    assert f"ckpt_path: {bomb} holds more than tensors and plain values" in line
    assert "trust_checkpoint=true" in line and "rcot-upgrade-checkpoint" in line
    for name, ckpt in config_attacks(tmp_path, marker).items():
        run = _restore(compose_config, ckpt, photo, tmp_path / "o")
        code, line = one_line_exit("rcot-restore", run, capsys)
        assert code == 2, name
        assert f"ckpt_path: {ckpt}: its stored model: " in line, name
        assert "builds from a file" in line and "nothing was built" in line, name
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_an_old_checkpoint_needs_trust_or_the_upgrade(
    compose_config, capsys, tmp_path: Path, photo: Path
) -> None:
    from rcot_lightning.cli.upgrade_checkpoint import main as upgrade

    old = old_style(tmp_path / "old.ckpt")
    code, line = one_line_exit(
        "rcot-restore", _restore(compose_config, old, photo, tmp_path / "o"), capsys
    )
    assert code == 2 and "omegaconf" in line and "rcot-upgrade-checkpoint" in line
    written = _restore(compose_config, old, photo, tmp_path / "o", "trust_checkpoint=true")()
    assert [p.name for p in written] == ["a.png"]

    with pytest.raises(SystemExit) as info:  # reading it unpickles it: the flag is required
        upgrade([str(old)])
    assert info.value.code == 2 and "--trust-checkpoint" in capsys.readouterr().err
    upgrade([str(old), "--trust-checkpoint"])
    torch.load(old, weights_only=True)  # rewritten in place
    written = _restore(compose_config, old, photo, tmp_path / "o2")()
    assert [p.name for p in written] == ["a.png"]


def test_a_map_that_overflows_is_refused_before_any_image(
    compose_config, capsys, tmp_path: Path, photo: Path
) -> None:
    huge = overflowing(tmp_path / "huge.ckpt")
    code, line = one_line_exit(
        "rcot-restore", _restore(compose_config, huge, photo, tmp_path / "o"), capsys
    )
    assert code == 2
    assert line.endswith(
        f"ckpt_path: {huge}: the map returns non-finite values (NaN or infinity) on a test "
        "image, so its outputs would be black or NaN; use another checkpoint of the run (an "
        "earlier best-*.ckpt) or retrain"
    )
    assert not any((tmp_path / "o").iterdir())


def test_a_non_finite_image_is_not_written(
    compose_config, capsys, tmp_path: Path, photo: Path, good: Path, monkeypatch
) -> None:
    import rcot_lightning.inference as inference

    monkeypatch.setattr(inference, "restore_image", lambda net, x, **_: x * float("nan"))
    run = _restore(compose_config, good, photo, tmp_path / "o")
    code, line = one_line_exit("rcot-restore", run, capsys)
    assert (
        code == 2 and "gave non-finite values (NaN or infinity), so a.png was not written" in line
    )
    assert not any((tmp_path / "o").iterdir())


def test_existing_outputs_are_kept_unless_overwrite(
    compose_config, capsys, tmp_path: Path, photo: Path, good: Path
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "a.png").write_bytes(b"someone's file")
    code, line = one_line_exit("rcot-restore", _restore(compose_config, good, photo, out), capsys)
    assert code == 2
    assert line.endswith(
        f"output: 1 of the restored files already exist in {out} (a.png) and were kept; pass "
        "overwrite=true to replace them, or choose another output folder (nothing was written)"
    )
    assert (out / "a.png").read_bytes() == b"someone's file"
    _restore(compose_config, good, photo, out, "overwrite=true")()
    assert Image.open(out / "a.png").size == (16, 12)


def test_file_problems_are_one_line_each(
    compose_config, capsys, tmp_path: Path, good: Path, monkeypatch
) -> None:
    big = image(tmp_path / "big.png", (200, 200))
    run = _restore(compose_config, good, big, tmp_path / "o", "max_megapixels=0.01")
    code, line = one_line_exit("rcot-restore", run, capsys)
    assert code == 2
    assert line.endswith(
        f"image {big} is 0.04 megapixels, over the max_megapixels=0.01 limit that guards "
        "against decompression bombs; if you trust the file, raise it (e.g. max_megapixels=500)"
    )

    broken = tmp_path / "bad" / "b.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"not a jpeg")
    code, line = one_line_exit(
        "rcot-restore", _restore(compose_config, good, broken, tmp_path / "o"), capsys
    )
    assert code == 2 and "skip_bad=true" in line and "data.folders.skip_bad_images" not in line

    folder = tmp_path / "run"
    folder.mkdir()
    code, line = one_line_exit(
        "rcot-restore", _restore(compose_config, folder, big, tmp_path / "o"), capsys
    )
    assert code == 2 and line.endswith(
        f"ckpt_path: {folder} is a folder; pass a checkpoint file, e.g. "
        "<run folder>/checkpoints/last.ckpt"
    )


def test_sixteen_bit_inputs_get_a_note(compose_config, capsys, tmp_path: Path, good: Path) -> None:
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((12, 16), 40000, dtype=np.uint16)).save(deep)
    _restore(compose_config, good, deep, tmp_path / "o")()
    assert "note: 1 input(s) are 16-bit (deep.png); the restored PNGs are 8-bit" in (
        capsys.readouterr().out
    )


def test_ctrl_c_and_a_full_disk_are_one_line(
    compose_config, capsys, tmp_path: Path, good: Path, monkeypatch
) -> None:
    import signal

    import rcot_lightning.inference as inference
    import rcot_lightning.visualize as visualize

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        image(photos / f"{i}.png", seed=i)
    real = inference.restore_image
    calls = []

    def interrupted_at_the_second(net, x, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(net, x, **kwargs)

    monkeypatch.setattr(inference, "restore_image", interrupted_at_the_second)
    previous = signal.getsignal(signal.SIGINT)
    try:
        code, line = one_line_exit(
            "rcot-restore", _restore(compose_config, good, photos, tmp_path / "o"), capsys
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert line == (
        f"rcot-restore: interrupted by Ctrl-C (1 of 3 image(s) were restored into "
        f"{tmp_path / 'o'}); files already written are complete and no partial file was left"
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0.png"]

    monkeypatch.setattr(inference, "restore_image", real)

    def full(tensor, path):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(visualize, "save_png", full)
    code, line = one_line_exit(
        "rcot-restore", _restore(compose_config, good, photos, tmp_path / "o2"), capsys
    )
    assert code == 2
    assert line.endswith(
        f"output: cannot write {tmp_path / 'o2' / '0.png'} (No space left on device); the 0 "
        f"image(s) written before it in {tmp_path / 'o2'} are complete and no partial file was "
        "left; free some space or choose another output folder"
    )
    assert not any((tmp_path / "o2").iterdir())


@pytest.mark.integration
def test_home_and_unicode_paths_work_unquoted(tmp_path: Path, good: Path) -> None:
    """``input=~/фото.png`` as the README types it (Hydra's grammar alone rejects both)."""
    home = tmp_path / "home"
    home.mkdir()
    image(home / "фото.png")
    proc = run_cli(
        "rcot_lightning.restore",
        f"ckpt_path={good}",
        "input=~/фото.png",
        "output=~/выход",
        "device=cpu",
        cwd=tmp_path,
        env=cli_env(HOME=str(home)),
    )
    assert proc.returncode == 0, proc.stderr
    assert (home / "выход" / "фото.png").is_file()


def test_a_value_hydra_cannot_read_says_to_quote_it() -> None:
    from hydra.errors import OverrideParseException

    err = OverrideParseException("input=a b~", "LexerNoViableAltException: input=a b~ ^")
    message = app.user_error_message(err)
    assert message is not None and "quote a value that has spaces, ~, non-ASCII" in message
    assert app.quote_path_value("data.folders.root=~/Rain100L") == "data.folders.root='~/Rain100L'"
