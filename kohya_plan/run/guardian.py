"""The guardian: a small process between kohya-plan and the trainer, so that nothing runs on
unobserved and nothing of the trainer's output is lost, whatever happens to kohya-plan.

kohya-plan (the supervisor) starts ``python -m kohya_plan.run.guardian`` in a new session and
writes one JSON line to its stdin: what to run and where to log. The guardian then

- becomes a child subreaper (Linux), so that every descendant of the trainer — also one that
  double-forks or calls setsid — stays its descendant and is stopped at the end;
- asks for SIGHUP when kohya-plan dies (PR_SET_PDEATHSIG, Linux) and also watches its stdin
  (the lifeline: end of file when kohya-plan is gone, on every system);
- starts the trainer in its own process group with SIGINT and SIGTERM at their defaults (a
  kohya-plan started with ``&`` from a script inherits SIGINT ignored, and a trainer that
  inherited that would train on through a graceful stop);
- writes everything the trainer prints to train.log itself, byte for byte and flushed as it
  comes, then passes it on to kohya-plan (stdout); a log that cannot be written (a full disk)
  is reported and the training goes on; if kohya-plan does not keep up, the guardian drops
  what it cannot pass on (never blocking the trainer) and says how much: the log has it all;
- stops the trainer on request (``stop``/``kill`` lines on stdin; SIGTERM / SIGUSR2 from
  `kohya-plan stop` when kohya-plan is gone): SIGINT to the group (sd-scripts saves on
  KeyboardInterrupt), after ``grace_s`` SIGTERM to every descendant, then SIGKILL; when
  kohya-plan goes away it does the same by itself, and keeps logging until the end;
- ends strays (processes left when the trainer ended on its own): SIGTERM, then SIGKILL;
- records the trainer's pid, start time and, at the end, its exit status in trainer.json;
- reports to kohya-plan as JSON lines on stderr (started, escalation, log_error, dropped, exit).

It exits once every process of the trainer is gone, with the trainer's exit status (128 + N for
a death by signal N; the exact status is in the "exit" report). Stdlib and psutil only.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from kohya_plan.run.prctl import set_child_subreaper, set_parent_death_signal
from kohya_plan.rundir import write_json_atomic

_WINDOWS = sys.platform == "win32"
_READ_SIZE = 65536
_POLL_S = 0.05
_DRAIN_S = 2.0
_FLUSH_S = 5.0
_DROP_REPORT_S = 1.0
_ESCALATIONS = {1: "graceful", 2: "terminated", 3: "killed"}
# The signal the kernel sends the guardian when kohya-plan dies (the guardian has no
# terminal, so SIGHUP has no other meaning for it).
DEATH_SIGNAL = signal.SIGHUP if hasattr(signal, "SIGHUP") else signal.SIGTERM
# `kohya-plan stop --now` when kohya-plan is gone: kill the trainer at once.
KILL_SIGNAL = getattr(signal, "SIGUSR2", signal.SIGTERM)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _is_alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Guardian:
    """One trainer, its log, its stop; see the module docstring."""

    def __init__(self, spec: dict[str, Any], stdin_rest: bytes = b"") -> None:
        self.stdin_rest = stdin_rest
        self.argv = [str(a) for a in spec["argv"]]
        self.env = {str(k): str(v) for k, v in dict(spec.get("env") or {}).items()} or None
        self.cwd = spec.get("cwd")
        self.log_path = str(spec["log"])
        self.record_path = spec.get("record")
        self.notes_path = spec.get("notes")
        self.grace_s = float(spec.get("grace_s", 30.0))
        self.term_grace_s = float(spec.get("term_grace_s", 10.0))
        self.kill_wait_s = float(spec.get("kill_wait_s", 5.0))
        self.forward_limit = int(spec.get("forward_limit", 16 << 20))
        self.supervisor_pid = int(spec.get("supervisor_pid") or os.getppid())
        self.events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.me = psutil.Process()
        self.trainer: subprocess.Popen[bytes] | None = None
        self.trainer_created: float | None = None
        self.level = 0
        self.interrupted_outsiders = False
        self.deadline = 0.0
        self.escalation: str | None = None
        self.stop_reason: str | None = None
        self.supervisor_gone = False
        self.status_lock = threading.Lock()
        # Output: the pump writes the log and queues chunks for the forwarder.
        self.pending: collections.deque[bytes] = collections.deque()
        self.pending_bytes = 0
        self.pending_cv = threading.Condition()
        self.forwarding = True
        self.reading_done = threading.Event()
        self.dropped = 0
        self.dropped_reported_at = 0.0
        self.log_fd: int | None = None
        self.log_error: str | None = None
        self.log_lost = 0
        self.started_at = time.time()

    # -- reports ---------------------------------------------------------------------------

    def report(self, **event: Any) -> None:
        """A JSON line to kohya-plan (stderr); nothing when kohya-plan is gone."""
        if self.supervisor_gone:
            return
        line = (json.dumps(event) + "\n").encode("utf-8")
        with self.status_lock, contextlib.suppress(OSError):
            _write_all(2, line)

    def note(self, text: str) -> None:
        """A line in kohya-plan.log (the run's own notes beside train.log)."""
        if not self.notes_path:
            return
        with contextlib.suppress(OSError), open(self.notes_path, "a", encoding="utf-8") as f:
            f.write(f"{_now()} guardian: {text}\n")

    def record(self, **extra: Any) -> None:
        if not self.record_path or self.trainer is None:
            return
        if self.trainer_created is None:
            # Once, while it runs: after its end the pid is gone (and may be reused).
            self.trainer_created = _create_time(self.trainer.pid)
        data = {
            "pid": self.trainer.pid,
            "create_time": self.trainer_created,
            "guardian_pid": os.getpid(),
            "guardian_create_time": self.me.create_time(),
            "started_at": self.started_at,
            "ended": False,
            **extra,
        }
        with contextlib.suppress(OSError):
            write_json_atomic(Path(self.record_path), data)

    # -- setting up ------------------------------------------------------------------------

    def install_signals(self) -> None:
        def ignore(signum: int, frame: object) -> None:
            # A Python handler, not SIG_IGN: the trainer must get SIGINT at its default, and
            # handlers (unlike SIG_IGN) are reset by exec.
            return

        def stop(signum: int, frame: object) -> None:
            self.events.put(("stop", signal.Signals(signum).name))

        def gone(signum: int, frame: object) -> None:
            self.events.put(("gone", "parent-death signal"))

        def kill(signum: int, frame: object) -> None:
            self.events.put(("kill", signal.Signals(signum).name))

        signal.signal(signal.SIGINT, ignore)
        signal.signal(signal.SIGTERM, stop)
        if hasattr(signal, "SIGBREAK"):
            signal.signal(signal.SIGBREAK, ignore)
        if DEATH_SIGNAL != signal.SIGTERM:
            signal.signal(DEATH_SIGNAL, gone)
        if KILL_SIGNAL != signal.SIGTERM:
            signal.signal(KILL_SIGNAL, kill)

    def watch_supervisor(self) -> None:
        set_child_subreaper(True)
        if set_parent_death_signal(DEATH_SIGNAL) and os.getppid() != self.supervisor_pid:
            self.events.put(("gone", "kohya-plan ended before the guardian was ready"))

    def open_log(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        try:
            self.log_fd = os.open(self.log_path, flags, 0o644)
        except OSError as exc:
            self.log_failed(exc)

    def log_failed(self, exc: OSError) -> None:
        if self.log_error is None:
            self.log_error = f"{exc.strerror or exc} ({self.log_path})"
            self.report(event="log_error", error=self.log_error)
            self.note(f"train.log cannot be written: {self.log_error}; the training goes on")

    def spawn(self) -> bool:
        kwargs: dict[str, Any] = {}
        if not _WINDOWS:
            # Defaults for the stop signals whatever kohya-plan inherited (see the docstring).
            kwargs["restore_signals"] = True
        try:
            self.trainer = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                bufsize=0,
                **kwargs,
            )
        except OSError as exc:
            self.report(
                event="spawn_error",
                errno=exc.errno,
                error=str(exc.strerror or exc),
                filename=str(exc.filename or self.argv[0]),
            )
            return False
        self.record()
        pid = self.trainer.pid
        self.report(
            event="started",
            pid=pid,
            create_time=self.trainer_created,
            guardian_pid=os.getpid(),
        )
        self.note(f"trainer started (pid {pid})")
        return True

    # -- threads -----------------------------------------------------------------------------

    def pump(self) -> None:
        """Trainer output → train.log (first) → the forward queue."""
        trainer = self.trainer
        assert trainer is not None
        assert trainer.stdout is not None
        fd = trainer.stdout.fileno()
        try:
            while True:
                try:
                    chunk = os.read(fd, _READ_SIZE)
                except OSError:
                    break
                if not chunk:
                    break
                self.write_log(chunk)
                self.forward(chunk)
        finally:
            self.reading_done.set()
            with self.pending_cv:
                self.pending_cv.notify_all()

    def write_log(self, chunk: bytes) -> None:
        if self.log_fd is None:
            self.log_lost += len(chunk)
            return
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self.log_fd, view) :]
        except OSError as exc:
            self.log_lost += len(view)  # what a full disk took in part is kept
            self.log_failed(exc)

    def forward(self, chunk: bytes) -> None:
        with self.pending_cv:
            if not self.forwarding:
                return
            if self.pending_bytes + len(chunk) > self.forward_limit:
                self.dropped += len(chunk)
                now = time.monotonic()
                if now - self.dropped_reported_at >= _DROP_REPORT_S:
                    self.dropped_reported_at = now
                    self.report(event="dropped", bytes=self.dropped)
                return
            self.pending.append(chunk)
            self.pending_bytes += len(chunk)
            self.pending_cv.notify()

    def forwarder(self) -> None:
        """The forward queue → kohya-plan (stdout); a closed pipe means kohya-plan is gone."""
        while True:
            with self.pending_cv:
                while not self.pending and not self.reading_done.is_set():
                    self.pending_cv.wait()
                if not self.pending:
                    return
                chunk = self.pending.popleft()
                self.pending_bytes -= len(chunk)
            try:
                _write_all(1, chunk)
            except OSError:
                self.events.put(("gone", "its output pipe closed"))
                with self.pending_cv:
                    self.forwarding = False
                    self.pending.clear()
                    self.pending_bytes = 0
                return

    def control(self) -> None:
        """Commands from kohya-plan on stdin; end of file: kohya-plan is gone (the lifeline).

        Raw reads of fd 0 (no buffered reader: a daemon thread blocked in one would stall
        the interpreter's shutdown).
        """
        buffered = self.stdin_rest
        while True:
            while b"\n" in buffered:
                line, _, buffered = buffered.partition(b"\n")
                word, _, rest = line.decode("utf-8", "replace").strip().partition(" ")
                if word in ("stop", "kill"):
                    self.events.put((word, rest or word))
            try:
                data = os.read(0, 4096)
            except OSError:
                data = b""
            if not data:
                self.events.put(("gone", "its lifeline closed"))
                return
            buffered += data

    # -- the process tree --------------------------------------------------------------------

    def tree(self) -> list[psutil.Process]:
        """Every live descendant (orphans come back here: subreaper).

        Without a subreaper (macOS), also every process still in the guardian's session or
        process group: a double-forked one that stayed there.
        """
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            found = {p.pid: p for p in self.me.children(recursive=True)}
        if not _WINDOWS and not sys.platform.startswith("linux"):
            me = os.getpid()
            for pid in psutil.pids():
                if pid == me or pid in found:
                    continue
                with contextlib.suppress(OSError, psutil.Error):
                    if os.getsid(pid) == me or os.getpgid(pid) == me:
                        found[pid] = psutil.Process(pid)
        return [p for p in found.values() if _is_alive(p)]

    def reap_adopted(self) -> None:
        """Reap zombies of adopted orphans (never the trainer: Popen reaps it)."""
        if _WINDOWS or self.trainer is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in self.me.children():
                if child.pid == self.trainer.pid:
                    continue
                with contextlib.suppress(psutil.Error, ChildProcessError, OSError):
                    if child.status() == psutil.STATUS_ZOMBIE:
                        os.waitpid(child.pid, os.WNOHANG)

    def escalate(self, level: int, *, record: bool = True) -> None:
        if level == 1:
            self.interrupt_group()
            wait = self.grace_s
        else:
            for p in self.tree():
                with contextlib.suppress(psutil.Error):
                    if level == 2:
                        p.terminate()
                    else:
                        p.kill()
            wait = self.term_grace_s if level == 2 else self.kill_wait_s
        self.level = level
        self.deadline = time.monotonic() + wait
        if record:
            self.escalation = _ESCALATIONS[level]
            self.report(event="escalation", level=self.escalation)
            self.note(f"stop: {self.escalation} ({self.stop_reason})")

    def interrupt_group(self) -> None:
        """What a Ctrl-C in the trainer's own terminal would send: SIGINT to the group."""
        if sys.platform == "win32":
            with contextlib.suppress(OSError):
                os.kill(os.getpid(), signal.CTRL_BREAK_EVENT)  # our group: CREATE_NEW_PROCESS_GROUP
            return
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(0), signal.SIGINT)

    def interrupt_outsiders(self, alive: list[psutil.Process]) -> None:
        if _WINDOWS:
            return
        group = os.getpgid(0)
        for p in alive:
            with contextlib.suppress(OSError, psutil.Error):
                if os.getpgid(p.pid) != group:
                    p.send_signal(signal.SIGINT)

    def handle(self, kind: str, detail: str) -> None:
        trainer = self.trainer
        assert trainer is not None
        if kind == "gone":
            if self.supervisor_gone:
                return
            self.supervisor_gone = True
            with self.pending_cv:
                self.forwarding = False
                self.pending.clear()
                self.pending_bytes = 0
            self.note(f"kohya-plan (pid {self.supervisor_pid}) is gone ({detail})")
            if self.level == 0 and trainer.poll() is None:
                self.stop_reason = "supervisor-gone"
                self.escalate(1)
        elif kind == "kill":
            if self.level < 3:
                self.stop_reason = self.stop_reason or detail
                self.escalate(3)
        elif kind == "stop" and self.level == 0 and trainer.poll() is None:
            self.stop_reason = detail
            self.escalate(1)

    # -- the whole run -------------------------------------------------------------------------

    def run(self) -> int:
        self.install_signals()
        self.watch_supervisor()
        self.open_log()
        if not self.spawn():
            return 127
        trainer = self.trainer
        assert trainer is not None
        threads = [
            threading.Thread(target=self.pump, name="pump", daemon=True),
            threading.Thread(target=self.forwarder, name="forwarder", daemon=True),
            threading.Thread(target=self.control, name="control", daemon=True),
        ]
        for thread in threads:
            thread.start()
        gone_at: float | None = None
        while True:
            while not self.events.empty():
                self.handle(*self.events.get())
            now = time.monotonic()
            rc = trainer.poll()
            self.reap_adopted()
            if rc is not None:
                alive = self.tree()
                if not alive:
                    gone_at = gone_at or now
                elif self.level == 0:
                    # Strays: the trainer ended on its own and left processes behind.
                    self.note(f"trainer ended; stopping {len(alive)} process(es) it left")
                    self.escalate(2, record=False)
                elif self.level == 1 and not self.interrupted_outsiders:
                    # The trainer has stopped; processes that left its process group (a
                    # daemon that called setsid) never got the SIGINT: they get theirs now.
                    self.interrupted_outsiders = True
                    self.interrupt_outsiders(alive)
                elif now >= self.deadline:
                    if self.level == 3:
                        gone_at = gone_at or now  # SIGKILL long ago: nothing more to do
                    else:
                        self.escalate(self.level + 1)
            elif self.level and now >= self.deadline and self.level < 3:
                self.escalate(self.level + 1)
            elif self.level == 3 and now >= self.deadline:
                gone_at = gone_at or now
            if gone_at is not None and (self.reading_done.is_set() or now - gone_at >= _DRAIN_S):
                break
            time.sleep(_POLL_S)
        return self.finish(trainer.returncode)

    def finish(self, rc: int | None) -> int:
        if not self.supervisor_gone:
            # Pass on what is still queued before saying goodbye.
            deadline = time.monotonic() + _FLUSH_S
            while time.monotonic() < deadline:
                with self.pending_cv:
                    if not self.pending or not self.forwarding:
                        break
                time.sleep(0.01)
        if self.log_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.log_fd)
        status = rc if rc is not None else -int(signal.SIGKILL if not _WINDOWS else 9)
        self.record(
            ended=True,
            ended_at=time.time(),
            exit_status=rc,
            escalation=self.escalation,
            stop_reason=self.stop_reason,
            supervisor_gone=self.supervisor_gone,
            log_error=self.log_error,
            log_lost_bytes=self.log_lost,
        )
        self.note(f"trainer ended with exit status {rc}")
        self.report(
            event="exit",
            status=rc,
            escalation=self.escalation,
            log_lost_bytes=self.log_lost,
            dropped_bytes=self.dropped,
        )
        return status if status >= 0 else 128 - status


def read_spec() -> tuple[bytes, bytes]:
    """The first line on stdin (the spec) and whatever came after it."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


def main() -> int:
    line, rest = read_spec()
    if not line.strip():
        return 2  # kohya-plan went away before it said what to run
    return Guardian(json.loads(line), rest).run()


if __name__ == "__main__":
    sys.exit(main())
