"""Exclusive locks that the operating system releases when their holder dies.

A launch holds two: its run folder's (``launch.lock``) and its output's (a hidden file in
``output.dir`` named after the output), for as long as the trainer lives — kohya-plan passes the
open file to its guardian process, which outlives kohya-plan until the trainer is gone. So a
second launch into the same output, or of the same run folder, is refused at once, and no lock
is ever left behind by a crash: it is the open file, not the file's existence, that holds it.

POSIX: ``flock`` on the whole file (shared by the guardian through the inherited descriptor;
on NFS, Linux emulates it with byte-range locks). Windows: ``msvcrt.locking`` on one byte far
past the holder's note, so that the note stays readable. The file holds a small JSON note about
the holder (pid, start time, run folder), rewritten in place: never replaced by a rename, which
would give the lock a new file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Busy", "Lock", "acquire", "holder"]

# Windows locks a byte range: one byte here, far past any note.
_WIN_OFFSET = 1 << 30
# A probe (`holder`) takes the lock for an instant; an acquirer tries a few times before it
# calls the lock busy, so that a probe is never mistaken for another launch.
_TRIES = 4
_TRY_GAP_S = 0.05


class Busy(Exception):
    """The lock is held by another process; `note` is what that holder wrote (may be {})."""

    def __init__(self, path: Path, note: dict[str, Any]) -> None:
        super().__init__(f"{path} is locked by {note or 'another process'}")
        self.path = path
        self.note = note


@dataclass
class Lock:
    """A held lock: its file stays open (and locked) until `release` or the holder's death."""

    path: Path
    fd: int
    note: dict[str, Any] = field(default_factory=dict)

    def update(self, **note: Any) -> None:
        """Rewrite the holder's note in place (what a refused launch will be told)."""
        self.note.update(note)
        data = (json.dumps(self.note, ensure_ascii=False) + "\n").encode("utf-8")
        with contextlib.suppress(OSError):  # the note is a courtesy; the lock is what counts
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.write(self.fd, data)

    def release(self) -> None:
        """Unlock and close (idempotent)."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            _unlock(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def acquire(path: Path, **note: Any) -> Lock:
    """Take the lock at `path` (created if missing) or raise Busy with the holder's note.

    OSError when the file cannot be created (a missing or read-only folder).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        for attempt in range(_TRIES):
            if _try_lock(fd):
                break
            if attempt == _TRIES - 1:
                raise Busy(path, _read_note(path))
            time.sleep(_TRY_GAP_S)
    except BaseException:
        os.close(fd)
        raise
    lock = Lock(path, fd)
    lock.update(**note)
    return lock


def holder(path: Path) -> dict[str, Any] | None:
    """The holder's note while `path` is locked ({} when it wrote none); None when it is free."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # no lock file: never locked
    try:
        if _try_lock(fd):
            _unlock(fd)
            return None
        return _read_note(path)
    finally:
        os.close(fd)


def _read_note(path: Path) -> dict[str, Any]:
    # The holder writes its note right after locking: give it a moment to appear.
    for _ in range(20):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            return data
        time.sleep(0.01)
    return {}


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WIN_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WIN_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
