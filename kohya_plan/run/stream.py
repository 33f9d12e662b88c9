"""Longer helper commands whose progress is shown as it happens (git clone, pip install).

Kept in `kohya_plan.run` with the other process starters. The child shares kohya-plan's
process group, so a Ctrl-C in the terminal reaches both; if kohya-plan is interrupted while
waiting, it ends the child before re-raising, so no installer is left running.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

_READ_SIZE = 65536
_LINE_END = re.compile(r"[\r\n]+")
# How much of the output is kept for an error message.
_TAIL_LINES = 40
_END_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class StreamResult:
    """How a streamed command ended: its exit status and the last lines it printed."""

    returncode: int
    tail: tuple[str, ...]

    @property
    def output(self) -> str:
        """The last lines as one text (for an error message)."""
        return "\n".join(self.tail)


def stream(
    argv: list[str],
    *,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> StreamResult:
    """Run `argv` with no input; call `on_line` with each line of its merged output.

    Lines are split on `\\r` as well as `\\n` (pip and git redraw progress with `\\r`). With
    `log`, the raw output is appended to that file as it arrives. Raises OSError when the
    program cannot be started.
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=None if env is None else dict(env),
        cwd=cwd,
    )
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    tail: list[str] = []

    def emit(line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        tail.append(line)
        del tail[:-_TAIL_LINES]
        on_line(line)

    try:
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(open(log, "ab")) if log is not None else None
            fd = proc.stdout.fileno()
            while True:
                chunk = os.read(fd, _READ_SIZE)
                if not chunk:
                    break
                if sink is not None:
                    sink.write(chunk)
                    sink.flush()
                pending += decoder.decode(chunk)
                *lines, pending = _LINE_END.split(pending)
                for line in lines:
                    emit(line)
            emit(pending + decoder.decode(b"", final=True))
        returncode = proc.wait()
    except BaseException:
        _end(proc)
        raise
    finally:
        proc.stdout.close()
    return StreamResult(returncode, tuple(tail))


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill, a child that kohya-plan stopped waiting for."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=_END_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
