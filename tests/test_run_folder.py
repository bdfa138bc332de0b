"""Every run gets its own folder; processes of one launch share one; resume finds its folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rcot_lightning.cli.run_folder import last_training_run, new_run_folder, run_folder
from rcot_lightning.errors import RCOTError
from tests.conftest import TINY_CLI, cli_env


def test_runs_started_together_get_distinct_folders(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: new_run_folder(tmp_path, {}), range(8)))
    assert len(set(folders)) == 8 and all(f.is_dir() for f in folders)
    stamps = {re.sub(r"_\d+$", "", f.name) for f in folders}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", s) for s in stamps)


def test_slurm_processes_of_one_step_share_a_folder_and_runs_in_one_job_do_not(
    tmp_path: Path,
) -> None:
    step = {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "4"}
    assert (
        new_run_folder(tmp_path, step)
        == new_run_folder(tmp_path, step)
        == tmp_path / ("slurm-42-0")
    )
    # One process per run, twice in one job (e.g. two python commands in one sbatch script).
    single = {"SLURM_JOB_ID": "43", "SLURM_NTASKS": "1"}
    first, second = new_run_folder(tmp_path, single), new_run_folder(tmp_path, single)
    assert (first.name, second.name) == ("slurm-43-0", "slurm-43-0_1")
    # A requeued job continues in its folder (Lightning's hpc checkpoint is there).
    requeued = {**single, "SLURM_RESTART_COUNT": "1"}
    assert new_run_folder(tmp_path, requeued) == first
    torchrun = {"TORCHELASTIC_RUN_ID": "abc"}
    assert new_run_folder(tmp_path, torchrun) == new_run_folder(tmp_path, torchrun)
    # torchrun without a run id: the ranks must still not claim one folder each.
    no_id = {"TORCHELASTIC_RUN_ID": "none", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    ranks = [new_run_folder(tmp_path / "torchrun", no_id) for _ in range(2)]
    assert not [f for f in ranks if f.name.endswith("_1")]  # no suffix: shared by name


def test_run_dir_and_ckpt_path_last_pick_an_existing_run(tmp_path: Path) -> None:
    assert run_folder(str(tmp_path), run_dir="/somewhere/run") == "/somewhere/run"
    with pytest.raises(RCOTError, match="ckpt_path=last: no run under"):
        run_folder(str(tmp_path), ckpt_path="last")
    older, newer = tmp_path / "a", tmp_path / "b"
    for folder in (newer, older):  # older's last.ckpt is written last
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert run_folder(str(tmp_path), ckpt_path="last") == str(older)
    assert Path(run_folder(str(tmp_path))).parent == tmp_path  # otherwise a new folder


@pytest.mark.slow  # two training processes side by side: 15-50 s on a shared 2-core machine
@pytest.mark.integration
def test_two_launches_in_the_same_second_keep_their_own_files(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rcot_lightning.train", *TINY_CLI]
    procs = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=cli_env())
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = sorted((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(folders) == 2
    for folder in folders:
        (out,) = [o for o in outs if f"checkpoints: {folder}/checkpoints\n" in o]
        assert "last: last.ckpt" in out
        assert (folder / "checkpoints" / "last.ckpt").is_file()
        assert (folder / ".hydra" / "overrides.yaml").is_file()


def _training_run(runs: Path, name: str, task: str | None, mtime: float) -> Path:
    """A training run folder with a last.ckpt saved at ``mtime`` and, unless ``task`` is None,
    the ``.hydra/config.yaml`` that names its task."""
    last = runs / name / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    os.utime(last, (mtime, mtime))
    if task is not None:
        (runs / name / ".hydra").mkdir()
        (runs / name / ".hydra" / "config.yaml").write_text(f"task:\n  name: {task}\n  x: 1\n")
    return last


def test_ckpt_path_last_stays_within_the_task(tmp_path: Path) -> None:
    """A derain eval never takes a newer denoise run (issue: it silently used a sigma-50 one)."""
    derain = _training_run(tmp_path, "2026-01-01_00-00-00", "derain", 1e9)
    _training_run(tmp_path, "2026-01-02_00-00-00", "denoise", 1e9 + 100)
    chosen = last_training_run(tmp_path, "derain")
    assert (chosen.checkpoint, chosen.task) == (derain, "derain")
    assert chosen.describe("derain") == (
        f"ckpt_path=last: {derain} (the latest training run 2026-01-01_00-00-00, task derain); "
        "passed over 1 newer run(s) of another task than derain: 2026-01-02_00-00-00 (task "
        "denoise)"
    )
    # Without a task (restore, export) the latest run of any task, named with its task.
    assert last_training_run(tmp_path).describe().endswith("2026-01-02_00-00-00, task denoise)")
    # Runs of other tasks only: refused, naming the newest and how to take it anyway.
    with pytest.raises(RCOTError) as refused:
        last_training_run(tmp_path, "dehaze")
    newest = tmp_path / "2026-01-02_00-00-00" / "checkpoints" / "last.ckpt"
    assert str(refused.value) == (
        f"ckpt_path=last: no training run of task dehaze under {tmp_path} has a "
        "checkpoints/last.ckpt; the latest, 2026-01-02_00-00-00, trained task denoise: pass "
        f"task=denoise to score it as that task, or ckpt_path={newest} to score it as task "
        "dehaze anyway"
    )
    # A run whose task is unknown (no .hydra record) is taken, and says so.
    unknown = _training_run(tmp_path, "copied", None, 1e9 + 200)
    chosen = last_training_run(tmp_path, "derain")
    assert chosen.checkpoint == unknown and chosen.task is None
    assert "task unknown: copied has no .hydra/config.yaml" in chosen.describe("derain")


def test_eval_ckpt_path_last_takes_the_run_of_its_task(
    tmp_path: Path, compose_config, capsys: pytest.CaptureFixture[str]
) -> None:
    from rcot_lightning.cli import app

    runs = tmp_path / "runs"
    derain = _training_run(runs, "a", "derain", 1e9)
    denoise = _training_run(runs, "b", "denoise", 1e9 + 100)
    for task, expected in (("derain", derain), ("denoise", denoise)):
        cfg = compose_config("eval", f"task={task}", "ckpt_path=last", f"train_runs={runs}")
        assert app.checkpoint_of(cfg) == str(expected)
        assert f"ckpt_path=last: {expected} (the latest training run" in capsys.readouterr().out
    cfg = compose_config("eval", "task=derain", f"ckpt_path={denoise}", f"train_runs={runs}")
    assert app.checkpoint_of(cfg) == str(denoise)  # an explicit path: the user asked for it


def test_command_configs_differ_from_trainings_only_in_the_run_folder() -> None:
    """command.yaml copies default.yaml's settings rather than listing it in its defaults (a
    value merged over ${rcot_run_dir:} resolved it, claiming a folder at each composition)."""
    import yaml

    folder = Path(__file__).resolve().parents[1] / "src" / "rcot_lightning" / "conf" / "hydra"
    default, command = (
        yaml.safe_load((folder / f).read_text()) for f in ("default.yaml", "command.yaml")
    )
    assert "defaults" not in command
    assert {k: v for k, v in default.items() if k != "run"} == {
        k: v for k, v in command.items() if k != "run"
    }
    assert command["run"]["dir"] == "${rcot_run_dir:${paths.log_dir}/${task_name}/runs}"


@pytest.mark.integration  # a command in a new process
def test_a_command_leaves_one_run_folder_holding_its_log(tmp_path: Path) -> None:
    """eval, restore and export each left two empty folders beside the real one, and an empty
    log: what they print now also goes to <run>/<command>.log."""
    proc = subprocess.run(
        [sys.executable, "-m", "rcot_lightning.export", "format=torchscript", "output=m.pt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = (tmp_path / "outputs" / "export" / "runs").iterdir()
    log = (folder / "export.log").read_text()
    assert "[rcot_lightning.report][INFO] - model: bundled model denoise-blind" in log
    assert "wrote torchscript to m.pt" in log
    # Printed once on the console, not repeated by the log's console handler.
    assert proc.stdout.count("wrote torchscript to m.pt") == 1


def test_train_resume_with_last_continues_the_latest_run_of_its_own_task(tmp_path: Path) -> None:
    """rcot-train task=derain ckpt_path=last never resumes a newer denoise run as derain."""
    from rcot_lightning.conf.run_dir import HYDRA_RECORD, LAST_CHECKPOINT, run_folder

    for age, (name, task) in enumerate((("new", "denoise"), ("old", "derain"))):
        run = tmp_path / name
        (run / "checkpoints").mkdir(parents=True)
        (run / LAST_CHECKPOINT).write_bytes(b"")
        os.utime(run / LAST_CHECKPOINT, (1000 - age, 1000 - age))
        (run / HYDRA_RECORD).mkdir()
        (run / HYDRA_RECORD / "config.yaml").write_text(f"task:\n  name: {task}\n")
    assert run_folder(str(tmp_path), None, "last", "derain") == str(tmp_path / "old")
    assert run_folder(str(tmp_path), None, "last", "denoise") == str(tmp_path / "new")
    assert run_folder(str(tmp_path), None, "last") == str(tmp_path / "new")  # no task: newest
    with pytest.raises(RCOTError) as refused:
        run_folder(str(tmp_path), None, "last", "sr")
    assert str(refused.value) == (
        f"ckpt_path=last: no run of task sr under {tmp_path} has a checkpoints/last.ckpt; the "
        "latest, new, trained task denoise: pass task=denoise to resume it, or "
        "run_dir=<a run of task sr> ckpt_path=last"
    )
