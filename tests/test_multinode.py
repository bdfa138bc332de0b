"""Two nodes on one machine, as torchrun and SLURM start them: one run, one process's weights.

The slow tests run the commands of docs/hardware.md ("Two nodes on one machine") as two
processes each, one per "node", with the short test settings appended: torchrun twice (node 0
and node 1, a c10d rendezvous on localhost), with and without ``--rdzv-id``, and two plain
processes with the variables ``srun`` sets for task 0 and task 1. Each launch must exit 0 on
both nodes, leave exactly one run folder and one ``checkpoints/`` folder, and its weights after
8 optimiser steps must equal those of one process trained on the global batch (2 x the batch
per node), as ``tests/test_module_ddp.py`` compares two processes with one: float64, so that
only the algorithm can make the two differ (the sample keys make the gradient penalty's mixing
weights the same whichever rank draws a sample; the training sampler deals a shuffled epoch out
rank by rank, so step i of the two nodes sees the samples of step i of the single process).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from rcot_lightning.cli.app import DDP_STRATEGY, build_trainer
from rcot_lightning.conf.run_dir import new_run_folder
from tests.conftest import TINY, cli_env

ROOT = Path(__file__).resolve().parents[1]
HARDWARE_DOC = ROOT / "docs" / "hardware.md"

#: The short run appended to the documented commands: the tiny model on 8 crops of 32 x 32,
#: 4 iterations of 2 optimiser steps (2 epochs at a global batch of 4), float64.
SHORT = (
    *(o for o in TINY if not o.startswith("data.batch_size=")),
    "trainer.max_steps=8",
    "trainer.val_check_interval=2",
    "trainer.precision=64-true",
)
#: Batch per process on two nodes, and of the single process (the global batch).
PER_NODE, GLOBAL = 2, 4
#: float64 runs: measured within 1e-14 of each other (docs/hardware.md).
ATOL = 1e-9
#: Hang guard of one launch (about 35 s on the shared 2-core machine).
TIMEOUT_S = 400

#: The launcher's variables, removed from the environment the test starts processes with.
LAUNCH_VARS = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
)


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it for a socket bound to port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def documented_commands() -> tuple[str, str]:
    """The torchrun and SLURM lines of docs/hardware.md's "Two nodes on one machine" block."""
    text = HARDWARE_DOC.read_text()
    section = text[text.index("**Two nodes on one machine.**") :]
    start = section.index("```bash\n") + len("```bash\n")
    block = section[start : section.index("```\n", start)]
    lines = [line for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.strip()]
    (torchrun,) = [line for line in lines if line.startswith("torchrun ")]
    (slurm,) = [line for line in lines if line.startswith("SLURM_")]
    return torchrun, slurm


def launch_env(**extra: str) -> dict[str, str]:
    """:func:`cli_env` (one thread, quiet) without any launcher's variables, plus ``extra``."""
    env = cli_env()
    for key in list(env):
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in LAUNCH_VARS:
            del env[key]
    env.update(extra)
    return env


