"""Errors that reach the user, each with an exit code; the CLI turns them into messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a plan: where, what, and how to fix it."""

    field: str
    message: str
    fix: str = ""
    id: str = "invalid"

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} — {self.fix}" if self.fix else text


class KohyaPlanError(Exception):
    """Base of every error kohya-plan reports without a traceback."""

    exit_code = 1


class PlanError(KohyaPlanError):
    """The plan (or its data) is wrong; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(KohyaPlanError):
    """A command was given something it cannot work with (a missing folder, a bad option)."""

    exit_code = 2


class LaunchError(KohyaPlanError):
    """The trainer could not be started, or must not be (e.g. it would overwrite files)."""

    exit_code = 2
