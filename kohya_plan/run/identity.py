"""Which process is which: a pid with its start time, so that a reused pid is never taken for
the process that once had it (what exit.json, trainer.json and the lock files record)."""

from __future__ import annotations

import os

import psutil

__all__ = ["alive", "identity"]

# psutil's create_time is a float of seconds; a reused pid starts later. Compared with a
# small tolerance because some systems round it differently between calls.
_SAME_START_S = 0.05


def identity(pid: int | None = None) -> dict[str, float | int]:
    """{"pid", "create_time"} of `pid` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = 0.0
    return {"pid": pid, "create_time": created}


def alive(pid: object, create_time: object) -> bool:
    """Whether the process recorded as (`pid`, `create_time`) still runs (not a zombie)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        recorded = float(create_time) if isinstance(create_time, (int, float)) else 0.0
        if recorded and abs(proc.create_time() - recorded) > _SAME_START_S:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