def run_together(
    commands: Sequence[tuple[list[str], Mapping[str, str], float]], cwd: Path
) -> list[tuple[int, str]]:
    """Start each ``(argv, env, delay_s)`` after its delay in ``cwd``; (exit status, output).

    Every command runs in a session of its own, killed whole if it outlives the hang guard.
    """
    procs: list[subprocess.Popen[str]] = []
    logs = []
    try:
        for i, (argv, env, delay) in enumerate(commands):
            time.sleep(delay)
            log = (cwd.parent / f"{cwd.name}-{i}.out").open("w+")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=dict(env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + TIMEOUT_S
        codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    return list(zip(codes, outputs, strict=True))


def the_run(cwd: Path) -> Path:
    """The one run folder under ``cwd``, after checking that it holds the only checkpoints."""
    runs = sorted((cwd / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs  # every rank wrote into the same run folder
    (run,) = runs
    assert sorted(cwd.rglob("checkpoints")) == [run / "checkpoints"]
    assert all(p.parent == run / "checkpoints" for p in cwd.rglob("*.ckpt"))
    assert sorted(cwd.rglob(".hydra")) == [run / ".hydra"]
    return run


def last_checkpoint(run: Path) -> dict[str, Any]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["rcot_iteration"] == 4 and checkpoint["global_step"] == 8
    return checkpoint


def max_difference(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def assert_same_training(two_nodes: dict[str, Any], single: dict[str, Any]) -> float:
    """The two nodes' weights equal the single process's within :data:`ATOL`; returns the
    largest difference. Both trained: the map's Adam moments are not zero."""
    state, reference = two_nodes["state_dict"], single["state_dict"]
    assert all(v.dtype == torch.float64 for v in state.values() if v.is_floating_point())
    difference = max_difference(state, reference)
    print(f"largest weight difference, two nodes vs one process: {difference:.3g}")
    assert difference <= ATOL
    for checkpoint in (two_nodes, single):
        moments = checkpoint["optimizer_states"][0]["state"].values()
        assert max(float(m["exp_avg"].abs().max()) for m in moments) > 0
    return difference


def split_variables(line: str) -> tuple[dict[str, str], list[str]]:
    """``VAR=value ... command args`` as (the variables, the command's words)."""
    words = shlex.split(line)
    split = next(i for i, w in enumerate(words) if not re.match(r"^[A-Z_]+=", w))
    return dict(w.split("=", 1) for w in words[:split]), words[split:]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """last.ckpt of one process trained on the global batch (the reference)."""
    cwd = tmp_path_factory.mktemp("single")
    argv = [sys.executable, "-m", "rcot_lightning.train", "hardware=cpu", *SHORT]
    ((code, out),) = run_together([([*argv, f"data.batch_size={GLOBAL}"], launch_env(), 0)], cwd)
    assert code == 0, out[-3000:]
    assert "iterations: 4  (global steps: 8)" in out
    return last_checkpoint(the_run(cwd))


# ---------------------------------------------------------------- unit tier


def test_the_documented_commands_are_two_nodes_of_one_process() -> None:
    torchrun, slurm = documented_commands()
    for line in (torchrun, slurm):
        assert "trainer.num_nodes=2" in line and "trainer.devices=1" in line
    assert "--nnodes 2 --nproc-per-node 1" in torchrun
    assert "SLURM_NTASKS=2" in slurm and "SLURM_NTASKS_PER_NODE=1" in slurm


def test_strategy_ddp_gets_the_ddp_that_finds_unused_parameters() -> None:
    from omegaconf import OmegaConf

    node = OmegaConf.create(
        {"_target_": "lightning.pytorch.Trainer", "accelerator": "cpu", "strategy": "ddp"}
    )
    trainer = build_trainer(node, logger=False, enable_checkpointing=False)
    assert getattr(trainer.strategy, "_ddp_kwargs", {}).get("find_unused_parameters") is True
    assert DDP_STRATEGY == "ddp_find_unused_parameters_true"


def test_torchrun_ranks_without_a_run_id_take_the_folder_rank_0_claims(tmp_path: Path) -> None:
    """torchrun without --rdzv-id: rank 1, started first, waits for rank 0's folder."""
    import torch.distributed as dist

    port = free_port()
    # Stands in for the store torchrun's agent hosts for its workers.
    agent = dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False)
    env = {
        "TORCHELASTIC_RUN_ID": "none",
        "TORCHELASTIC_USE_AGENT_STORE": "True",
        "TORCHELASTIC_RESTART_COUNT": "0",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    parent = tmp_path / "train" / "runs"
    found: dict[int, Path] = {}

    def rank(r: int) -> None:
        found[r] = new_run_folder(parent, {**env, "RANK": str(r)})

    ranks = [threading.Thread(target=rank, args=(r,)) for r in (1, 0)]
    ranks[0].start()
    time.sleep(0.3)  # rank 0 composes its config later
    ranks[1].start()
    for thread in ranks:
        thread.join(timeout=60)
    assert found[0] == found[1] and list(parent.iterdir()) == [found[0]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", found[0].name)
    # The next launch (a restart) gets a folder of its own, again the same for both ranks.
    restart = {**env, "TORCHELASTIC_RESTART_COUNT": "1"}
    second = [new_run_folder(parent, {**restart, "RANK": r}) for r in ("0", "1")]
    assert second[0] == second[1] != found[0]
    del agent


# ---------------------------------------------------------------- two nodes, real processes


def torchrun_argv(line: str, port: int, rdzv_id: bool) -> list[str]:
    """The documented torchrun line on ``port``, with this environment's torchrun."""
    words = shlex.split(line.replace("localhost:29400", f"localhost:{port}"))
    if not rdzv_id:
        i = words.index("--rdzv-id")
        del words[i : i + 2]
    torchrun = Path(sys.executable).parent / "torchrun"
    launcher = (
        [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    )
    return [*launcher, *words[1:], *SHORT, f"data.batch_size={PER_NODE}"]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("rdzv_id", [True, False], ids=["rdzv-id", "no-id-nodes-2s-apart"])
def test_torchrun_two_nodes_train_like_one_process_on_the_global_batch(
    tmp_path: Path, single_process: dict[str, Any], rdzv_id: bool
) -> None:
    torchrun, _ = documented_commands()
    argv = torchrun_argv(torchrun, free_port(), rdzv_id)
    cwd = tmp_path / "job"
    cwd.mkdir()
    # Node 1 first; without a run id, node 0 (which names the folder) 2 s later.
    delay = 0.0 if rdzv_id else 2.0
    results = run_together([(argv, launch_env(), 0.0), (argv, launch_env(), delay)], cwd)
    for code, out in results:
        assert code == 0, out[-3000:]
    run = the_run(cwd)
    if rdzv_id:
        assert run.name == "torchrun-two-nodes"
    else:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", run.name)
    log = (run / "train.log").read_text()
    assert "2 per device, 4 global (2 devices)" in log
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log  # the second node wrote into the same folder
    assert_same_training(last_checkpoint(run), single_process)


@pytest.mark.slow
@pytest.mark.integration
def test_slurm_two_nodes_train_like_one_process_on_the_global_batch(
    tmp_path: Path, single_process: dict[str, Any]
) -> None:
    _, slurm = documented_commands()
    variables, command = split_variables(slurm)
    variables["MASTER_PORT"] = str(free_port())
    assert command[0] == "python"
    argv = [sys.executable, *command[1:], *SHORT, f"data.batch_size={PER_NODE}"]
    cwd = tmp_path / "job"
    cwd.mkdir()
    tasks = []
    for task in (1, 0):  # what srun sets differs between the two tasks in these two only
        env = launch_env(**{**variables, "SLURM_PROCID": str(task), "SLURM_NODEID": str(task)})
        tasks.append((argv, env, 0.0))
    results = run_together(tasks, cwd)
    for code, out in results:
        assert code == 0, out[-3000:]
    run = the_run(cwd)
    assert run.name == f"slurm-{variables['SLURM_JOB_ID']}-0"
    log = (run / "train.log").read_text()
    assert "2 per device, 4 global (2 devices)" in log
    assert "SLURM auto-requeueing enabled" in log  # Lightning took it for SLURM
    assert_same_training(last_checkpoint(run), single_process)
