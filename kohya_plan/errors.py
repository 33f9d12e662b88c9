"""Errors that reach the user, each with an exit code; the CLI turns them into messages.

Exit codes by kind (documented in the README and `kohya-plan --help`):

* 0 — done (a run succeeded);
* 1 — kohya-plan itself failed unexpectedly (a bug: `--debug` shows the traceback);
* 2 — the plan, the data or the command line is wrong (every problem is listed, nothing written);
* 3 — the training failed: sd-scripts stopped with an error (the summary names the cause);
* 130 — the run was stopped (Ctrl-C, `kohya-plan stop`, a signal).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kohya_plan.findings import Finding

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_TRAINING_FAILED = 3
EXIT_STOPPED = 130


class KohyaPlanError(Exception):
    """Base of every error kohya-plan reports without a traceback."""

    exit_code = EXIT_INTERNAL


class PlanError(KohyaPlanError):
    """The plan (or its data) is wrong; carries every problem found, not just the first."""

    exit_code = EXIT_USAGE

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("\n".join(str(f) for f in findings))


class UsageError(KohyaPlanError):
    """A command was given something it cannot work with (a missing folder, a bad option)."""

    exit_code = EXIT_USAGE


class LaunchError(KohyaPlanError):
    """The trainer could not be started, or must not be (e.g. it would overwrite files)."""

    exit_code = EXIT_USAGE


# What a failed file-system call means to a person, and what they can do about it. The path
# is named by the caller (it knows which plan key chose it); these give the why and the fix.
_OS_WHY = {
    "EACCES": ("permission is denied", "make it writable for you, or choose another folder"),
    "EPERM": ("the operation is not permitted", "make it writable for you, or choose another"),
    "EROFS": ("the file system is read-only", "choose a folder on a writable disk"),
    "ENOSPC": (
        "the disk is full",
        "free some space on it (`df -h` shows how much is left), or choose a folder on another "
        "disk",
    ),
    "EDQUOT": ("your disk quota is used up", "free some space, or choose another disk"),
    "ENAMETOOLONG": (
        "a name in it is too long for the file system",
        "use a shorter name (most file systems allow 255 bytes per name)",
    ),
    "ELOOP": ("it runs into a symbolic-link loop", "fix the links"),
    "ENOTDIR": ("a part of it is a file, not a folder", "move that file or choose another path"),
    "EEXIST": ("something of that name is already there", "choose another name"),
    "EIO": ("the disk reported an input/output error", "check the disk (dmesg, SMART)"),
}


def os_error_text(exc: OSError) -> tuple[str, str]:
    """``(why, fix)`` for a file-system error, in words; unknown errors keep their own text."""
    name = errno.errorcode.get(exc.errno or 0, "")
    if name in _OS_WHY:
        return _OS_WHY[name]
    return (exc.strerror or str(exc) or type(exc).__name__, "check the path and try again")
