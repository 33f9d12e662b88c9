"""Run the trainer as a supervised child: one merged output pipe, a log file, a clean stop.

The trainer (normally `accelerate launch ... train_network.py ...`) runs in its own
session/process group, so a Ctrl-C in the terminal reaches kohya-plan only; kohya-plan
then stops the trainer deliberately: SIGINT to the group (sd-scripts saves on
KeyboardInterrupt), then SIGTERM to every process of the tree, then SIGKILL.
`accelerate launch` starts the real trainer as a child, and that child may outlive
accelerate and be re-parented, so "the tree" is the root's descendants plus everything
still in the child's session or process group.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path
    from types import FrameType, TracebackType

__all__ = ["RunResult", "Supervisor", "child_env"]

_WINDOWS = sys.platform == "win32"

# Large reads keep the per-chunk overhead (thread hand-off, log flush, callback) small
# when the trainer floods the pipe; os.read returns whatever is there, so small
# writes still arrive at once.
_READ_SIZE = 65536
# At most this many chunks wait for the callback; beyond that the reader blocks and
# the pipe applies back-pressure to the trainer instead of memory growing.
_QUEUE_CHUNKS = 64
# How often the main loop looks at the child, deadlines and stop requests when no
# output arrives; bounds the reaction time to a signal delivered to another thread.
_POLL_S = 0.05
# After SIGKILL: how long to wait for processes to vanish (a process stuck in an
# uninterruptible wait can linger) before giving up.
_KILL_WAIT_S = 5.0
# Once every process is gone: how long to wait for the pipe's end of file (a process
# that left the session could hold the pipe open forever).
_DRAIN_S = 2.0
# Windows has no sessions: remember the root's descendants this often while running,
# so that a grandchild orphaned by its parent's death is still known at stop time.
_TRACK_EVERY_S = 2.0

_ESCALATIONS = {1: "graceful", 2: "terminated", 3: "killed"}
_EOF = object()


@dataclass(frozen=True)
class RunResult:
    """How a supervised run ended.

    `returncode` is the root process's exit status as Popen reports it (negative for a
    death by signal; None only if the process could not be reaped). `stop_reason` is
    why kohya-plan stopped it ('interrupt', 'terminate', 'requested') or None when it
    ended on its own; `escalation` is the strongest step that was needed ('graceful',
    'terminated', 'killed') or None.
    """

    returncode: int | None
    duration_s: float
    stop_reason: str | None
    escalation: str | None
    log_path: Path


class Supervisor:
    """Run `argv` as a child process tree, stream its output, stop it cleanly.

    Use as a context manager: `__exit__` ends the whole process tree, whatever happened.
    `on_output` is called with each raw chunk of merged stdout/stderr, always from the
    thread that called `run()`.
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
    ) -> None:
        self.argv = list(argv)
        self.env = child_env(env)
        self.cwd = cwd
        self.log_path = log_path
        self.on_output = on_output
        self.grace_s = grace_s
        self.term_grace_s = term_grace_s
        # Stop and kill requests from other threads and from signal handlers;
        # SimpleQueue.put is reentrant, so a handler may interrupt another put.
        self._control: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self._proc: subprocess.Popen[bytes] | None = None
        self._root: psutil.Process | None = None
        self._tracked: dict[int, psutil.Process] = {}
        self._running = threading.Event()
        self._done = threading.Event()
        self._level = 0  # 0 running, 1 SIGINT sent, 2 SIGTERM sent, 3 SIGKILL sent
        self._deadline = 0.0
        self._stop_reason: str | None = None
        self._escalation: str | None = None
        # Set once every process of the run is gone: from then on the root's pid (our
        # session id) may be reused, so the tree must not be looked for again.
        self._ended = False
        # Free text for the stop: the request_stop() reason or the signal's name.
        self.stop_detail: str | None = None

    # -- public API ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The root process's pid, once started."""
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
        """Start the child, stream its output until the tree is gone, return the result.

        Blocks. On the main thread, SIGINT and SIGTERM (and SIGHUP) start the graceful
        stop while it runs; a second one kills the tree. Previous handlers are restored.
        """
        if self._proc is not None:
            msg = "a Supervisor runs its command once"
            raise RuntimeError(msg)
        self._running.set()
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self._signal_handlers(), open(self.log_path, "ab") as log:
                started = time.monotonic()
                self._proc = _spawn(self.argv, self.env, self.cwd)
                self._supervise(log)
                duration = time.monotonic() - started
        finally:
            self._running.clear()
            self._done.set()
        return RunResult(
            returncode=self._proc.returncode,
            duration_s=duration,
            stop_reason=self._stop_reason,
            escalation=self._escalation,
            log_path=self.log_path,
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

    # -- the supervision loop -------------------------------------------------------------

    def _supervise(self, log: BinaryIO) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            self._root = psutil.Process(proc.pid)
        chunks: queue.Queue[object] = queue.Queue(_QUEUE_CHUNKS)
        quit_reading = threading.Event()
        reader = threading.Thread(
            target=_read_pipe,
            args=(proc.stdout, log, chunks, quit_reading),
            name="kohya-plan-reader",
            daemon=True,
        )
        reader.start()
        try:
            self._loop(chunks)
        except BaseException:
            self._kill_tree_now()
            raise
        finally:
            quit_reading.set()
            reader.join(timeout=_DRAIN_S)

    def _loop(self, chunks: queue.Queue[object]) -> None:
        eof = False
        gone_at: float | None = None
        next_check = 0.0
        next_track = time.monotonic() + _TRACK_EVERY_S
        while True:
            now = time.monotonic()
            while not self._control.empty():
                self._handle_control(*self._control.get())
            if now >= next_check:
                if gone_at is None and self._tree_gone(now):
                    gone_at = now
                    self._ended = True
                if _WINDOWS and self._level == 0 and now >= next_track:
                    self._track_descendants()
                    next_track = now + _TRACK_EVERY_S
                next_check = now + _POLL_S
            if gone_at is not None and (eof or now - gone_at >= _DRAIN_S):
                break
            try:
                item = chunks.get(timeout=max(next_check - now, 0.0))
            except queue.Empty:
                continue
            if item is _EOF:
                eof = True
            elif isinstance(item, BaseException):
                raise item
            else:
                assert isinstance(item, bytes)
                self.on_output(item)

    def _handle_control(self, kind: str, reason: str, detail: str) -> None:
        proc = self._proc
        assert proc is not None
        if self._ended:
            return
        if kind == "kill" or (kind == "signal" and self._level >= 1):
            # kill_now(), or a second Ctrl-C while already stopping: no more waiting.
            if self._level < 3:
                self._set_stop(reason, detail)
                self._escalate(3)
        elif self._level == 0 and proc.poll() is None:
            self._set_stop(reason, detail)
            self._escalate(1)

    def _set_stop(self, reason: str, detail: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self.stop_detail = detail

    def _tree_gone(self, now: float) -> bool:
        """Check the tree; escalate when a deadline passed. True once nothing is left."""
        proc = self._proc
        assert proc is not None
        if self._level == 0 and proc.poll() is None:
            return False  # running normally: no need to look at the whole tree
        alive = self._alive_tree()
        if not alive:
            return True
        if self._level == 0:
            # The root ended on its own but left processes behind (say, a trainer
            # whose accelerate parent died): they are strays, not a stop, so go
            # straight to SIGTERM and do not report an escalation.
            self._escalate(2, record=False)
        elif now >= self._deadline:
            if self._level == 3:
                return True  # SIGKILL sent long ago; nothing more can be done
            self._escalate(self._level + 1)
        return False

    def _escalate(self, level: int, *, record: bool = True) -> None:
        proc = self._proc
        assert proc is not None
        if level == 1:
            _interrupt_group(proc)
            wait = self.grace_s
        else:
            for p in self._alive_tree():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    if level == 2:
                        p.terminate()
                    else:
                        p.kill()
            wait = self.term_grace_s if level == 2 else _KILL_WAIT_S
        self._level = level
        self._deadline = time.monotonic() + wait
        if record:
            self._escalation = _ESCALATIONS[level]

    # -- the process tree ---------------------------------------------------------------

    def _alive_tree(self) -> list[psutil.Process]:
        """Every live process of the run: root, descendants, session/group members."""
        proc = self._proc
        assert proc is not None
        found = dict(self._tracked)
        # The root is judged by Popen, which must be the one to reap it: psutil's own
        # wait would take its exit status away from Popen.
        if proc.poll() is None and self._root is not None:
            found[self._root.pid] = self._root
            with contextlib.suppress(psutil.Error):
                for child in self._root.children(recursive=True):
                    found.setdefault(child.pid, child)
        for member in _session_members(proc.pid):
            found.setdefault(member.pid, member)
        root_pid = proc.pid
        self._tracked = {pid: p for pid, p in found.items() if pid != root_pid and _is_alive(p)}
        alive = list(self._tracked.values())
        if proc.returncode is None and self._root is not None:
            alive.append(self._root)
        return alive

    def _track_descendants(self) -> None:
        if self._root is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in self._root.children(recursive=True):
                self._tracked.setdefault(child.pid, child)

    def _kill_tree_now(self) -> None:
        """SIGKILL the whole tree and wait briefly for it; used on errors and exit."""
        proc = self._proc
        assert proc is not None
        victims = self._alive_tree()
        for p in victims:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                p.kill()
        deadline = time.monotonic() + _KILL_WAIT_S
        # Not psutil.wait_procs: it counts an orphan's zombie as alive until pid 1
        # gets round to reaping it, and it must not reap the root behind Popen's back.
        while self._alive_tree() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._tracked.clear()
        self._ended = True

    # -- signals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """Route SIGINT/SIGTERM/SIGHUP to the stop sequence while run() is active."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        wanted: dict[int, str] = {signal.SIGINT: "interrupt", signal.SIGTERM: "terminate"}
        if hasattr(signal, "SIGHUP"):
            # The child has its own session, so a closed terminal would not reach it.
            wanted[signal.SIGHUP] = "terminate"
        if hasattr(signal, "SIGBREAK"):
            wanted[signal.SIGBREAK] = "interrupt"
        previous: dict[int, Any] = {}
        try:
            for signum, reason in wanted.items():
                old = signal.getsignal(signum)
                # Leave alone what we could not restore (set outside Python) and what
                # the user chose to ignore (nohup, background jobs).
                if old is None or old is signal.SIG_IGN:
                    continue
                signal.signal(signum, self._make_handler(reason))
                previous[signum] = old
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    def _make_handler(self, reason: str) -> Callable[[int, FrameType | None], None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            # Runs on the main thread between bytecodes: only hand the event over.
            self._control.put(("signal", reason, signal.Signals(signum).name))

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


def _spawn(argv: list[str], env: dict[str, str], cwd: Path | None) -> subprocess.Popen[bytes]:
    if sys.platform == "win32":
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            bufsize=0,
            creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
        )
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        bufsize=0,
        start_new_session=True,
    )


def _read_pipe(
    pipe: IO[bytes], log: BinaryIO, chunks: queue.Queue[object], quit_reading: threading.Event
) -> None:
    """Reader thread: raw chunks from the pipe, to the log first, then to the queue.

    The thread owns the pipe and closes it when done: a reader left blocked (a process
    that escaped the session holds the pipe open) must keep the fd, because closing
    it under the read could hand the number to an unrelated file.
    """
    with pipe:
        _pump(pipe.fileno(), log, chunks, quit_reading)


def _pump(
    fd: int, log: BinaryIO, chunks: queue.Queue[object], quit_reading: threading.Event
) -> None:

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
            log.write(chunk)
            # Flushed per chunk so the log is complete even if kohya-plan is killed.
            log.flush()
            if not hand_over(chunk):
                return
    except BaseException as exc:  # handed to run(), which stops the tree and re-raises
        hand_over(exc)
        return
    hand_over(_EOF)


def _interrupt_group(proc: subprocess.Popen[bytes]) -> None:
    """The graceful stop: what a Ctrl-C in the trainer's own terminal would send."""
    if sys.platform == "win32":
        # The console counterpart of SIGINT for a process group; Python maps it to
        # SIGBREAK, which ends a trainer that does not handle it.
        with contextlib.suppress(OSError):
            proc.send_signal(signal.CTRL_BREAK_EVENT)
        return
    # The group id is the root's pid (start_new_session); the group outlives the root
    # as long as a member does, so this also reaches an orphaned trainer.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)


def _session_members(sid: int) -> list[psutil.Process]:
    """Processes whose session or process group is `sid` (none on Windows)."""
    members: list[psutil.Process] = []
    if sys.platform == "win32":
        return members
    me = os.getpid()
    for pid in psutil.pids():
        if pid == me:
            continue
        try:
            if os.getsid(pid) == sid or os.getpgid(pid) == sid:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            continue  # gone meanwhile, or not ours to look at
    return members


def _is_alive(p: psutil.Process) -> bool:
    """Running and not a zombie: a zombie has ended, and whoever adopted it reaps it."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
