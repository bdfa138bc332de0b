"""``rcot-train`` (and the public loaders) against hostile or unlucky input: no checkpoint runs
code, what training writes loads weights-only, and each fault ends in one line."""

from __future__ import annotations

import errno
import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rcot_lightning.cli import app
from rcot_lightning.cli.train import run
from rcot_lightning.errors import RCOTError
from tests.hostile import (
    config_attacks,
    one_line_exit,
    pickle_attack,
    tiny_config,
)


def test_resuming_from_a_hostile_or_wrong_file_is_one_line(
    compose_train, capsys, tmp_path: Path, marker: Path
) -> None:
    bomb = pickle_attack(tmp_path / "bomb.ckpt", marker)
    run_bomb = lambda: run(compose_train("trainer.max_steps=2", f"ckpt_path={bomb}"))  # noqa: E731
    code, line = one_line_exit("rcot-train", run_bomb, capsys)
    assert code == 2
    assert line.startswith(
        f"rcot-train: error: ckpt_path: {bomb} holds more than tensors and plain values ("
    )
    assert line.endswith(
        "); loading it could run code, so it was refused. A checkpoint of rcot-lightning 0.3 or "
        f"older: rewrite it once with rcot-upgrade-checkpoint {bomb} --trust-checkpoint; any "
        "file whose source you trust: pass trust_checkpoint=true"
    )
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    run_folder = lambda: run(compose_train(f"ckpt_path={folder}"))  # noqa: E731
    code, line = one_line_exit("rcot-train", run_folder, capsys)
    assert code == 2 and line == (
        f"rcot-train: error: ckpt_path: {folder} is a folder (it holds last.ckpt); pass a "
        "checkpoint file, e.g. <run folder>/checkpoints/last.ckpt"
    )


def test_public_loaders_refuse_hostile_checkpoints(tmp_path: Path, marker: Path) -> None:
    from rcot_lightning.checkpoints.load import build_module, check_resumable, load_module
    from rcot_lightning.module import RCOTModule
    from rcot_lightning.pretrained import bundle

    bomb = pickle_attack(tmp_path / "bomb.ckpt", marker)
    module = build_module(tiny_config())
    for load in (
        lambda: load_module(bomb),
        lambda: check_resumable(bomb, module),
        lambda: bundle(bomb, tmp_path / "b.pt"),
        lambda: RCOTModule.load_from_checkpoint(
            bomb, transport_map=module.transport_map, potential=module.potential
        ),
    ):
        with pytest.raises(Exception, match=r"(?i)weights.only|tensors and plain values"):
            load()
    for ckpt in config_attacks(tmp_path, marker).values():
        with pytest.raises(RCOTError, match=r"builds from a file .*nothing was built"):
            load_module(ckpt)
        # bundle builds the map's node alone: attacks elsewhere are never built (the marker
        # fixture checks), attacks there are refused.
        try:
            bundle(ckpt, tmp_path / "b.pt")
        except RCOTError as err:
            assert "is not a" in str(err)


def _fake_bsd400_wed(root: Path, duplicate: bool = False) -> Path:
    rng = np.random.default_rng(0)
    folders = {
        "BSD400": ["a", "b"],
        "WED": ["a" if duplicate else "c", "d"],
        "CBSD68": ["x"],
        "Kodak24": ["y"],
        "McMaster": ["z"],
    }
    for folder, names in folders.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{name}.png")
    return root


@pytest.mark.integration
def test_summary_names_the_last_checkpoint_that_exists_and_it_loads_weights_only(
    compose_train, capsys, tmp_path: Path
) -> None:
    """``data=bsd400_wed`` with its test sets: testing used to reset ``last:`` to none."""
    root = _fake_bsd400_wed(tmp_path / "denoise")
    cfg = compose_train(
        "data=bsd400_wed",
        f"data.folders.root={root}",
        "test=true",
        "trainer.max_steps=2",
        "data.samples_per_epoch=2",
        "data.test_sets.kodak24=null",
        "data.test_sets.mcmaster=null",
    )
    result = run(cfg)
    out = capsys.readouterr().out
    folder = Path(result.trainer.checkpoint_callback.dirpath)
    assert (folder / "last.ckpt").is_file()
    assert "last: last.ckpt" in out, out
    assert "+-" not in out and "-+" not in out
    gain = next(line for line in out.splitlines() if "validation restored" in line)
    assert gain.rstrip().endswith(" dB)") and ("(+" in gain or "(-" in gain)
    for ckpt in folder.glob("*.ckpt"):
        torch.load(ckpt, weights_only=True)


