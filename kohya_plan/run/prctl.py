"""Linux process controls (prctl via ctypes): child subreaper and parent-death signal.

Elsewhere these do nothing and say so (False): macOS and Windows have no subreaper, and their
guardian learns of kohya-plan's death from its lifeline pipe instead (see guardian.py).
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["set_child_subreaper", "set_parent_death_signal"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def set_child_subreaper(on: bool = True) -> bool:
    """Make this process the one that adopts its orphaned descendants (Linux 3.4+).

    A process that double-forks or calls setsid still has this process as an ancestor, so it
    can be found and stopped; without it, orphans go to pid 1 and out of sight.
    """
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def set_parent_death_signal(signum: int) -> bool:
    """Have the kernel send `signum` to this process when its parent (thread) ends (Linux)."""
    return _prctl(_PR_SET_PDEATHSIG, signum)
