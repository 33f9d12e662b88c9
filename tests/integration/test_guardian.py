"""The guardian between kohya-plan and the trainer, with faults injected: a parent that ignores
SIGINT, descendants that double-fork and call setsid, a log that cannot be written."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from integration.test_supervisor import FAKE, LOGS, Harness
from kohya_plan.run.supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sessions"),
]


@pytest.fixture
def daemon_pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where the fake trainer's daemon writes its pid; the daemon is killed if a test fails."""
    path = tmp_path / "daemon.pid"
    yield path
    if path.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(path.read_text()), signal.SIGKILL)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_kohya_plan_that_ignores_sigint_still_stops_the_trainer_gracefully(
    tmp_path: Path,
) -> None:
    # A kohya-plan started with `&` from a script inherits SIGINT ignored; a trainer that
    # inherited that too would train on through the graceful stop (scale lab §1).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        h = Harness(tmp_path, "--grandchild", "--ready", "--sleep", "30", grace_s=20)
        h.on_ready = lambda: h.sup.request_stop("test")
        result = h.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (result.stop_reason, result.escalation) == ("requested", "graceful")
    assert result.returncode == 130
    assert b"interrupted, saving" in h.output
    assert result.duration_s < 10


def test_a_double_forked_setsid_descendant_is_stopped_with_the_run(
    tmp_path: Path, daemon_pid_file: Path
) -> None:
    h = Harness(tmp_path, "--daemon", str(daemon_pid_file), "--ready", "--sleep", "30")
    h.on_ready = lambda: h.sup.request_stop("test")
    result = h.run()
    daemon = int(daemon_pid_file.read_text())
    # The daemon left the trainer's group, so the group's SIGINT missed it; it gets its own
    # once the trainer has stopped: still the graceful way, and long before the grace is over.
    assert result.escalation == "graceful"
    assert result.duration_s < 10
    assert _gone(daemon), f"the setsid'd daemon {daemon} survived the stop"


def test_a_double_forked_setsid_descendant_is_ended_when_the_trainer_ends(
    tmp_path: Path, daemon_pid_file: Path
) -> None:
    h = Harness(tmp_path, "--daemon", str(daemon_pid_file), "--ready", "--exit-code", "0")
    result = h.run()
    daemon = int(daemon_pid_file.read_text())
    assert result.returncode == 0
    assert (result.stop_reason, result.escalation) == (None, None)
    assert _gone(daemon), f"the setsid'd daemon {daemon} outlived the run"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_log_that_cannot_be_written_does_not_stop_the_training(tmp_path: Path) -> None:
    expected = (LOGS / "run1_basic.stderr.txt").read_bytes()
    chunks: list[bytes] = []
    reports: list[dict[str, object]] = []
    sup = Supervisor(
        [sys.executable, str(FAKE), "--replay", str(LOGS / "run1_basic.stderr.txt")],
        env=None,
        cwd=None,
        log_path=Path("/dev/full"),  # every write: ENOSPC, as on a full disk
        on_output=chunks.append,
        on_status=reports.append,
    )
    result = sup.run()
    assert result.returncode == 0
    assert b"".join(chunks) == expected  # the display and the summary still get everything
    assert result.log_error is not None
    assert "No space left on device" in result.log_error
    assert result.log_lost_bytes == len(expected)
    assert any(r["event"] == "log_error" for r in reports)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"),
    reason="mounting a small tmpfs needs root on Linux (the /dev/full test runs everywhere)",
)
def test_a_disk_that_fills_during_the_run_keeps_the_training_going(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(small)]).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        expected = (LOGS / "run1_basic.stderr.txt").read_bytes()
        assert len(expected) > 8 * 1024
        chunks: list[bytes] = []
        sup = Supervisor(
            [sys.executable, str(FAKE), "--replay", str(LOGS / "run1_basic.stderr.txt"),
             "--chunk", "1024"],
            env=None,
            cwd=None,
            log_path=small / "train.log",
            on_output=chunks.append,
        )  # fmt: skip
        result = sup.run()
        written = (small / "train.log").read_bytes()
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert result.returncode == 0
    assert b"".join(chunks) == expected
    assert result.log_error is not None
    assert "No space left on device" in result.log_error
    assert 0 < len(written) <= 8 * 1024
    assert expected.startswith(written)  # complete up to where the disk ran full
    assert result.log_lost_bytes == len(expected) - len(written)
