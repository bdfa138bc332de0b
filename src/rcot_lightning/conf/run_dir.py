"""One folder per run: the name of a new run folder, claimed before anyone else can take it.

The logic of the configs' ``${rcot_run_dir:<parent>,<run_dir>,<ckpt_path>,<task>}`` resolver
(:func:`run_folder`; ``hydra/default.yaml`` names each run's folder with it), so the configs
compose without the entry points; :mod:`rcot_lightning.cli.run_folder` adds which run
``ckpt_path=last`` takes for eval, restore and export.

A run folder named by its start time alone collides when two runs start in the same second, or
when one SLURM job runs twice: the second run then writes into the first one's folder
(overwriting ``.hydra/``, its ``last.ckpt`` becomes ``last-v1.ckpt``). Here a launch of one
process claims its folder with :func:`os.mkdir` (atomic: exactly one caller creates a name) and
takes the next suffix ``_1``, ``_2``, ... when the name is taken.

The processes of one multi-process launch (torchrun, a SLURM step of several tasks) compose
their configs independently and must agree without talking to each other, so they get a name
from the launcher's ids alone, with no suffix: torchrun's run id, or the SLURM job and step,
which are unique per launch (and the same again when SLURM requeues the job, so a requeued job
finds its checkpoints). torchrun started without ``--rdzv-id`` gives its processes no common id:
there rank 0 claims a new folder as a single run would and hands its name to the other ranks
through torchrun's own key-value store (:func:`_torchrun_agreed_folder`), so ranks that start a
second apart, on one machine or several sharing the file system, still write into one folder.
Processes that Lightning starts itself (``trainer.devices=N``) are given the folder of the first
on their command line, so they never reach this module.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from rcot_lightning.errors import RCOTError

__all__ = [
    "HYDRA_RECORD",
    "LAST_CHECKPOINT",
    "check_run_dir",
    "latest_run",
    "new_run_folder",
    "run_folder",
    "run_task",
    "saved_runs",
]

#: Name of the checkpoint a run keeps its final state in (``<run>/checkpoints/last.ckpt``).
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"

#: Hydra's record of the config, the first thing every run of ``rcot-train`` writes into its
#: folder: a folder holding it is a run folder.
HYDRA_RECORD = ".hydra"


def _start_time() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def _torchrun_without_id(env: Mapping[str, str]) -> bool:
    """Whether torchrun started this process and others without a common run id.

    torchrun without ``--rdzv-id`` (and without ``--standalone``) sets the run id ``none``.
    """
    return (
        env.get("TORCHELASTIC_RUN_ID") in ("", "none") and int(env.get("WORLD_SIZE", "1") or 1) > 1
    )


def _launcher_id(env: Mapping[str, str]) -> tuple[str, bool] | None:
    """``(name, shared)`` from torchrun or SLURM; ``shared``: several processes use the name."""
    run_id = env.get("TORCHELASTIC_RUN_ID", "none")
    if run_id not in ("", "none"):
        return f"torchrun-{run_id}", True
    if _torchrun_without_id(env):
        # No common id: rank 0 names the folder (new_run_folder); where torchrun's store cannot
        # be reached, the start time is the best the ranks share (they must not each claim a
        # folder of their own).
        return _start_time(), True
    if "SLURM_JOB_ID" in env:
        step = env.get("SLURM_ARRAY_TASK_ID", env.get("SLURM_STEP_ID", "0"))
        shared = (
            int(env.get("SLURM_NTASKS", "1") or 1) > 1
            or int(env.get("SLURM_RESTART_COUNT", "0") or 0) > 0
        )  # a requeued job continues in its folder
        return f"slurm-{env['SLURM_JOB_ID']}-{step}", shared
    return None


#: How long ranks 1..N-1 of a torchrun launch without ``--rdzv-id`` wait for rank 0 to name the
#: run folder: rank 0 composes the same config at the same time, so seconds are enough; this
#: leaves room for a slow shared file system.
AGREE_TIMEOUT_S = 300.0


def _claim(root: Path, base: str) -> Path:
    """Create ``root/base``, or ``root/base_1``, ``root/base_2``, ... the first nobody had."""
    suffix = 0
    while True:
        folder = root / (base if suffix == 0 else f"{base}_{suffix}")
        try:
            folder.mkdir()
        except FileExistsError:
            suffix += 1
            continue
        return folder


def _torchrun_agreed_folder(root: Path, env: Mapping[str, str]) -> Path | None:
    """The folder rank 0 of a torchrun launch without ``--rdzv-id`` claimed, for every rank.

    torchrun's agent hosts a TCP key-value store at ``MASTER_ADDR:MASTER_PORT`` for its workers
    (``TORCHELASTIC_USE_AGENT_STORE=True``; the process group later uses the same store). Rank 0
    claims a new folder (:func:`_claim`) and stores its name under a key of the parent folder and
    the restart; the other ranks wait for that name. Only the name travels, so ranks whose machines
    mount the shared file system elsewhere find the folder too.

    Returns:
        The folder, or None when the store cannot be reached (the caller falls back to the
        start time, which the ranks of one launch share unless a second turns between them).

    Raises:
        RCOTError: rank 0 named no folder within :data:`AGREE_TIMEOUT_S`.
    """
    if env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true":
        return None
    host, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT", "")
    if not host or not port.isdigit():
        return None
    import torch.distributed as dist

    if not dist.is_available():
        return None
    # The parent's last two parts (``<task>/runs``, ``<task>/multiruns``): the same on every
    # machine, wherever it mounts the shared file system.
    restart = env.get("TORCHELASTIC_RESTART_COUNT", "0")
    key = f"rcot_lightning/run_folder/{restart}/{root.parent.name}/{root.name}"
    try:  # the agent's store is up before torchrun starts its workers
        store = dist.TCPStore(host, int(port), is_master=False, timeout=timedelta(seconds=30))
    except (RuntimeError, OSError):  # DistNetworkError is a RuntimeError
        return None
    store.set_timeout(timedelta(seconds=AGREE_TIMEOUT_S))
    if env.get("RANK", "0") == "0":
        folder = _claim(root, _start_time())
        store.set(key, folder.name)
        return folder
    try:
        name = store.get(key).decode()
    except (RuntimeError, OSError) as err:  # DistStoreError (timeout) is a RuntimeError
        raise RCOTError(
            f"rank {env.get('RANK')} of this torchrun launch waited {AGREE_TIMEOUT_S:.0f} s for "
            f"rank 0 to name its run folder under {root} ({type(err).__name__}); give torchrun "
            "--rdzv-id <name> (the folder is then torchrun-<name>) or run_dir=<folder>"
        ) from err
    folder = root / name
    folder.mkdir(exist_ok=True)
    return folder


def new_run_folder(parent: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Path:
    """Create and return a run folder under ``parent`` that no other run uses.

    Args:
        parent: the folder holding the runs (created if missing).
        env: the environment (default :data:`os.environ`).

    Returns:
        ``parent/<start time>`` (``YYYY-MM-DD_HH-MM-SS``), ``parent/<start time>_1``, ... the
        first name nobody had; for a multi-process launch ``parent/torchrun-<id>`` or
        ``parent/slurm-<job>-<step>`` (the same folder for every process), or under torchrun
        without ``--rdzv-id`` the folder that rank 0 claimed (:func:`_torchrun_agreed_folder`).

    Example:
        >>> import tempfile
        >>> parent = tempfile.mkdtemp()
        >>> a, b = new_run_folder(parent, {}), new_run_folder(parent, {})
        >>> a != b and a.is_dir() and b.is_dir()
        True
        >>> new_run_folder(parent, {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0",
        ...                         "SLURM_NTASKS": "4"}).name
        'slurm-7-0'
    """
    env = os.environ if env is None else env
    root = Path(parent)
    root.mkdir(parents=True, exist_ok=True)
    launcher = _launcher_id(env)
    if launcher is not None and launcher[1]:
        agreed = _torchrun_agreed_folder(root, env) if _torchrun_without_id(env) else None
        if agreed is not None:
            return agreed
        folder = root / launcher[0]
        folder.mkdir(exist_ok=True)
        return folder
    return _claim(root, launcher[0] if launcher is not None else _start_time())


def saved_runs(parent: str | os.PathLike[str]) -> list[Path]:
    """The run folders under ``parent`` that hold a ``checkpoints/last.ckpt``, the one written
    last first."""
    root = Path(parent)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / LAST_CHECKPOINT).is_file()]
    runs.sort(key=lambda p: (p / LAST_CHECKPOINT).stat().st_mtime, reverse=True)
    return runs


def latest_run(parent: str | os.PathLike[str]) -> Path | None:
    """The run folder under ``parent`` whose ``checkpoints/last.ckpt`` was written last."""
    runs = saved_runs(parent)
    return runs[0] if runs else None


def _saved_state(folder: Path) -> str | None:
    """What in the run folder ``folder`` shows that a run trained there, or None.

    A checkpoint (``checkpoints/*.ckpt``, Lightning's ``hpc_ckpt_<n>.ckpt``) or the recipe block
    written when training starts (``recipe.txt``).
    """
    checkpoints = folder / "checkpoints"
    if (folder / LAST_CHECKPOINT).is_file():
        return str(LAST_CHECKPOINT)
    found = sorted(checkpoints.glob("*.ckpt")) if checkpoints.is_dir() else []
    found += sorted(folder.glob("hpc_ckpt_*.ckpt"))
    if found:
        return str(found[0].relative_to(folder))
    return "recipe.txt" if (folder / "recipe.txt").is_file() else None


def _check_links(folder: Path, run_dir: str | os.PathLike[str]) -> None:
    """Refuse a run folder whose files a run writes in place are symbolic links.

    A run folder from someone else could link ``train.log`` (appended to), ``.hydra/`` (its
    files rewritten) or ``recipe.txt`` to any file of the user's. A linked ``checkpoints/``
    folder (e.g. to a bigger disk) is fine: checkpoints are written beside and renamed.
    """
    written = [folder / HYDRA_RECORD, folder / "recipe.txt", *folder.glob("*.log")]
    if (folder / HYDRA_RECORD).is_dir() and not (folder / HYDRA_RECORD).is_symlink():
        written += (folder / HYDRA_RECORD).iterdir()
    for path in written:
        if path.is_symlink():
            raise RCOTError(
                f"run_dir: {run_dir} holds {path.relative_to(folder)}, a symbolic link, and a "
                "run writes that file in place; remove the link (or copy the run folder "
                "without links) and run again"
            )


def check_run_dir(
    run_dir: str | os.PathLike[str],
    ckpt_path: str | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Refuse a ``run_dir`` that a new run would spoil, before anything is written into it.

    Allowed: a missing or empty folder; a run folder of ``rcot-train`` (it holds ``.hydra/``)
    to resume (``ckpt_path`` given), or one where no run has trained yet (a run that failed
    before its first batch, or the folder the other processes of this launch are setting up).
    Also a run folder holding Lightning's ``hpc_ckpt_<n>.ckpt`` under SLURM, which Lightning
    resumes from by itself.

    Args:
        run_dir: the folder given as ``run_dir=...``.
        ckpt_path: the ``ckpt_path`` given with it (None or ``""``: none).
        env: the environment (default :data:`os.environ`).

    Raises:
        RCOTError: ``run_dir`` is a file; a run folder where a run trained, without
            ``ckpt_path`` (a fresh run would mix with it); a folder that is neither empty nor a
            run folder (the run would write its files among the user's); a run folder whose
            log, ``.hydra/`` or ``recipe.txt`` is a symbolic link (written through it).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> check_run_dir(folder / "new"), check_run_dir(folder)
        (None, None)
        >>> _ = (folder / "notes.txt").write_text("mine")
        >>> check_run_dir(folder)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rcot_lightning.errors.RCOTError: run_dir: ... is not empty and not a run folder ...
    """
    env = os.environ if env is None else env
    folder = Path(run_dir).expanduser()
    if not folder.exists():
        return
    if not folder.is_dir():
        raise RCOTError(
            f"run_dir: {run_dir} is a file; choose a new or empty folder, or a run folder to "
            "resume with ckpt_path=last"
        )
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return
    if not (folder / HYDRA_RECORD).is_dir() and not (folder / LAST_CHECKPOINT).is_file():
        raise RCOTError(
            f"run_dir: {run_dir} is not empty and not a run folder of rcot-train (it holds "
            f"{entries[0]!r}, no {HYDRA_RECORD}/); choose another run_dir: a new or empty "
            "folder, or a run folder to resume with ckpt_path=last"
        )
    _check_links(folder, run_dir)
    if ckpt_path not in (None, ""):
        return
    saved = _saved_state(folder)
    if saved is None or ("SLURM_JOB_ID" in env and any(folder.glob("hpc_ckpt_*.ckpt"))):
        return
    resume = (
        "pass ckpt_path=last to resume it, or "
        if saved.endswith(".ckpt")
        else "it has no checkpoint to resume: "
    )
    raise RCOTError(
        f"run_dir: {run_dir} holds a run ({saved}); {resume}choose another run_dir (a new or "
        "empty folder)"
    )


def run_task(folder: str | os.PathLike[str]) -> str | None:
    """The task a training run trained (``task.name`` in its ``.hydra/config.yaml``), or None.

    None when the folder has no readable record (a run copied without ``.hydra/``, a checkpoint
    saved by your own Trainer).

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> (run / HYDRA_RECORD).mkdir()
        >>> _ = (run / HYDRA_RECORD / "config.yaml").write_text("task:\\n  name: derain\\n")
        >>> run_task(run), run_task(tempfile.mkdtemp())
        ('derain', None)
    """
    import yaml

    record = Path(folder) / HYDRA_RECORD / "config.yaml"
    try:
        if not record.is_file() or record.stat().st_size > 1_000_000:
            return None
        config = yaml.safe_load(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    task = config.get("task") if isinstance(config, dict) else None
    name = task.get("name") if isinstance(task, dict) else None
    return name if isinstance(name, str) and name else None


def _latest_of_task(parent: str, runs: list[Path], task: str | None) -> Path:
    """The first of ``runs`` (newest first) whose task is ``task`` or unknown; any if no task."""
    for run in runs:
        if task is None or run_task(run) in (None, task):
            return run
    latest, trained = runs[0], run_task(runs[0])
    raise RCOTError(
        f"ckpt_path=last: no run of task {task} under {parent} has a {LAST_CHECKPOINT}; the "
        f"latest, {latest.name}, trained task {trained}: pass task={trained} to resume it, or "
        f"run_dir=<a run of task {task}> ckpt_path=last"
    )


def run_folder(
    parent: str,
    run_dir: str | None = None,
    ckpt_path: str | None = None,
    task: str | None = None,
) -> str:
    """The folder of this run: ``run_dir`` if given, the latest run to resume, or a new one.

    Args:
        parent: where the task's runs live (``<log_dir>/<task_name>/runs``).
        run_dir: an explicit folder (``run_dir=...`` on the command line): used as it is, so
            a resumed run keeps writing next to its checkpoints; refused when a new run would
            spoil it (:func:`check_run_dir`).
        ckpt_path: ``"last"`` continues the run under ``parent`` that saved a ``last.ckpt``
            most recently, in its own folder: of ``task`` when given (a run of another task is
            never resumed as this one; one whose task is unknown is).
        task: this run's task (``task.name``).

    Raises:
        RCOTError: ``ckpt_path=last`` but no run under ``parent`` has a ``last.ckpt``; a
            ``run_dir`` that :func:`check_run_dir` refuses.
    """
    if run_dir not in (None, ""):
        check_run_dir(run_dir, ckpt_path)
        return str(run_dir)
    if ckpt_path == "last":
        runs = saved_runs(parent)
        if not runs:
            raise RCOTError(
                f"ckpt_path=last: no run under {parent} has a {LAST_CHECKPOINT}; pass "
                "run_dir=<run folder> or ckpt_path=<file>.ckpt"
            )
        return str(_latest_of_task(parent, runs, task))
    return str(new_run_folder(parent))
