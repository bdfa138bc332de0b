"""Resuming a run folder someone else made: the callback state in a checkpoint is data, not
instructions, and ``run_dir`` / ``ckpt_path`` that would spoil a folder end in one line.

Lightning's ModelCheckpoint restores the paths of the last and the best checkpoints from the
checkpoint (all of them when the state names no ``dirpath``), deletes the previous ones
recursively when it saves new ones (its "inside the folder" test does not collapse ``..`` nor
follow links) and tests the restored best. A crafted ``last.ckpt`` could so delete any folder
of the user's and pass another file's test scores off as the run's best.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from rcot_lightning.callbacks.run_checkpoint import RunCheckpoint
from rcot_lightning.cli.train import run
from rcot_lightning.errors import RCOTError
from tests.conftest import TINY_CLI
from tests.hostile import one_line_exit

#: What the victims outside the run hold; an attack that deletes or empties them shows.
PRECIOUS = "precious"

#: A run of 2 iterations (4 global steps), validated after each; resumed to 4 (8 steps).
FIRST = ("trainer.max_steps=4", "trainer.val_check_interval=2")
RESUME = ("trainer.max_steps=8", "trainer.val_check_interval=2", "ckpt_path=last")
AGAIN = ("trainer.max_steps=12", "trainer.val_check_interval=2", "ckpt_path=last")


@pytest.fixture
def victim(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A folder outside the run, with a sub-folder and a file; checked intact afterwards."""
    root = tmp_path_factory.mktemp("victim")
    (root / "folder").mkdir()
    (root / "folder" / "inside.txt").write_text(PRECIOUS)
    (root / "file.txt").write_text(PRECIOUS)
    yield root
    assert (root / "folder" / "inside.txt").read_text() == PRECIOUS, "a folder was deleted"
    assert (root / "file.txt").read_text() == PRECIOUS, "a file was deleted"


def _crafted_path(style: str, target: Path, checkpoints: Path) -> str:
    """A path to ``target`` (outside the run) as an attacker would write it."""
    if style == "dotdot":  # looks inside the checkpoints folder until `..` is collapsed
        return f"{checkpoints}/{os.path.relpath(target, checkpoints)}"
    if style == "symlink":  # a link shipped inside the run folder, to the victim's folder
        link = checkpoints / "link"
        if not link.is_symlink():
            link.symlink_to(target.parent, target_is_directory=True)
        return f"{link}/{target.name}"
    if style == "url":
        return f"file://{target}"
    assert style == "absolute"
    return str(target)


def _craft(checkpoint: Path, drop_dirpath: bool = True, **state: Any) -> None:
    """Rewrite the RunCheckpoint state saved in ``checkpoint``, as an attacker would."""
    saved = torch.load(checkpoint, weights_only=True)
    (key,) = [k for k in saved["callbacks"] if k.startswith("RunCheckpoint")]
    callback_state = saved["callbacks"][key]
    if drop_dirpath:  # Lightning then restores every path of the state
        callback_state.pop("dirpath")
    callback_state.update(state)
    torch.save(saved, checkpoint)


def _state(checkpoint: Path) -> dict[str, Any]:
    saved = torch.load(checkpoint, weights_only=True)
    return next(v for k, v in saved["callbacks"].items() if k.startswith("RunCheckpoint"))


