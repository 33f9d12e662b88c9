"""While a run goes: kohya-plan's own notes (kohya-plan.log), the parsed state with kohya-plan's
warnings, and a view that nothing the display does can turn against the training."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kohya_plan import rundir
from kohya_plan.trainlog.events import Event, RunState
from kohya_plan.trainlog.records import LogParser

if TYPE_CHECKING:
    from collections.abc import Callable


class RunView(Protocol):
    """What shows a running trainer to the user (see display.run_view)."""

    def event(self, event: Event, state: RunState) -> None: ...

    def notice(self, text: str) -> None: ...

    def close(self) -> None: ...


class RunNotes:
    """kohya-plan.log: kohya-plan's own lines about the run, with times (never train.log)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, text: str) -> None:
        """Append one line; a note that cannot be written is not worth stopping a run for."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(f"{stamp} kohya-plan: {text}\n")
        except OSError:
            pass


class Tracker:
    """The parsed state of the run, and kohya-plan's own warnings and notes about it."""

    def __init__(self, view: SafeView, notes: RunNotes) -> None:
        self.state = RunState()
        self.parser: LogParser | None = LogParser()
        self.view = view
        self.run_notes = notes
        self.stopping: str | None = None
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        if self.parser is None:
            return []
        try:
            return self.parser.feed(chunk)
        except Exception as exc:
            # A parser bug must not cost the training: stop parsing, keep supervising.
            self.parser = None
            self.warn(
                f"kohya-plan could not parse the trainer's output ({type(exc).__name__}: {exc}); "
                f"progress is no longer shown, the training goes on, {rundir.LOG} has everything"
            )
            return []

    def finish(self) -> list[Event]:
        if self.parser is None:
            return []
        try:
            return self.parser.finish()
        except Exception:
            return []

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.run_notes.add(f"warning: {text}")
        self.view.notice(f"warning: {text}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.run_notes.add(text)
        self.view.notice(text)


class SafeView:
    """The run's view, made harmless: nothing the display does can stop or kill the training.

    A closed stdout (`| head`, a dead `tee`), a closed terminal (SIGHUP, or EIO on write) or an
    exception in the view switches the display off: the run goes on, train.log and the
    summary are written as always, and the reason is noted.
    """

    def __init__(self, factory: Callable[[], RunView], notes: RunNotes) -> None:
        self.notes = notes
        self.view: RunView | None = None
        try:
            self.view = factory()
        except (Exception, SystemExit) as exc:
            self._failed(exc)

    def event(self, event: Event, state: RunState) -> None:
        if self.view is not None:
            try:
                self.view.event(event, state)
            except (Exception, SystemExit) as exc:
                self._failed(exc)

    def notice(self, text: str) -> None:
        if self.view is not None:
            try:
                self.view.notice(text)
            except (Exception, SystemExit) as exc:
                self._failed(exc)

    def close(self) -> None:
        view, self.view = self.view, None
        if view is not None:
            try:
                view.close()
            except (Exception, SystemExit) as exc:
                self._failed(exc)

    def detach(self, reason: str) -> None:
        """Stop showing anything (the terminal is gone); the run goes on."""
        silence_terminal()
        self.close()
        self.notes.add(f"display off: {reason}")

    def _failed(self, exc: BaseException) -> None:
        view, self.view = self.view, None
        if isinstance(exc, SystemExit):
            # rich's answer to a broken pipe: stdout to the null device, then SystemExit(1).
            silence_broken_output()
            reason = "the output is closed or gone (broken pipe)"
        elif isinstance(exc, OSError):
            silence_broken_output()
            reason = f"the output is closed or gone ({exc.strerror or exc})"
        else:
            reason = f"the display failed ({type(exc).__name__}: {exc})"
        self.notes.add(f"display off: {reason}; the training goes on")
        if view is not None:
            with contextlib.suppress(Exception, SystemExit):
                view.close()


def _devnull_over(fd: int) -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def _fd_of(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None  # not a real file (a test runner's buffer)


def silence_broken_output() -> None:
    """stdout can no longer be written (EPIPE: `| head`, a dead `tee`; EIO: a closed terminal):
    point it at the null device, so that later writes (the summary, the interpreter's last
    flush) succeed quietly instead of raising. The run's results are in its folder."""
    fd = _fd_of(sys.stdout)
    if fd is not None:
        _devnull_over(fd)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()


def silence_terminal() -> None:
    """After SIGHUP: stdout/stderr that are terminals point at the null device from now on."""
    import stat

    for stream in (sys.stdout, sys.stderr):
        fd = _fd_of(stream)
        if fd is None:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            _devnull_over(fd)
            continue
        if stat.S_ISCHR(mode) and os.fstat(fd).st_rdev != Path(os.devnull).stat().st_rdev:
            _devnull_over(fd)
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
