"""sd-scripts' own option table (a snapshot of its argparse parser at the pinned commit).

The snapshot is made by scripts/snapshot_sd_scripts_options.py from vendor/sd-scripts and
committed, so validation works where sd-scripts is not installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True, slots=True)
class Option:
    """One argparse option of an sd-scripts training script."""

    dest: str
    type: str
    nargs: str | int | None
    default: Any
    choices: tuple[Any, ...] | None
    action: str

    @property
    def is_list(self) -> bool:
        """Options declared with nargs take a TOML array in the config file."""
        return self.nargs in ("*", "+") or (isinstance(self.nargs, int) and self.nargs > 1)


@cache
def _snapshot() -> dict[str, Any]:
    text = resources.files("kohya_plan").joinpath("data/sd_scripts_options.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def sd_scripts_commit() -> str:
    """The sd-scripts commit the snapshot was made from."""
    return str(_snapshot()["sd_scripts_commit"])


@cache
def options_for(script: str = "train_network.py") -> dict[str, Option]:
    """Options of one training script, by dest name."""
    raw = _snapshot()["scripts"][script]
    return {
        dest: Option(
            dest=dest,
            type=str(spec.get("type")),
            nargs=spec.get("nargs"),
            default=spec.get("default"),
            choices=tuple(spec["choices"]) if spec.get("choices") else None,
            action=str(spec.get("action", "store")),
        )
        for dest, spec in raw.items()
    }


def value_problem(option: Option, value: Any) -> str | None:
    """Why `value` would not work for `option` in a config file (no conversion happens there)."""
    if option.is_list:
        if not isinstance(value, list):
            return f"{option.dest} takes a list — write {option.dest} = [{_example(option)}]"
        problems = [_scalar_problem(option, item) for item in value]
        return next((p for p in problems if p), None)
    if isinstance(value, list):
        return f"{option.dest} takes one value, not a list"
    return _scalar_problem(option, value)


def _example(option: Option) -> str:
    return {"int": "1", "float": "0.1"}.get(option.type, '"..."')


def _scalar_problem(option: Option, value: Any) -> str | None:
    kind = option.type
    if option.action in ("store_true", "store_false") or kind == "bool":
        ok = isinstance(value, bool)
        expected = "true or false"
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "a whole number"
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number"
    elif kind == "int_or_float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a step count or a ratio below 1"
    else:
        ok = isinstance(value, str)
        expected = "text"
    if not ok:
        return f"{option.dest} takes {expected}, got {value!r}"
    if option.choices and value not in option.choices:
        choices = ", ".join(repr(c) for c in option.choices if c is not None)
        return f"{option.dest} takes one of {choices}, got {value!r}"
    return None


def coerce(option: Option, value: Any) -> Any:
    """The Python type argparse would have produced (ints become floats for float options)."""
    if option.type in ("float",) and not isinstance(value, bool):
        if isinstance(value, list):
            return [float(v) for v in value]
        if isinstance(value, int):
            return float(value)
    return value
