"""CPU-dependent choices: the busy-machine thread count, and what a command does with it."""

from __future__ import annotations

import os

import pytest
import torch

from rcot_lightning.cli.app import command
from rcot_lightning.hardware import busy_machine_threads


@pytest.mark.parametrize(
    ("cores", "load", "expected"),
    [(2, 0.2, None), (2, 0.6, 1), (2, 1.2, 1), (2, 14.0, 1), (16, 0.4, None), (16, 5.6, 10)],
)
def test_threads_are_the_free_cores_when_other_jobs_hold_some(
    cores: int, load: float, expected: int | None
) -> None:
    chosen = busy_machine_threads(cores=cores, load=load, environ={})
    assert (None if chosen is None else chosen[0]) == expected
    if chosen is not None:
        assert f"threads: {expected} of {cores} cores (load average {load:.1f}" in chosen[1]
        assert f"set OMP_NUM_THREADS={cores} to use every core" in chosen[1]


def test_the_users_omp_num_threads_always_wins() -> None:
    assert busy_machine_threads(cores=2, load=30.0, environ={"OMP_NUM_THREADS": "2"}) is None


def _two_cores_at_load(monkeypatch: pytest.MonkeyPatch, load: float) -> None:
    """This process: 2 cores, the given load average, no OMP_NUM_THREADS."""
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)


def test_a_command_on_a_busy_machine_takes_the_free_cores_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_cores_at_load(monkeypatch, 9.0)
    seen: dict[str, object] = {}

    def task() -> None:
        seen["threads"], seen["env"] = torch.get_num_threads(), os.environ["OMP_NUM_THREADS"]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        command("rcot-test", task)()
    finally:
        torch.set_num_threads(before)
    assert seen == {"threads": 1, "env": "1"}  # torch, and the processes the task starts
    err = capsys.readouterr().err
    assert err.startswith("rcot-test: threads: 1 of 2 cores (load average 9.0: other jobs")
    assert err.count("\n") == 1


def test_a_command_on_an_idle_machine_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_cores_at_load(monkeypatch, 0.1)
    command("rcot-test", lambda: None)()
    assert "OMP_NUM_THREADS" not in os.environ and capsys.readouterr().err == ""
