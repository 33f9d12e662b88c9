"""Errors that reach the user, each with an exit code; the CLI turns them into messages.

Exit codes by kind (documented in the README and `kohya-plan --help`):

* 0 — done (a run succeeded);
* 1 — kohya-plan itself failed unexpectedly (a bug: `--debug` shows the traceback);
* 2 — the plan, the data or the command line is wrong (every problem is listed, nothing written);
* 3 — the training failed: sd-scripts stopped with an error (the summary names the cause);
* 130 — the run was stopped (Ctrl-C, `kohya-plan stop`, a signal).
"""

from __future__ import annotations

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
