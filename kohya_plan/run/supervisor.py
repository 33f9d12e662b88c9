"""Run the trainer supervised: its output streamed, a clean stop, and nothing left running.

kohya-plan does not start the trainer itself but a small guardian process (guardian.py) in a
new session, which starts the trainer, writes train.log, and stops the trainer's whole tree —
also when kohya-plan is killed: the guardian learns of that from the kernel (Linux
PR_SET_PDEATHSIG) or from its lifeline pipe, stops the trainer the graceful way and keeps
logging until it is gone. The guardian is a child subreaper (Linux), so descendants that
double-fork or call setsid are still found and stopped; kohya-plan is one too while it
supervises, in case the guardian itself is killed.

A Ctrl-C in the terminal reaches kohya-plan only (the trainer has its own session); kohya-plan
then asks the guardian to stop the trainer deliberately: SIGINT to its process group (sd-scripts
saves on KeyboardInterrupt), after `grace_s` SIGTERM to every process of the tree, then SIGKILL.
A second Ctrl-C kills at once. A closed terminal (SIGHUP) does not stop the training: it is
reported to `on_status` as a "hangup" and the run goes on (see `launch`).

This module stays long because the stop's escalation, the output reader and the guardian's
status messages are one state machine over the same process tree; apart, the order in which a
stop and the trainer's end can race would no longer be visible in one place.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil

from kohya_plan.run.prctl import set_child_subreaper

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from types import FrameType, TracebackType

__all__ = ["STOP_NOW_SIGNAL", "STOP_SIGNAL", "RunResult", "Supervisor", "child_env"]

_WINDOWS = sys.platform == "win32"

# Large reads keep the per-chunk overhead (thread hand-off, callback) small when the trainer
# floods the pipe; os.read returns whatever is there, so small writes still arrive at once.
_READ_SIZE = 65536
# At most this many chunks wait for the callback; beyond that the reader blocks, and the
# guardian (never the trainer) holds back or drops what kohya-plan cannot take.
_QUEUE_CHUNKS = 64
# How often the main loop looks at the guardian, deadlines and stop requests when no output
# arrives; bounds the reaction time to a signal delivered to another thread.
_POLL_S = 0.05
# After SIGKILL: how long to wait for processes to vanish.
_KILL_WAIT_S = 5.0
# Once the guardian is gone: how long to wait for the end of its output.
_DRAIN_S = 2.0
# Beyond the guardian's own deadlines: how long kohya-plan waits for it before killing it.
_GUARDIAN_SLACK_S = 5.0
# Remember the trainer's processes this often, so that they are known even if the guardian
# dies (then they are orphans of kohya-plan, the subreaper).
_TRACK_EVERY_S = 2.0

STOP_SIGNAL = getattr(signal, "SIGUSR1", signal.SIGTERM)
"""What `kohya-plan stop` sends a running kohya-plan: the graceful stop, as Ctrl-C."""
STOP_NOW_SIGNAL = getattr(signal, "SIGUSR2", signal.SIGTERM)
"""What `kohya-plan stop --now` sends: kill the trainer at once, as a second Ctrl-C."""

_EOF = object()


@dataclass(frozen=True)
class RunResult:
    """How a supervised run ended.

    `returncode` is the trainer's exit status as Popen reports it (negative for a death by
    signal; None when it is not known: the guardian died). `stop_reason` is why kohya-plan
    stopped it ('interrupt', 'terminate', 'stop-command', 'requested') or None when it ended on
    its own; `escalation` is the strongest step that was needed ('graceful', 'terminated',
    'killed') or None. `log_error` says why train.log could not (all) be written;
    `dropped_bytes` is output kohya-plan did not keep up with (train.log has it).
    """

    returncode: int | None
    duration_s: float
    stop_reason: str | None
    escalation: str | None
    log_path: Path
    log_error: str | None = None
    log_lost_bytes: int = 0
    dropped_bytes: int = 0


class Supervisor:
    """Run `argv` through the guardian, stream its output, stop it cleanly.

    Use as a context manager: `__exit__` ends the whole process tree, whatever happened.
    `on_output` is called with each raw chunk of merged stdout/stderr, and `on_status` with
    each report (dicts with an "event": started, escalation, log_error, dropped, exit, stall,
    hangup, guardian_error), always from the thread that called `run()`. `hold_fds` are open
    files the guardian inherits and keeps until the trainer is gone (the launch locks).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None,
        cwd: Path | None,
        log_path: Path,
        on_output: Callable[[bytes], None],
        grace_s: float = 30.0,
        term_grace_s: float = 10.0,
        record_path: Path | None = None,
        notes_path: Path | None = None,
        hold_fds: Sequence[int] = (),
        stall_s: float | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = child_env(env)
        self.cwd = cwd
        self.log_path = log_path
        self.on_output = on_output
        self.on_status = on_status
        self.grace_s = grace_s
        self.term_grace_s = term_grace_s
        self.record_path = record_path
        self.notes_path = notes_path
        self.hold_fds = tuple(hold_fds)
        self.stall_s = stall_s
        # Stop and kill requests from other threads and from signal handlers, and the
        # guardian's reports; SimpleQueue.put is reentrant, so a handler may interrupt a put.
        self._control: queue.SimpleQueue[tuple[str, Any, str]] = queue.SimpleQueue()
        self._proc: subprocess.Popen[bytes] | None = None
        self._guardian: psutil.Process | None = None
        self._trainer_pid: int | None = None
        self._trainer_known = threading.Event()
        self._tracked: dict[int, psutil.Process] = {}
        self._running = threading.Event()
        self._done = threading.Event()
        self._stopping = 0  # 0 running, 1 graceful stop asked, 3 kill asked
        self._hard_deadline = float("inf")
        self._stop_reason: str | None = None
        self._escalation: str | None = None
        self._returncode: int | None = None
        self._exit_seen = False
        self._spawn_error: dict[str, Any] | None = None
        self._log_error: str | None = None
        self._log_lost = 0
        self._dropped = 0
        self._guardian_text: list[str] = []
        self._ended = False
        self._last_output = 0.0
        self._stall_reported = False
        # Free text for the stop: the request_stop() reason or the signal's name.
        self.stop_detail: str | None = None

    # -- public API ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The trainer's pid, once the guardian has started it."""
        return self._trainer_pid

    @property
    def guardian_pid(self) -> int | None:
        """The guardian's pid (the trainer's session and process group), once started."""
        return None if self._proc is None else self._proc.pid

    def request_stop(self, reason: str) -> None:
        """Start the graceful stop sequence (thread-safe; a no-op once stopping)."""
        self._control.put(("stop", "requested", reason))

    def kill_now(self) -> None:
        """Kill the whole process tree at once (thread-safe)."""
        if self._running.is_set():
            self._control.put(("kill", "requested", "kill_now"))
        elif self._proc is not None and not self._ended:
            self._kill_tree_now()

    def run(self) -> RunResult:
        """Start the guardian and trainer, stream the output until all is gone, return the result.

        Blocks. On the main thread, SIGINT, SIGTERM and STOP_SIGNAL start the graceful stop
        while it runs, a second one (or STOP_NOW_SIGNAL) kills the tree, and SIGHUP is
        reported as a "hangup". Previous handlers are restored. Raises OSError when the
        trainer cannot be started.
        """
        if self._proc is not None:
            msg = "a Supervisor runs its command once"
            raise RuntimeError(msg)
        self._running.set()
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self._signal_handlers(), _subreaper():
                started = time.monotonic()
                self._proc = self._spawn_guardian()
                self._supervise()
                duration = time.monotonic() - started
        finally:
            self._running.clear()
            self._done.set()
        if self._spawn_error is not None:
            err = self._spawn_error
            raise OSError(err.get("errno") or 0, str(err.get("error")), err.get("filename"))
        return RunResult(
            returncode=self._returncode,
            duration_s=duration,
            stop_reason=self._stop_reason,
            escalation=self._escalation,
            log_path=self.log_path,
            log_error=self._log_error,
            log_lost_bytes=self._log_lost,
            dropped_bytes=self._dropped,
        )

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._running.is_set():
            # run() is busy in another thread: let it do the killing and the reaping.
            self._control.put(("kill", "requested", "context exit"))
            self._done.wait(_KILL_WAIT_S + _DRAIN_S + 1.0)
        elif self._proc is not None and not self._ended:
            self._kill_tree_now()

    # -- starting ----------------------------------------------------------------------------

    def _spawn_guardian(self) -> subprocess.Popen[bytes]:
        import kohya_plan

        # The guardian is this package's module, run by this interpreter: make sure it finds
        # the package even where it is imported from a source folder.
        package_root = str(Path(kohya_plan.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
            kwargs["pass_fds"] = self.hold_fds
        proc = subprocess.Popen(
            [sys.executable, "-m", "kohya_plan.run.guardian"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            bufsize=0,
            **kwargs,
        )
        with contextlib.suppress(psutil.Error):
            self._guardian = psutil.Process(proc.pid)
        spec = {
            "argv": self.argv,
            "env": self.env,
            "cwd": None if self.cwd is None else str(self.cwd),
            "log": str(self.log_path),
            "record": None if self.record_path is None else str(self.record_path),
            "notes": None if self.notes_path is None else str(self.notes_path),
            "grace_s": self.grace_s,
            "term_grace_s": self.term_grace_s,
            "kill_wait_s": _KILL_WAIT_S,
            "supervisor_pid": os.getpid(),
        }
        self._command(json.dumps(spec), proc)
        return proc

    def _command(self, line: str, proc: subprocess.Popen[bytes] | None = None) -> None:
        proc = proc or self._proc
        stdin = proc.stdin if proc is not None else None
        if stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            stdin.write((line + "\n").encode("utf-8"))
            stdin.flush()

    # -- the supervision loop ------------------------------------------------------------------

    def _supervise(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        chunks: queue.Queue[object] = queue.Queue(_QUEUE_CHUNKS)
        quit_reading = threading.Event()
        readers = [
            threading.Thread(
                target=_read_pipe,
                args=(proc.stdout, chunks, quit_reading, self._trainer_known),
                name="kohya-plan-reader",
                daemon=True,
            ),
            threading.Thread(
                target=self._read_status, args=(proc.stderr,), name="kohya-plan-status", daemon=True
            ),
        ]
        for reader in readers:
            reader.start()
        try:
            self._loop(chunks)
        except BaseException:
            self._kill_tree_now()
            raise
        finally:
            quit_reading.set()
            for reader in readers:
                reader.join(timeout=_DRAIN_S)
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            self._reap_tracked()

    def _read_status(self, pipe: IO[bytes]) -> None:
        """The guardian's reports (JSON lines on its stderr) into the control queue."""
        with pipe:
            for raw in iter(pipe.readline, b""):
                text = raw.decode("utf-8", "replace").rstrip("\n")
                try:
                    event = json.loads(text)
                except ValueError:
                    event = None
                if isinstance(event, dict) and "event" in event:
                    if event["event"] in ("started", "spawn_error"):
                        self._trainer_pid = event.get("pid")
                        self._trainer_known.set()
                    self._control.put(("status", event, ""))
                elif text:
                    self._control.put(("guardian_text", text, ""))
        self._trainer_known.set()

    def _loop(self, chunks: queue.Queue[object]) -> None:
        proc = self._proc
        assert proc is not None
        eof = False
        gone_at: float | None = None
        next_track = time.monotonic()
        self._last_output = time.monotonic()
        while True:
            now = time.monotonic()
            while not self._control.empty():
                self._handle_control(*self._control.get())
            if gone_at is None and proc.poll() is not None:
                gone_at = now
                self._ended = True
            if gone_at is None:
                if now >= next_track:
                    self._track()
                    next_track = now + _TRACK_EVERY_S
                if now >= self._hard_deadline:
                    # The guardian did not finish its own stop in time: end it all from here.
                    self._kill_tree_now()
                    continue
                self._check_stall(now)
            if gone_at is not None and (eof or now - gone_at >= _DRAIN_S):
                # The guardian is gone; whatever it left (it was killed) is ended here.
                while not self._control.empty():
                    self._handle_control(*self._control.get())
                if not self._exit_seen:
                    self._kill_tracked()
                break
            try:
                item = chunks.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _EOF:
                eof = True
            elif isinstance(item, BaseException):
                raise item
            else:
                assert isinstance(item, bytes)
                self._last_output = time.monotonic()
                self._stall_reported = False
                self.on_output(item)

    def _check_stall(self, now: float) -> None:
        if self.stall_s is None or self._stall_reported or self._trainer_pid is None:
            return
        silent = now - self._last_output
        if silent >= self.stall_s:
            self._stall_reported = True
            self._emit({"event": "stall", "silent_s": round(silent, 1)})

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_status is not None:
            self.on_status(event)

    def _handle_control(self, kind: str, payload: Any, detail: str) -> None:
        if kind == "status":
            self._on_report(payload)
            return
        if kind == "guardian_text":
            self._guardian_text.append(str(payload))
            del self._guardian_text[:-40]
            self._emit({"event": "guardian_error", "text": str(payload)})
            return
        if kind == "hangup":
            self._emit({"event": "hangup", "signal": detail})
            return
        if self._ended:
            return
        reason = str(payload)
        if kind == "kill" or (kind == "signal" and self._stopping):
            # kill_now(), a second Ctrl-C while stopping, or `stop --now`: no more waiting.
            if self._stopping < 3:
                self._set_stop(reason, detail)
                self._stopping = 3
                self._command("kill")
                self._hard_deadline = time.monotonic() + _KILL_WAIT_S + _GUARDIAN_SLACK_S
        elif not self._stopping:
            self._set_stop(reason, detail)
            self._stopping = 1
            self._command(f"stop {reason}")
            self._hard_deadline = (
                time.monotonic() + self.grace_s + self.term_grace_s + _KILL_WAIT_S
            ) + _GUARDIAN_SLACK_S

    def _on_report(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "escalation" and isinstance(event.get("level"), str):
            self._escalation = event["level"]
        elif kind == "exit":
            self._exit_seen = True
            status = event.get("status")
            self._returncode = status if isinstance(status, int) else None
            level = event.get("escalation")
            if isinstance(level, str):
                self._escalation = level
            self._log_lost = int(event.get("log_lost_bytes") or 0)
            self._dropped = max(self._dropped, int(event.get("dropped_bytes") or 0))
        elif kind == "spawn_error":
            self._spawn_error = event
        elif kind == "log_error":
            self._log_error = str(event.get("error"))
        elif kind == "dropped":
            self._dropped = max(self._dropped, int(event.get("bytes") or 0))
        self._emit(event)

    def _set_stop(self, reason: str, detail: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self.stop_detail = detail

    # -- the process tree ----------------------------------------------------------------------

    def _track(self) -> None:
        """Remember the guardian's descendants (the trainer's whole tree)."""
        if self._guardian is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in self._guardian.children(recursive=True):
                self._tracked.setdefault(child.pid, child)

    def _alive_tree(self) -> list[psutil.Process]:
        """The guardian (while running) and every live process of the trainer's tree."""
        self._track()
        alive = [p for p in self._tracked.values() if _is_alive(p)]
        proc = self._proc
        if proc is not None and proc.poll() is None and self._guardian is not None:
            alive.append(self._guardian)
        return alive

    def _kill_tracked(self) -> None:
        """SIGKILL what is left of the trainer's tree (the guardian was killed)."""
        victims = [p for p in self._tracked.values() if _is_alive(p)]
        for p in victims:
            with contextlib.suppress(psutil.Error):
                p.kill()
        deadline = time.monotonic() + _KILL_WAIT_S
        while any(_is_alive(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _kill_tree_now(self) -> None:
        """SIGKILL the guardian and the whole tree, and wait briefly; on errors and exit."""
        proc = self._proc
        assert proc is not None
        self._command("kill")
        victims = self._alive_tree()
        for p in victims:
            with contextlib.suppress(psutil.Error):
                p.kill()
        deadline = time.monotonic() + _KILL_WAIT_S
        while time.monotonic() < deadline:
            if proc.poll() is None or any(_is_alive(p) for p in victims):
                time.sleep(0.01)
                continue
            break
        self._reap_tracked()
        self._ended = True
        self._hard_deadline = float("inf")
        self._escalation = "killed"

    def _reap_tracked(self) -> None:
        """Reap tracked processes that became kohya-plan's zombies (orphans of a dead guardian)."""
        if _WINDOWS:
            return
        guardian = self.guardian_pid
        for pid, p in list(self._tracked.items()):
            if pid == guardian:
                continue
            with contextlib.suppress(psutil.Error, ChildProcessError, OSError):
                if p.ppid() == os.getpid() and p.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(pid, os.WNOHANG)

    # -- signals ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """Route the stop signals to the stop sequence and SIGHUP to a report while run() runs."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        wanted: dict[int, tuple[str, str]] = {
            signal.SIGINT: ("signal", "interrupt"),
            signal.SIGTERM: ("signal", "terminate"),
        }
        if STOP_SIGNAL != signal.SIGTERM:
            wanted[STOP_SIGNAL] = ("signal", "stop-command")
        if STOP_NOW_SIGNAL != signal.SIGTERM:
            wanted[STOP_NOW_SIGNAL] = ("kill", "stop-command")
        if hasattr(signal, "SIGHUP"):
            # The trainer has its own session, so a closed terminal does not reach it; for
            # kohya-plan it means: nobody is watching any more, the training goes on.
            wanted[signal.SIGHUP] = ("hangup", "hangup")
        if hasattr(signal, "SIGBREAK"):
            wanted[signal.SIGBREAK] = ("signal", "interrupt")
        previous: dict[int, Any] = {}
        try:
            for signum, (kind, reason) in wanted.items():
                old = signal.getsignal(signum)
                # Leave alone what we could not restore (set outside Python) and what the
                # user chose to ignore (nohup, background jobs).
                if old is None or old is signal.SIG_IGN:
                    continue
                signal.signal(signum, self._make_handler(kind, reason))
                previous[signum] = old
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    def _make_handler(self, kind: str, reason: str) -> Callable[[int, FrameType | None], None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            # Runs on the main thread between bytecodes: only hand the event over.
            self._control.put((kind, reason, signal.Signals(signum).name))

        return handler


def child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The child's environment: `env` (or ours) plus unbuffered Python and a wide console.

    `COLUMNS=200` keeps sd-scripts' rich log handler from wrapping at 80 columns; an
    explicit COLUMNS in `env` wins, one inherited from our own environment does not.
    """
    merged = dict(os.environ if env is None else env)
    merged["PYTHONUNBUFFERED"] = "1"
    if env is None or "COLUMNS" not in env:
        merged["COLUMNS"] = "200"
    return merged


@contextlib.contextmanager
def _subreaper() -> Iterator[None]:
    """kohya-plan adopts the trainer's orphans while it supervises (should the guardian die)."""
    on = set_child_subreaper(True)
    try:
        yield
    finally:
        if on:
            set_child_subreaper(False)


def _read_pipe(
    pipe: IO[bytes],
    chunks: queue.Queue[object],
    quit_reading: threading.Event,
    trainer_known: threading.Event,
) -> None:
    """Reader thread: raw chunks from the guardian's stdout into the queue.

    It waits until the guardian said it started the trainer, so that `pid` is known by the
    first chunk. The thread owns the pipe and closes it when done.
    """
    with pipe:
        trainer_known.wait(30.0)
        _pump(pipe.fileno(), chunks, quit_reading)


def _pump(fd: int, chunks: queue.Queue[object], quit_reading: threading.Event) -> None:
    def hand_over(item: object) -> bool:
        # A bounded put that gives up once run() has stopped consuming.
        while not quit_reading.is_set():
            try:
                chunks.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    try:
        while True:
            # Not readline: tqdm redraws with "\r" and may not end a line for minutes.
            chunk = os.read(fd, _READ_SIZE)
            if not chunk:
                break
            if not hand_over(chunk):
                return
    except BaseException as exc:  # handed to run(), which stops the tree and re-raises
        hand_over(exc)
        return
    hand_over(_EOF)


def _is_alive(p: psutil.Process) -> bool:
    """Running and not a zombie: a zombie has ended, and whoever adopted it reaps it."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
