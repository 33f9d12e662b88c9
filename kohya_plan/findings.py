"""The one record type for anything kohya-plan finds: a rule's verdict on one field.

Schema errors, rule errors, advice, hardware advice, the report's advice table and the
errors that stop a command are all `Finding`s: an id (a `kohya_plan.rules` rule), the plan
field it concerns, what is wrong, how to fix it, how bad it is, and whether the plan waived it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "advice"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a rule: where, what, how to fix, how bad, and whether it was waived."""

    id: str
    field: str
    message: str
    fix: str = ""
    severity: Severity = "error"
    ref: str = ""
    waived: bool = False

    @property
    def blocking(self) -> bool:
        """An error that is not waived: `make` and `launch` stop on it."""
        return self.severity == "error" and not self.waived

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} — {self.fix}" if self.fix else text

    def to_json(self) -> dict[str, Any]:
        """The finding as `check --json` and check.json write it (listed under its severity)."""
        return {
            "id": self.id,
            "field": self.field,
            "message": self.message,
            "fix": self.fix,
            "ref": self.ref,
            "waived": self.waived,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], severity: Severity) -> Finding:
        """A finding read back from check.json's errors or advice list (missing keys tolerated)."""
        return cls(
            id=str(data.get("id", "")),
            field=str(data.get("field", "")),
            message=str(data.get("message", "")),
            fix=str(data.get("fix", "")),
            severity=severity,
            ref=str(data.get("ref", "")),
            waived=bool(data.get("waived", False)),
        )


def blocking(findings: list[Finding]) -> list[Finding]:
    """Errors that are not waived."""
    return [f for f in findings if f.blocking]
