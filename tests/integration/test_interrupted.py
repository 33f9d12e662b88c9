"""kohya-plan killed under a running trainer (SIGKILL, as a power loss or the OOM killer would):
the guardian stops the trainer the graceful way and logs to the end, `summary` says
"interrupted" and whether the trainer still runs, and no process is left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING

import psutil
import pytest

from integration.project import BASIC_LOG, fake_project, kohya, read_json, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def _run_dir(project: Path) -> Path | None:
    runs = project / "runs"
    found = [p for p in runs.iterdir() if (p / "trainer.json").is_file()] if runs.is_dir() else []
    return found[0] if found else None


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _summary(run_cli, run_dir: Path) -> dict:  # type: ignore[no-untyped-def]
    import json

    result = run_cli("summary", run_dir, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sigkill_of_kohya_plan_stops_the_trainer_and_reads_interrupted(
    tmp_path: Path, run_cli
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    plan = fake_project(
        tmp_path, "--replay", str(BASIC_LOG), "--grandchild", "--pid-file", str(pid_file),
        "--grandchild-save", "0.5", "--sleep", "60",
    )  # fmt: skip
    launch = kohya("launch", plan, "--plain", "--grace", "10")
    tree: list[int] = []
    try:
        run_dir = wait_for(lambda: _run_dir(tmp_path), what="trainer.json")
        wait_for(pid_file.exists, what="the grandchild")
        trainer = read_json(run_dir / "trainer.json")
        tree = [trainer["pid"], trainer["guardian_pid"], int(pid_file.read_text())]
        wait_for(lambda: b"16/16" in (run_dir / "train.log").read_bytes(), what="the replay")

        running = _summary(run_cli, run_dir)
        assert running["outcome"] == "running"
        assert running["steps_done"] == 16
        assert not (run_dir / "summary.json").exists()  # a running run writes its own

        launch.kill()  # SIGKILL: no handler, no cleanup in kohya-plan
        launch.communicate(timeout=10)
        wait_for(lambda: all(_gone(pid) for pid in tree), timeout=20, what="the trainer's end")
    finally:
        _kill_all([launch.pid, *tree])
    log = (run_dir / "train.log").read_bytes()
    assert log.startswith(BASIC_LOG.read_bytes())
    # Written by the guardian after kohya-plan was gone: the log is complete to the end.
    assert b"interrupted, saving" in log
    assert b"grandchild: saved" in log
    record = read_json(run_dir / "trainer.json")
    assert (record["ended"], record["exit_status"], record["supervisor_gone"]) == (True, 130, True)
    assert record["create_time"] == trainer["create_time"] > 0  # kept from its start

    summary = _summary(run_cli, run_dir)
    assert summary["outcome"] == "interrupted"
    assert summary["trainer_running"] is False
    assert summary["cause"]["message"] == "kohya-plan stopped before the trainer ended"
    assert "guardian stopped it the graceful way" in summary["cause"]["advice"]
    assert "exit status 130" in summary["cause"]["advice"]
    assert read_json(run_dir / "summary.json")["outcome"] == "interrupted"
    text = run_cli("summary", run_dir).output
    assert "Run interrupted: kohya-plan stopped before the trainer ended" in text
    notes = (run_dir / "kohya-plan.log").read_text()
    assert "is gone" in notes


def test_a_trainer_outliving_kohya_plan_is_reported_running_and_stop_ends_it(
    tmp_path: Path, run_cli
) -> None:
    # A trainer that ignores SIGINT outlives kohya-plan for the whole grace period.
    plan = fake_project(tmp_path, "--ignore-sigint", "--ready", "--sleep", "60")
    launch = kohya("launch", plan, "--plain", "--grace", "60")
    tree: list[int] = []
    try:
        run_dir = wait_for(lambda: _run_dir(tmp_path), what="trainer.json")
        trainer = read_json(run_dir / "trainer.json")
        tree = [trainer["pid"], trainer["guardian_pid"]]
        launch.kill()
        launch.communicate(timeout=10)
        summary = _summary(run_cli, run_dir)
        assert summary["outcome"] == "interrupted"
        assert summary["trainer_running"] is True
        assert summary["trainer_pid"] == trainer["pid"]
        assert f"still runs (pid {trainer['pid']})" in summary["cause"]["advice"]
        assert not (run_dir / "summary.json").exists()  # not final while the trainer runs

        stopped = run_cli("stop", run_dir, "--now")
        assert stopped.exit_code == 0, stopped.output
        assert "its guardian" in stopped.output
        # The lock is free once the guardian closed its files; it is gone a moment later.
        wait_for(lambda: all(_gone(pid) for pid in tree), timeout=10, what="the tree's end")
    finally:
        _kill_all([launch.pid, *tree])
    summary = _summary(run_cli, run_dir)
    assert summary["outcome"] == "interrupted"
    assert summary["trainer_running"] is False


def test_a_dead_kohya_plan_never_reads_succeeded(tmp_path: Path, run_cli) -> None:
    # The whole log of a successful run is there, but kohya-plan died before it recorded the
    # trainer's exit status: that is not a success.
    plan = fake_project(tmp_path, "--replay", str(BASIC_LOG), "--ready", "--sleep", "60")
    launch = kohya("launch", plan, "--plain", "--grace", "5")
    tree: list[int] = []
    try:
        run_dir = wait_for(lambda: _run_dir(tmp_path), what="trainer.json")
        trainer = read_json(run_dir / "trainer.json")
        tree = [trainer["pid"], trainer["guardian_pid"]]
        wait_for(lambda: b"16/16" in (run_dir / "train.log").read_bytes(), what="the replay")
        launch.kill()
        launch.communicate(timeout=10)
        wait_for(lambda: all(_gone(pid) for pid in tree), timeout=20, what="the trainer's end")
        # Power loss: the guardian's record of the end never made it to the disk either.
        (run_dir / "trainer.json").unlink()
    finally:
        _kill_all([launch.pid, *tree])
    summary = _summary(run_cli, run_dir)
    assert summary["outcome"] == "interrupted"
    assert summary["steps_done"] == 16
    assert "its end was not recorded" in summary["cause"]["advice"]
