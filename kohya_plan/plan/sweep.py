"""[sweep]: a grid of plan values; `kohya-plan sweep` makes one run per combination."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from kohya_plan.plan.common import PositiveInt, ScalarValue, Section, Text

_KEY = re.compile(r"^[a-z_]+(\.[a-z_][a-z0-9_]*)+$")
# what a sweep sets itself for each point, or cannot vary between the points of one sweep
NOT_SWEPT = {
    "output.name": "each point is named <name>-<its values>",
    "output.runs_dir": "the points' run folders go into the sweep's folder",
    "sweep": "a sweep does not sweep itself",
    "slurm": "one job array runs every point with the same resources",
}


def grid_key_problem(key: str) -> str | None:
    """Why a plan key cannot be a grid axis (None when it can)."""
    if not _KEY.match(key):
        return f"{key!r} is not a plan key — write section.key, e.g. optimizer.unet_lr"
    for prefix, why in NOT_SWEPT.items():
        if key == prefix or key.startswith(prefix + "."):
            return f"{key!r} cannot be swept: {why}"
    return None


class SweepSection(Section):
    """The grid: each key takes each of its values, every combination is one run."""

    grid: dict[Text, list[ScalarValue]] = Field(
        default_factory=dict,
        description='{ "optimizer.unet_lr" = [1e-4, 5e-5], "network.dim" = [16, 32] }',
    )
    max_parallel: PositiveInt | None = Field(
        None, description="As a SLURM job array: at most this many points at once."
    )

    @field_validator("grid")
    @classmethod
    def _axes(cls, value: dict[str, list[ScalarValue]]) -> dict[str, list[ScalarValue]]:
        problems = []
        for key, values in value.items():
            why = grid_key_problem(key)
            if why is not None:
                problems.append(why)
            elif not values:
                problems.append(f"{key!r} has no values — give at least one, e.g. [16, 32]")
            elif len({repr(v) for v in values}) != len(values):
                problems.append(f"{key!r} lists a value twice — each point must differ")
        if problems:
            raise ValueError("; ".join(problems))
        return value
