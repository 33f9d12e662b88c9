"""`kohya-plan stop RUN_DIR` from another terminal: the same graceful stop as Ctrl-C, also for a
kohya-plan started with SIGINT ignored (`&` in a script); a clear refusal where nothing runs."""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING

import pytest

from integration.project import BASIC_LOG, fake_project, kohya, only_run_dir, read_json, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "background-job"])
def test_stop_from_another_terminal_is_the_graceful_stop(
    tmp_path: Path, run_cli, sigint_ignored: bool
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    plan = fake_project(
        tmp_path, "--replay", str(BASIC_LOG), "--grandchild", "--pid-file", str(pid_file),
        "--grandchild-save", "0.3", "--sleep", "60",
    )  # fmt: skip
    launch = kohya(
        "launch", plan, "--plain", "--grace", "20",
        preexec_fn=_ignore_sigint if sigint_ignored else None,
    )  # fmt: skip
    try:
        wait_for(pid_file.exists, what="the grandchild")
        run_dir = only_run_dir(tmp_path)
        wait_for(lambda: (run_dir / "exit.json").is_file() and "trainer" in read_json(
            run_dir / "exit.json"), what="exit.json naming the trainer")  # fmt: skip
        result = run_cli("stop", run_dir)
        out, _ = launch.communicate(timeout=30)
    finally:
        launch.kill()
    assert result.exit_code == 0, result.output
    assert f"asked kohya-plan (pid {launch.pid})" in result.output
    assert "Run stopped" in result.output
    assert launch.returncode == 130, out.decode()
    summary = read_json(run_dir / "summary.json")
    assert summary["outcome"] == "stopped"
    assert (summary["stop_reason"], summary["escalation"]) == ("stop-command", "graceful")
    log = (run_dir / "train.log").read_bytes()
    assert b"interrupted, saving" in log  # the trainer got SIGINT at its default
    assert b"grandchild: saved" in log

    again = run_cli("stop", run_dir)
    assert again.exit_code == 2
    assert "nothing runs" in again.output
    assert "has ended" in again.output


def test_stop_of_a_run_that_never_ran_is_refused(tmp_path: Path, run_cli) -> None:
    plan = fake_project(tmp_path)
    run_dir = json.loads(run_cli("make", plan, "--json").stdout)["run_dir"]
    result = run_cli("stop", run_dir)
    assert result.exit_code == 2
    assert "never launched" in result.output
    not_a_run = run_cli("stop", tmp_path)
    assert not_a_run.exit_code == 2
    assert "not a run folder" in not_a_run.output
