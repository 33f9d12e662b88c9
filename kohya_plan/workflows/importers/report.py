"""The mapping report: what became of every key of the imported source.

Each source key gets exactly one `Record`: the plan key it became (with its value), or why it
was dropped, left out as "unset", carried into `launch.extra`, or could not be carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["mapped", "extra", "dropped", "unset", "cannot"]

KIND_TITLES: dict[Kind, str] = {
    "mapped": "became a plan key",
    "extra": "carried into launch.extra",
    "unset": "unset in the source, left out",
    "dropped": "dropped on purpose",
    "cannot": "cannot be carried",
}


@dataclass(frozen=True, slots=True)
class Record:
    """What one source key became.

    `source` names the key as the user wrote it (`max_resolution`, `--learning_rate`,
    `datasets[0].subsets[1].image_dir`); `default` marks a value the source tool supplies
    itself when its file does not hold the key (a preset loaded into a fresh kohya_ss GUI).
    """

    source: str
    kind: Kind
    plan_key: str | None = None
    value: Any = None
    reason: str = ""
    default: bool = False

    def to_json(self) -> dict[str, Any]:
        """One entry of `import --json`'s `records`."""
        data: dict[str, Any] = {"source": self.source, "kind": self.kind}
        if self.plan_key is not None:
            data["plan_key"] = self.plan_key
            data["value"] = self.value
        if self.reason:
            data["reason"] = self.reason
        if self.default:
            data["default"] = True
        return data


@dataclass(frozen=True, slots=True)
class Filled:
    """A plan key no source key gives: what sd-scripts does without it, or (`placeholder`) a
    value the user must change because the source lacks something a plan needs."""

    plan_key: str
    value: Any
    reason: str
    placeholder: bool = False


@dataclass(frozen=True)
class ImportResult:
    """Plan data (a dict that validates as a plan once its placeholders are changed) and how
    every source key got there."""

    format: str
    script: str
    plan: dict[str, Any]
    records: tuple[Record, ...]
    filled: tuple[Filled, ...] = ()
    notes: tuple[str, ...] = ()
    source_steps: int | None = field(default=None)
    """Total steps the source tool itself would have had sd-scripts run (kohya_ss: its own
    arithmetic), to compare with what `check` counts."""

    def record(self, source: str) -> Record:
        """The record of one source key (KeyError if there is none)."""
        for item in self.records:
            if item.source == source:
                return item
        raise KeyError(source)

    def to_json(self) -> dict[str, Any]:
        """The mapping report as data."""
        return {
            "format": self.format,
            "script": self.script,
            "records": [r.to_json() for r in self.records],
            "filled": [
                {
                    "plan_key": f.plan_key,
                    "value": f.value,
                    "reason": f.reason,
                    "placeholder": f.placeholder,
                }
                for f in self.filled
            ],
            "notes": list(self.notes),
            "source_steps": self.source_steps,
        }
