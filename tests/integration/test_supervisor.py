"""The supervisor against a fake trainer: output, exit codes, stops, and no leftovers.

Every stop test starts the fake trainer with a grandchild (as `accelerate launch`
starts the real trainer) and checks with psutil that every pid of the tree is gone
when `run()` returns. Stops are triggered from the output callback once the trainer
prints its ready marker, not from timers, so the tests do not depend on machine speed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from kohya_plan.run.supervisor import RunResult, Supervisor, child_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sessions"),
]

FAKE = Path(__file__).with_name("fake_trainer.py")
LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
READY = b"fake-trainer: ready\n"


class Harness:
    """A Supervisor around the fake trainer that records output and the process tree."""

    def __init__(self, tmp_path: Path, *args: str, **kwargs: Any) -> None:
        self.pid_file = tmp_path / "grandchild.pid"
        self.chunks: list[bytes] = []
        self.tree: set[int] = set()
        self.on_ready = lambda: None
        argv = [sys.executable, str(FAKE), *args]
        if "--grandchild" in args:
            argv += ["--pid-file", str(self.pid_file)]
        kwargs.setdefault("env", None)
        kwargs.setdefault("cwd", None)
        self.sup = Supervisor(
            argv, log_path=tmp_path / "train.log", on_output=self._on_output, **kwargs
        )

    def _on_output(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        if READY in chunk:
            # Everything the trainer started exists now: remember the whole tree.
            assert self.sup.pid is not None
            self.tree = {self.sup.pid}
            with contextlib.suppress(psutil.NoSuchProcess):  # a trainer that ended at once
                children = psutil.Process(self.sup.pid).children(recursive=True)
                self.tree |= {p.pid for p in children}
            self.on_ready()

    @property
    def output(self) -> bytes:
        return b"".join(self.chunks)

    def run(self) -> RunResult:
        result = self.sup.run()
        if self.pid_file.exists():
            # Also known when the trainer ended before the snapshot could see it.
            self.tree.add(self.grandchild())
        assert_tree_gone(self.tree)
        return result

    def grandchild(self) -> int:
        return int(self.pid_file.read_text())


def assert_tree_gone(pids: set[int]) -> None:
    for pid in pids:
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            continue
        # An orphan's zombie waits for whoever adopted it (pid 1) to reap it.
        assert status == psutil.STATUS_ZOMBIE, f"pid {pid} still {status}"


def in_thread(fn: Any, *args: Any) -> None:
    threading.Thread(target=fn, args=args, daemon=True).start()


def signal_self(*signums: int, gap: float = 0.0) -> None:
    """Send signals to this process from another thread, as a terminal would."""

    def send() -> None:
        for signum in signums:
            os.kill(os.getpid(), signum)
            time.sleep(gap)

    in_thread(send)


# -- output ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "stream"),
    [("run1_basic.stderr.txt", "stderr"), ("run1_basic.stdout.txt", "stdout")],
)
def test_log_and_callback_get_the_trainer_bytes_unchanged(
    tmp_path: Path, fixture: str, stream: str
) -> None:
    expected = (LOGS / fixture).read_bytes()
    h = Harness(
        tmp_path, "--replay", str(LOGS / fixture), "--stream", stream, "--chunk", "256",
        "--delay", "0.002",
    )  # fmt: skip
    result = h.run()
    assert (tmp_path / "train.log").read_bytes() == expected
    assert h.output == expected
    assert result == RunResult(0, result.duration_s, None, None, tmp_path / "train.log")


def test_log_is_appended_to(tmp_path: Path) -> None:
    (tmp_path / "train.log").write_bytes(b"earlier run\n")
    Harness(tmp_path, "--print-env", "PYTHONUNBUFFERED").run()
    assert (tmp_path / "train.log").read_bytes() == b"earlier run\nPYTHONUNBUFFERED=1\n"


def test_environment_is_unbuffered_and_wide(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--print-env", "PYTHONUNBUFFERED", "COLUMNS", "FROM_CALLER",
                env={"FROM_CALLER": "yes", "PATH": os.environ.get("PATH", "")})  # fmt: skip
    h.run()
    assert h.output == b"PYTHONUNBUFFERED=1\nCOLUMNS=200\nFROM_CALLER=yes\n"
    assert child_env({"COLUMNS": "120"})["COLUMNS"] == "120"
    assert child_env(None)["PYTHONUNBUFFERED"] == "1"


def test_child_runs_in_its_own_session(tmp_path: Path) -> None:
    # The trainer sits in the guardian's session and process group (the guardian is the
    # leader of both), not in kohya-plan's: a Ctrl-C in the terminal reaches kohya-plan only.
    h = Harness(tmp_path, "--print-ids")
    h.run()
    ids = dict(item.split("=") for item in h.output.decode().split())
    assert int(ids["pid"]) == h.sup.pid
    assert int(ids["pgid"]) == int(ids["sid"]) == h.sup.guardian_pid
    assert int(ids["pgid"]) != os.getpgrp()


# -- exit codes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--exit-code", "0"], 0, b""),
        (["--exit-code", "3"], 3, b""),
        (["--crash"], 1, b"RuntimeError: fake trainer crashed"),
        (["--no-data"], 0, b"ERROR    No data found."),
    ],
)
def test_exit_status_passes_through(
    tmp_path: Path, args: list[str], code: int, text: bytes
) -> None:
    h = Harness(tmp_path, *args)
    result = h.run()
    assert result.returncode == code
    assert (result.stop_reason, result.escalation) == (None, None)
    assert text in h.output


def test_natural_exit_ends_a_leftover_grandchild(tmp_path: Path) -> None:
    # The grandchild outlives the trainer and holds the pipe open: run() must not
    # hang on it, and must not leave it behind.
    h = Harness(tmp_path, "--grandchild", "--ready", "--exit-code", "5")
    result = h.run()
    assert h.grandchild() in h.tree
    assert result.returncode == 5
    assert (result.stop_reason, result.escalation) == (None, None)


# -- stops -------------------------------------------------------------------------------


def test_request_stop_from_another_thread_is_graceful(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--sleep", "30", grace_s=20)
    h.on_ready = lambda: in_thread(h.sup.request_stop, "test asked")
    result = h.run()
    assert (result.stop_reason, result.escalation) == ("requested", "graceful")
    assert result.returncode == 130
    assert b"interrupted, saving" in h.output
    assert h.sup.stop_detail == "test asked"
    assert result.duration_s < 10
    assert h.grandchild() in h.tree


def test_graceful_stop_waits_for_an_orphaned_trainer(tmp_path: Path) -> None:
    # As with accelerate: the root ends at once on SIGINT while its child is still
    # saving; the grace period covers the whole tree, not just the root.
    h = Harness(tmp_path, "--grandchild", "--grandchild-save", "0.5", "--ready", "--sleep",
                "30", grace_s=20)  # fmt: skip
    h.on_ready = lambda: h.sup.request_stop("test")
    result = h.run()
    assert (result.stop_reason, result.escalation) == ("requested", "graceful")
    assert result.returncode == 130
    assert h.output.endswith(b"grandchild: saved\n")
    assert 0.5 <= result.duration_s < 10


def test_nan_frame_without_newline_reaches_the_callback(tmp_path: Path) -> None:
    # tqdm frames end with no newline, and the trainer then sleeps for 30 s: the
    # stop proves that output is streamed as it comes, not per line or at the end.
    h = Harness(tmp_path, "--nan", "--sleep", "30", grace_s=20)

    def on_output(chunk: bytes) -> None:
        h.chunks.append(chunk)
        if b"avr_loss=nan]" in chunk:
            h.sup.request_stop("loss is NaN")

    h.sup.on_output = on_output
    result = h.run()
    assert (result.stop_reason, result.escalation) == ("requested", "graceful")
    assert h.output.startswith(b"\rsteps:")


def test_ignored_sigint_escalates_to_sigterm(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--ignore-sigint", "--sleep", "30",
                grace_s=0.3, term_grace_s=5)  # fmt: skip
    h.on_ready = lambda: h.sup.request_stop("test")
    result = h.run()
    assert (result.stop_reason, result.escalation) == ("requested", "terminated")
    assert result.returncode == -signal.SIGTERM
    assert 0.3 <= result.duration_s < 5


def test_ignored_sigint_and_sigterm_escalate_to_sigkill(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--ignore-sigint", "--ignore-sigterm",
                "--sleep", "30", grace_s=0.3, term_grace_s=0.3)  # fmt: skip
    h.on_ready = lambda: h.sup.request_stop("test")
    result = h.run()
    assert (result.stop_reason, result.escalation) == ("requested", "killed")
    assert result.returncode == -signal.SIGKILL
    assert 0.6 <= result.duration_s < 5


def test_kill_now(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--sleep", "30")
    h.on_ready = lambda: in_thread(h.sup.kill_now)
    result = h.run()
    assert (result.stop_reason, result.escalation) == ("requested", "killed")
    assert result.returncode == -signal.SIGKILL


# -- signals to kohya-plan itself ---------------------------------------------------------


@pytest.fixture
def sentinel_handlers() -> Any:
    """Custom SIGINT/SIGTERM handlers in place during the test, restored after it."""

    def sentinel(signum: int, frame: Any) -> None:
        raise AssertionError(f"signal {signum} reached the previous handler")

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, sentinel)
    yield sentinel
    for s, old in saved.items():
        signal.signal(s, old)


@pytest.mark.parametrize(
    ("signum", "reason"), [(signal.SIGINT, "interrupt"), (signal.SIGTERM, "terminate")]
)
def test_signal_to_supervisor_stops_gracefully(
    tmp_path: Path, sentinel_handlers: Any, signum: int, reason: str
) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--sleep", "30", grace_s=20)
    h.on_ready = lambda: signal_self(signum)
    result = h.run()  # returns normally: no KeyboardInterrupt, no sentinel call
    assert (result.stop_reason, result.escalation) == (reason, "graceful")
    assert result.returncode == 130
    assert h.sup.stop_detail == signal.Signals(signum).name
    assert signal.getsignal(signal.SIGINT) is sentinel_handlers
    assert signal.getsignal(signal.SIGTERM) is sentinel_handlers


def test_second_sigint_kills_at_once(tmp_path: Path, sentinel_handlers: Any) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--ignore-sigint", "--sleep", "30",
                grace_s=20, term_grace_s=20)  # fmt: skip
    h.on_ready = lambda: signal_self(signal.SIGINT, signal.SIGINT, gap=0.2)
    result = h.run()
    assert (result.stop_reason, result.escalation) == ("interrupt", "killed")
    assert result.returncode == -signal.SIGKILL
    assert result.duration_s < 5
    assert signal.getsignal(signal.SIGINT) is sentinel_handlers


# -- errors and the context manager ---------------------------------------------------------


def test_callback_error_kills_the_tree(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--sleep", "30")

    def boom() -> None:
        raise ValueError("parser bug")

    h.on_ready = boom
    with pytest.raises(ValueError, match="parser bug"):
        h.sup.run()
    assert h.tree >= {h.sup.pid, h.grandchild()}
    assert_tree_gone(h.tree)


def test_context_exit_kills_the_tree_of_a_run_in_another_thread(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--grandchild", "--ready", "--sleep", "30")
    ready = threading.Event()
    h.on_ready = ready.set
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(h.sup.run()), daemon=True)
    with pytest.raises(KeyError), h.sup:  # noqa: PT012
        worker.start()
        assert ready.wait(10)
        raise KeyError("caller failed")
    worker.join(5)
    assert_tree_gone(h.tree)
    assert results[0].escalation == "killed"