def test_duplicate_names_across_folders_name_both(compose_train, tmp_path: Path) -> None:
    from hydra.utils import instantiate

    root = _fake_bsd400_wed(tmp_path / "denoise", duplicate=True)
    cfg = compose_train("data=bsd400_wed", f"data.folders.root={root}")
    datamodule = instantiate(cfg.data, _convert_="partial")
    with pytest.raises(RCOTError) as info:
        datamodule.setup("fit")
    assert str(info.value) == (
        f"data.train_dir: a.png and a.png in {root / 'BSD400'} and {root / 'WED'} have the same "
        "name 'a' without extension; rename or remove one"
    )


@pytest.mark.integration
def test_allinone_names_the_keys_it_needs(compose_train) -> None:
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    cfg = compose_train("experiment=allinone", tiny=False)
    datamodule = instantiate(cfg.data, _convert_="partial")
    with pytest.raises(RCOTError) as info:
        datamodule.setup("fit")
    assert str(info.value).startswith("data.tasks.noise.folders.root is not set; point it at")
    with pytest.raises(HydraException) as composed:
        compose_train("experiment=allinone", "data.folders.root=/tmp", tiny=False)
    message = app.user_error_message(composed.value)
    assert message is not None and "data.tasks.<task>.folders.root=..." in message


def test_a_huge_lambda_gp_is_named(compose_train, capsys) -> None:
    cfg = compose_train(
        "model.objective.lambda_gp=1e39", "model.max_bad_steps=1", "trainer.max_steps=4"
    )
    code, line = one_line_exit("rcot-train", lambda: run(cfg), capsys)
    assert code == 2
    assert "model.objective.lambda_gp=1e+39 overflows the gradient penalty" in line
    assert "lower the learning rates" not in line


def test_a_worker_error_is_one_line_with_the_traceback_in_the_log(tmp_path: Path, capsys) -> None:
    from torch.utils.data import DataLoader

    from rcot_lightning.data.images import read_image

    truncated = tmp_path / "t.png"
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    truncated.write_bytes(buffer.getvalue()[:60])

    class Images(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> torch.Tensor:
            return read_image(truncated)

    code, line = one_line_exit(
        "rcot-train", lambda: list(DataLoader(Images(), num_workers=1)), capsys
    )
    assert code == 2 and len(line) < 400, line
    assert line.startswith(f"rcot-train: error: image {truncated} is corrupt or truncated")
    log = Path(line.rsplit("(worker traceback: ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text()


def test_a_second_ctrl_c_stops_at_once_with_130(capsys) -> None:
    from rcot_lightning.callbacks.preemption_checkpoint import PreemptionCheckpoint

    watcher = PreemptionCheckpoint()
    watcher._handle(signal.SIGINT, None)  # the first: finish the iteration, save
    previous = signal.getsignal(signal.SIGINT)
    try:
        code, line = one_line_exit(
            "rcot-train", lambda: watcher._handle(signal.SIGINT, None), capsys
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130 and line.startswith("rcot-train: interrupted by Ctrl-C (pressed twice")


def test_a_full_disk_while_checkpointing_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from rcot_lightning.checkpoints.atomic_io import AtomicCheckpointIO

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    path = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(RCOTError) as info:
        AtomicCheckpointIO().save_checkpoint({"x": 1}, path)
    assert str(info.value) == (
        f"cannot write the checkpoint {path} (No space left on device); the checkpoints already "
        f"in {path.parent} are intact (no partial file was left): free some space, then resume "
        "with run_dir=<this run> ckpt_path=last"
    )
    assert list(path.parent.iterdir()) == []