# ------------------------------------------------------------------ the state, unit by unit
@pytest.mark.parametrize("style", ["dotdot", "symlink", "url", "absolute"])
def test_paths_outside_the_checkpoints_folder_are_dropped_from_the_state(
    tmp_path: Path, victim: Path, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    ours = str(checkpoints / "best-iter000002-psnr20.00.ckpt")
    folder = _crafted_path(style, victim / "folder", checkpoints)
    file = _crafted_path(style, victim / "file.txt", checkpoints)
    callback = RunCheckpoint(dirpath=checkpoints, monitor="val/psnr", mode="max", save_last=True)
    with caplog.at_level(logging.WARNING):
        callback.load_state_dict(
            {
                "best_model_score": torch.tensor(1e9),
                "best_model_path": file,
                "best_k_models": {file: torch.tensor(1e9), ours: torch.tensor(20.0)},
                "kth_best_model_path": file,
                "kth_value": torch.tensor(1e9),
                "last_model_path": folder,
            }
        )
    assert callback.last_model_path == ""
    # The best k keep the run's own file, and best and k-th best agree with them.
    assert callback.best_k_models == {ours: torch.tensor(20.0)}
    assert callback.best_model_path == callback.kth_best_model_path == ours
    assert float(callback.best_model_score) == 20.0
    notes = [r.getMessage() for r in caplog.records if "checkpoint state: ignoring" in r.message]
    assert {n.split("=", 1)[0] for n in notes} == {
        f"checkpoint state: ignoring {key}"
        for key in ("last_model_path", "best_model_path", "kth_best_model_path", "best_k_models")
    }
    assert all("\n" not in n and n.endswith(f"checkpoints folder {checkpoints}") for n in notes)

    # Whatever sets a path later, the callback removes nothing outside its folder.
    trainer = MagicMock()
    callback._remove_checkpoint(trainer, folder)
    callback._remove_checkpoint(trainer, file)
    trainer.strategy.remove_checkpoint.assert_not_called()
    callback._remove_checkpoint(trainer, ours)
    trainer.strategy.remove_checkpoint.assert_called_once_with(ours)


def test_anything_but_a_file_path_inside_the_folder_is_dropped(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "sub").mkdir(parents=True)
    callback = RunCheckpoint(dirpath=checkpoints, monitor="val/psnr", mode="max", save_last=True)
    for path in (
        str(checkpoints),  # the folder itself
        str(checkpoints / "sub"),  # a folder inside it
        f"{checkpoints}/x\x00.ckpt",
        f"simplecache::file://{checkpoints}/last.ckpt",  # fsspec's chained URL
        42,
        ["a"],
    ):
        callback.load_state_dict(
            {"best_model_score": None, "best_model_path": path, "last_model_path": path}
        )
        assert (callback.last_model_path, callback.best_model_path) == ("", ""), path
        assert callback.best_model_score is None
    callback.load_state_dict(
        {"best_model_path": "", "best_k_models": ["not", "a", "mapping"], "kth_value": "x"}
    )
    assert callback.best_k_models == {} and callback.kth_best_model_path == ""
    assert float(callback.kth_value) == float("-inf")  # its own starting value, mode max


# ------------------------------------------------------------------ resuming a crafted run
@pytest.mark.parametrize("style", ["dotdot", "symlink", "absolute"])
@pytest.mark.integration
def test_resuming_a_crafted_run_deletes_nothing_outside_it(
    compose_train,
    tmp_path: Path,
    marker: Path,
    victim: Path,
    style: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run(compose_train(*FIRST))
    checkpoints = tmp_path / "checkpoints"
    folder = _crafted_path(style, victim / "folder", checkpoints)
    file = _crafted_path(style, victim / "file.txt", checkpoints)
    # The k-th best (removed when a better model comes) and the last (removed when the next
    # last is written) point at the victims; a poor score makes the next validation better.
    _craft(
        checkpoints / "last.ckpt",
        last_model_path=folder,
        kth_best_model_path=file,
        best_model_path=file,
        best_k_models={file: torch.tensor(-1e9)},
        kth_value=torch.tensor(-1e9),
    )
    with caplog.at_level(logging.WARNING):
        resumed = run(compose_train(*RESUME))
    assert resumed.model.iteration == 4
    assert "checkpoint state: ignoring last_model_path=" in caplog.text
    callback = resumed.trainer.checkpoint_callback
    assert Path(callback.last_model_path) == checkpoints / "last.ckpt"
    assert Path(callback.best_model_path).parent == checkpoints
    assert _state(checkpoints / "last.ckpt")["last_model_path"] == str(checkpoints / "last.ckpt")


@pytest.mark.integration
def test_without_a_configured_checkpoint_callback_the_default_is_confined_too(
    compose_train, tmp_path: Path, victim: Path
) -> None:
    # Lightning adds its own ModelCheckpoint then, which restores `best_model_path` whatever
    # the folder and removes it when it saves the next one.
    run(compose_train(*FIRST, "~callbacks.model_checkpoint"))
    (saved,) = tmp_path.rglob("*.ckpt")  # <run>/csv/version_0/checkpoints/epoch=...ckpt
    version = int(saved.parent.parent.name.removeprefix("version_"))
    resumed_in = saved.parent.parent.parent / f"version_{version + 1}" / "checkpoints"
    crafted = _crafted_path("dotdot", victim / "folder", resumed_in)
    checkpoint = torch.load(saved, weights_only=True)
    (key,) = [k for k in checkpoint["callbacks"] if "Checkpoint{" in k]
    state = {**checkpoint["callbacks"][key], "best_model_path": crafted}
    _, settings = key.split("{", 1)
    for name in ("ModelCheckpoint", "RunCheckpoint"):  # whichever class restores it
        checkpoint["callbacks"][f"{name}{{{settings}"] = state
    handed_over = tmp_path / "handed-over.ckpt"
    torch.save(checkpoint, handed_over)
    overrides = ("trainer.max_steps=8", "~callbacks.model_checkpoint", f"ckpt_path={handed_over}")
    resumed = run(compose_train(*overrides))
    assert Path(resumed.trainer.checkpoint_callback.dirpath) == resumed_in
    assert Path(resumed.trainer.checkpoint_callback.best_model_path).parent == resumed_in


@pytest.mark.integration
def test_a_crafted_best_path_is_not_tested_as_the_best(
    compose_train,
    tmp_path: Path,
    marker: Path,
    victim: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(compose_train(*FIRST))
    checkpoints = tmp_path / "checkpoints"
    other = victim / "other.ckpt"  # another file, e.g. a stronger model's checkpoint
    shutil.copyfile(checkpoints / "last.ckpt", other)
    _craft(
        checkpoints / "last.ckpt",
        best_model_path=str(other),
        best_model_score=torch.tensor(1e9),
        best_k_models={str(other): torch.tensor(1e9)},  # never beaten: it would stay "best"
        kth_best_model_path=str(other),
        kth_value=torch.tensor(1e9),
    )
    capsys.readouterr()
    resumed = run(compose_train(*RESUME, "test=true", "data.val_images=[chelsea]"))
    tested = Path(resumed.trainer.ckpt_path)  # what trainer.test loaded
    assert tested.parent == checkpoints and tested.name.startswith("best-"), tested
    out = capsys.readouterr().out
    assert "best: best-iter" in out and "other.ckpt" not in out, out
    assert other.is_file()


@pytest.mark.integration
def test_a_moved_run_resumes_from_its_newest_state_every_time(
    compose_train, tmp_path: Path
) -> None:
    old = tmp_path / "old" / "checkpoints"  # where the run was trained
    run(compose_train(*FIRST, f"callbacks.model_checkpoint.dirpath={old}"))
    shutil.copytree(old, tmp_path / "checkpoints")  # the run folder, moved or copied here
    checkpoints = tmp_path / "checkpoints"
    before = {p.name: p.read_bytes() for p in old.iterdir()}

    first = run(compose_train(*RESUME))
    assert first.model.iteration == 4
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["rcot_iteration"] == 4  # not left in last-v1.ckpt
    assert not list(checkpoints.glob("last-v*.ckpt"))

    second = run(
        compose_train("trainer.max_steps=12", "trainer.val_check_interval=2", "ckpt_path=last")
    )
    assert Path(second.trainer.ckpt_path) == checkpoints / "last.ckpt"
    assert second.model.iteration == 6
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["rcot_iteration"] == 6
    assert not list(checkpoints.glob("last-v*.ckpt"))
    # The old folder's files, named in the copied state, are neither used nor removed.
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert Path(second.trainer.checkpoint_callback.best_model_path).parent == checkpoints


# ------------------------------------------------------------------ run_dir and ckpt_path
def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def _train_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> Any:
    """``rcot-train <args>`` in this process (Hydra, resolvers, one-line errors, exit status)."""
    from rcot_lightning.cli.train import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["rcot-train", *TINY_CLI, *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("RCOT_FULL_ERROR", raising=False)

    def command() -> None:
        # Hydra configures logging for the job (handlers on this test's stderr): put it back.
        loggers = [logging.root, *logging.Logger.manager.loggerDict.values()]
        saved = [
            (lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled)
            for lg in loggers
            if isinstance(lg, logging.Logger)
        ]
        try:
            main()
        finally:
            GlobalHydra.instance().clear()
            for lg, handlers, level, propagate, disabled in saved:
                lg.handlers[:] = handlers
                lg.setLevel(level)
                lg.propagate, lg.disabled = propagate, disabled

    return command


def _a_run(folder: Path) -> Path:
    """A run folder as rcot-train leaves it (the files' contents do not matter here)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"the run's last state")
    (folder / "recipe.txt").write_text("the run's recipe\n")
    return folder


@pytest.mark.parametrize(
    "case", ["existing run", "user's folder", "user's folder, resume", "file", "linked log"]
)
def test_a_run_dir_that_a_new_run_would_spoil_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    marker: Path,
    victim: Path,
    case: str,
) -> None:
    folder = tmp_path / "target"
    args: tuple[str, ...] = ()
    if case == "existing run":
        _a_run(folder)
        expected = (
            f"run_dir: {folder} holds a run (checkpoints/last.ckpt); pass ckpt_path=last to "
            "resume it, or choose another run_dir (a new or empty folder)"
        )
    elif case == "linked log":  # a run folder from someone else: the log appends to a victim
        (_a_run(folder) / "train.log").symlink_to(victim / "file.txt")
        args = ("ckpt_path=last",)
        expected = (
            f"run_dir: {folder} holds train.log, a symbolic link, and a run writes that file in "
            "place; remove the link (or copy the run folder without links) and run again"
        )
    elif case == "file":
        folder.write_text("mine")
        expected = (
            f"run_dir: {folder} is a file; choose a new or empty folder, or a run folder to "
            "resume with ckpt_path=last"
        )
    else:
        folder.mkdir()
        (folder / "recipe.txt").write_text("my grandmother's recipe\n")
        (folder / "thesis.tex").write_text(PRECIOUS)
        args = ("ckpt_path=last",) if case.endswith("resume") else ()
        expected = (
            f"run_dir: {folder} is not empty and not a run folder of rcot-train (it holds "
            "'recipe.txt', no .hydra/); choose another run_dir: a new or empty folder, or a run "
            "folder to resume with ckpt_path=last"
        )
    before = _snapshot(tmp_path)
    command = _train_cli(monkeypatch, tmp_path, f"run_dir={folder}", *args)
    code, line = one_line_exit("rcot-train", command, capsys)
    assert (code, line) == (2, f"rcot-train: error: {expected}")
    assert _snapshot(tmp_path) == before  # nothing written, nothing replaced


@pytest.mark.integration
def test_a_recipe_txt_that_is_not_ours_is_kept(
    compose_train, tmp_path: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A folder picked by hand (hydra.run.dir=..., or the Python API) skips the run_dir checks.
    (tmp_path / "recipe.txt").write_text("my grandmother's recipe\n")
    with caplog.at_level(logging.WARNING):
        run(compose_train(*FIRST))
    assert (tmp_path / "recipe.txt").read_text() == "my grandmother's recipe\n"
    assert f"not writing {tmp_path / 'recipe.txt'}" in caplog.text
    (tmp_path / "recipe.txt").unlink()  # a link left in a run folder from someone else
    (tmp_path / "recipe.txt").symlink_to(victim / "file.txt")
    run(compose_train(*RESUME))


def test_run_dir_checks_let_runs_continue(tmp_path: Path) -> None:
    from rcot_lightning.cli.run_folder import check_run_dir

    run_folder = _a_run(tmp_path / "run")
    check_run_dir(run_folder, "last")  # resuming it
    check_run_dir(run_folder, str(run_folder / "checkpoints" / "last.ckpt"))
    started = tmp_path / "started"  # a run that failed before training, or this launch's
    (started / ".hydra").mkdir(parents=True)  # other processes setting the folder up
    check_run_dir(started)
    check_run_dir(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_run_dir(tmp_path / "empty")
    # SLURM's requeued job: Lightning resumes from its hpc checkpoint by itself.
    (run_folder / "hpc_ckpt_1.ckpt").write_bytes(b"")
    check_run_dir(run_folder, None, {"SLURM_JOB_ID": "7"})
    with pytest.raises(RCOTError, match="pass ckpt_path=last to resume it"):
        check_run_dir(run_folder, None, {})
    (run_folder / "checkpoints" / "last.ckpt").unlink()
    (run_folder / "hpc_ckpt_1.ckpt").unlink()
    with pytest.raises(RCOTError, match=r"holds a run \(recipe.txt\); it has no checkpoint"):
        check_run_dir(run_folder)


@pytest.mark.parametrize("name", ["best", "hpc", "registry"])
def test_special_ckpt_paths_are_one_line(
    compose_train, capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    from lightning_utilities.core.imports import module_available

    if name == "registry" and module_available("litmodels"):
        pytest.skip("litmodels is installed: Lightning resolves the registry")
    expected = {
        "best": "ckpt_path=best: this run has no best checkpoint before it trains (a run resumes "
        "from its last state); pass ckpt_path=last (with run_dir=<run folder>) or "
        "ckpt_path=<run folder>/checkpoints/best-<...>.ckpt",
        "hpc": f"ckpt_path=hpc: {tmp_path} holds no hpc_ckpt_<n>.ckpt (Lightning writes them on "
        "SLURM's auto-requeue signal); pass ckpt_path=last with run_dir=<run folder>, or "
        "ckpt_path=<file>.ckpt",
        "registry": "ckpt_path=registry: Lightning's model registry needs the litmodels package "
        "(pip install litmodels); pass ckpt_path=last (with run_dir=<run folder>) or "
        "ckpt_path=<file>.ckpt",
    }[name]
    cfg = compose_train("trainer.max_steps=2", f"ckpt_path={name}")
    code, line = one_line_exit("rcot-train", lambda: run(cfg), capsys)
    assert (code, line) == (2, f"rcot-train: error: {expected}")
    assert not (tmp_path / "checkpoints").exists()


def test_ckpt_path_hpc_names_the_newest_hpc_checkpoint(tmp_path: Path) -> None:
    from rcot_lightning.cli.train import _special_path

    for n in (2, 10, 9):
        (tmp_path / f"hpc_ckpt_{n}.ckpt").write_bytes(b"")
    (tmp_path / "hpc_ckpt_x.ckpt").write_bytes(b"")
    trainer = SimpleNamespace(default_root_dir=str(tmp_path))
    assert _special_path("hpc", trainer) == str(tmp_path / "hpc_ckpt_10.ckpt")


def test_ckpt_path_last_names_last_ckpt_and_warns_of_an_older_versions_last_v1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rcot_lightning.cli.train import _special_path

    (tmp_path / "last.ckpt").write_bytes(b"")
    (tmp_path / "last-v1.ckpt").write_bytes(b"")  # a moved run resumed by an older version
    callback = SimpleNamespace(dirpath=str(tmp_path), CHECKPOINT_NAME_LAST="last")
    with caplog.at_level(logging.WARNING):
        path = _special_path("last", SimpleNamespace(checkpoint_callback=callback))
    assert path == str(tmp_path / "last.ckpt")
    assert "also holds last-v1.ckpt" in caplog.text and "\n" not in caplog.records[0].message


@pytest.mark.parametrize("spent", ["abc", float("nan"), -5.0, None, [1], True])
def test_a_crafted_cpu_budget_state_counts_as_nothing_spent(spent: object) -> None:
    from rcot_lightning.callbacks.cpu_budget import CPUBudget

    budget = CPUBudget(minutes=1.0)
    budget.load_state_dict({"spent_seconds": spent})
    assert budget.spent_seconds == 0.0
    budget.load_state_dict({"spent_seconds": 12.5})
    assert budget.spent_seconds == 12.5
