"""The display never stops or kills the training: a closed stdout (`| head -1`), a closed
terminal (SIGHUP: documented as "the run goes on without a display"), an exception in the
view. Each time the run goes on to its end, and summary.json is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from integration.project import BASIC_LOG, fake_project, kohya, only_run_dir, read_json, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes, signals and terminals"),
]

# About 3 s of a real sd-scripts log, in small pieces: the fault lands mid-run.
SLOW = ("--replay", str(BASIC_LOG), "--chunk", "256", "--delay", "0.06")


def _assert_completed(project: Path) -> Path:
    run_dir = only_run_dir(project)
    summary = read_json(run_dir / "summary.json")
    assert summary["outcome"] == "succeeded", summary
    assert (summary["steps_done"], summary["steps_total"]) == (16, 16)
    assert (run_dir / "train.log").read_bytes() == BASIC_LOG.read_bytes()
    return run_dir


def test_a_closed_stdout_does_not_stop_the_training(tmp_path: Path) -> None:
    # `kohya-plan launch plan.toml | head -1`: head reads a line and exits.
    plan = fake_project(tmp_path, *SLOW)
    launch = kohya("launch", plan, "--plain", stderr=subprocess.DEVNULL)
    assert launch.stdout is not None
    first = launch.stdout.readline()
    launch.stdout.close()
    assert first.startswith(b"Run folder:")
    assert launch.wait(60) == 0
    run_dir = _assert_completed(tmp_path)
    assert "display off: the output is closed or gone" in (run_dir / "kohya-plan.log").read_text()


def test_a_closed_terminal_does_not_stop_the_training(tmp_path: Path) -> None:
    import fcntl
    import termios

    plan = fake_project(tmp_path, *SLOW)
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    launch = subprocess.Popen(
        [sys.executable, "-m", "kohya_plan", "launch", str(plan)],  # a terminal: the live bar
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=controlling_terminal,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        while b"Run folder" not in seen:
            seen += os.read(master, 4096)
        log = only_run_dir(tmp_path) / "train.log"
        wait_for(lambda: log.is_file() and b"steps:" in log.read_bytes(), what="training")
    finally:
        os.close(master)  # the terminal goes away: SIGHUP, then EIO on every write
    assert launch.wait(60) == 0
    run_dir = _assert_completed(tmp_path)
    summary = read_json(run_dir / "summary.json")
    assert any("the terminal was closed (SIGHUP)" in note for note in summary["notes"])


def test_sighup_is_documented_as_going_on(tmp_path: Path) -> None:
    plan = fake_project(tmp_path, *SLOW)
    launch = kohya("launch", plan, "--plain")
    wait_for(lambda: (tmp_path / "runs").is_dir() and any((tmp_path / "runs").iterdir()))
    run_dir = only_run_dir(tmp_path)
    wait_for(lambda: (run_dir / "trainer.json").is_file(), what="the trainer")
    launch.send_signal(signal.SIGHUP)
    out, _ = launch.communicate(timeout=60)
    assert launch.returncode == 0, out.decode()
    _assert_completed(tmp_path)
    help_text = subprocess.run(
        [sys.executable, "-m", "kohya_plan", "launch", "--help"], capture_output=True, text=True
    ).stdout
    assert "does NOT stop the training" in " ".join(help_text.split())


class ExplodingView:
    """A view with a bug: it raises on the third event."""

    def __init__(self) -> None:
        self.events = 0

    def event(self, event: Any, state: Any) -> None:
        self.events += 1
        if self.events == 3:
            raise RuntimeError("display bug")

    def notice(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None


def test_an_exception_in_the_display_does_not_stop_the_training(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kohya_plan import display

    monkeypatch.setattr(display, "run_view", lambda mode: ExplodingView())
    plan = fake_project(tmp_path, "--replay", str(BASIC_LOG))
    result = run_cli("launch", plan, "--plain")
    assert result.exit_code == 0, result.output
    run_dir = _assert_completed(tmp_path)
    notes = (run_dir / "kohya-plan.log").read_text()
    assert "display off: the display failed (RuntimeError: display bug)" in notes
