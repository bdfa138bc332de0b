"""``rcot_lightning.restore`` never destroys an input, plans every name first, writes atomically."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rcot_lightning.checkpoints.load import build_module
from rcot_lightning.checkpoints.upgrade import BUILD_CONFIG_KEY
from rcot_lightning.cli import app
from rcot_lightning.cli.restore import plan_outputs, restore_files
from rcot_lightning.errors import RCOTError
from tests.conftest import run_cli


@pytest.fixture
def tiny_checkpoint(compose_train, tmp_path: Path) -> Path:
    """A checkpoint of the (untrained) tiny model, as load_module reads it."""
    module = build_module(app.as_dict(compose_train().model))
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": module.state_dict(), BUILD_CONFIG_KEY: module.build_config}, path)
    return path


def _image(path: Path, seed: int = 0, size: tuple[int, int] = (12, 16)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _restore(compose_config, ckpt: Path, source: Path, output: Path, *extra: str):
    cfg = compose_config(
        "restore", f"ckpt_path={ckpt}", f"input={source}", f"output={output}", "device=cpu", *extra
    )
    return restore_files(cfg)


def test_output_into_the_input_folder_is_refused_before_anything_is_written(
    compose_config, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _image(photos / "a.jpg", 1)  # a_jpg.png: fine
    _image(photos / "a.png", 2)  # a_png.png: fine
    _image(photos / "b.png", 3)  # b.png: the input itself
    before = _hashes(photos)
    with pytest.raises(RCOTError, match=r"would replace the input .*b\.png.*nothing was written"):
        _restore(compose_config, tiny_checkpoint, photos, photos)
    assert _hashes(photos) == before  # same files, same bytes, nothing added


def test_inputs_sharing_a_stem_get_one_output_each(
    compose_config, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _image(photos / "x.jpg", 1)
    _image(photos / "x.png", 2)
    _image(photos / "y.png", 3)
    before = _hashes(photos)
    written = _restore(compose_config, tiny_checkpoint, photos, tmp_path / "out")
    assert sorted(p.name for p in written) == ["x_jpg.png", "x_png.png", "y.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    assert _hashes(photos) == before


def test_plan_adds_a_number_when_a_kept_extension_still_collides() -> None:
    files = [Path("a/x.jpg"), Path("a/X.JPG"), Path("a/x.png"), Path("a/x_jpg.png")]
    names = [t.name for _, t in plan_outputs(files, Path("o"))]
    assert names == ["x_jpg.png", "X_jpg_2.png", "x_png.png", "x_jpg_3.png"]
    assert len(set(n.lower() for n in names)) == len(names)


def test_unwritable_output_is_refused_before_the_work(
    compose_config, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RCOTError, match=r"output: cannot write into .*file/out"):
        _restore(compose_config, tiny_checkpoint, _image(tmp_path / "a.png"), blocker / "out")


def test_skip_bad_restores_the_readable_files_and_lists_the_others(
    compose_config, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _image(photos / "good.png")
    (photos / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    before = _hashes(photos)
    with pytest.raises(RCOTError, match=r"bad\.png cannot be read .* skip_bad=true"):
        _restore(compose_config, tiny_checkpoint, photos, tmp_path / "out")
    result = _restore(compose_config, tiny_checkpoint, photos, tmp_path / "out2", "skip_bad=true")
    assert [p.name for p in result] == ["good.png"]
    assert [p.name for p in result.skipped] == ["bad.png"]
    assert "skipped 1 unreadable file(s): bad.png" in capsys.readouterr().out
    assert _hashes(photos) == before


@pytest.mark.integration
def test_a_failed_write_keeps_the_previous_output_and_leaves_no_temporary_file(
    compose_config, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rcot_lightning.visualize as visualize

    source = _image(tmp_path / "a.png")
    out = tmp_path / "out"
    _restore(compose_config, tiny_checkpoint, source, out)
    previous = _hashes(out)

    def half_written(t: torch.Tensor, path: str | Path) -> str:
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(visualize, "save_png", half_written)
    with pytest.raises(RCOTError, match=r"cannot write .*a\.png \(No space left on device\)"):
        _restore(compose_config, tiny_checkpoint, source, out, "overwrite=true")
    assert _hashes(out) == previous  # a.png intact, no .tmp-* file


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tile=abc", "tile must be a positive multiple of 8 or null, got 'abc'"),
        ("tile=64.5", "tile must be a positive multiple of 8 or null, got 64.5"),
        ("device=mps", "device=mps: this machine has no mps device; use device=cpu"),
    ],
)
def test_bad_values_are_one_line_errors(
    compose_config, tiny_checkpoint: Path, tmp_path: Path, override: str, message: str
) -> None:
    if override == "device=mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    cfg = compose_config(
        "restore",
        f"ckpt_path={tiny_checkpoint}",
        f"input={_image(tmp_path / 'a.png')}",
        f"output={tmp_path / 'out'}",
        override,
    )
    with pytest.raises(RCOTError) as info:
        restore_files(cfg)
    assert str(info.value) == message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.integration
def test_skipped_files_make_the_command_exit_1(tiny_checkpoint: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _image(photos / "good.png")
    (photos / "bad.jpg").write_bytes(b"not a jpeg")
    args = [f"ckpt_path={tiny_checkpoint}", f"input={photos}", f"output={tmp_path / 'o'}"]
    proc = run_cli("rcot_lightning.restore", *args, "skip_bad=true", "device=cpu", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "skipped 1 unreadable file(s): bad.jpg" in proc.stdout
    assert (tmp_path / "o" / "good.png").is_file()
