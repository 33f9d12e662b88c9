"""Shared field types and the base class of every plan section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationInfo

BASE_DIR_KEY = "base_dir"


class Section(BaseModel):
    """A plan section: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_no_control_characters(value: str) -> str:
    """A path with a tab, newline or backspace in it is a Windows path TOML has mangled."""
    bad = sorted({c for c in value if ord(c) < 32})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        msg = (
            f"{value!r} contains control characters ({shown}): in a double-quoted TOML string "
            "a backslash starts an escape (\\t, \\n, \\b …) — write Windows paths in single "
            "quotes ('C:\\Users\\me') or with forward slashes (\"C:/Users/me\")"
        )
        raise ValueError(msg)
    return value


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a path absolute against the plan file's folder (given in the validation context)."""
    check_no_control_characters(str(value))
    value = value.expanduser()
    if value.is_absolute():
        return value
    context: dict[str, Any] = info.context or {}
    base = context.get(BASE_DIR_KEY)
    if base is None:
        return value.absolute()
    return (Path(base) / value).absolute()


def resolve_path_or_none(value: Path | None, info: ValidationInfo) -> Path | None:
    return None if value is None else resolve_path(value, info)


PlanPath = Annotated[Path, AfterValidator(resolve_path)]
OptionalPlanPath = Annotated[Path | None, AfterValidator(resolve_path_or_none)]

# Scalars are strict: the plan means exactly what it says. pydantic's default would read
# `"32"` as 32, `true` as 1, `"yes"` as true and `1e3` as 1000 without a word; these refuse
# them and the message says which type was expected. Every scalar field of a section uses one
# of these (tests/plan/test_strict_types.py walks the schema). Floats accept integers
# (`learning_rate = 1` is 1.0); lists stay lists (tuple fields accept TOML arrays); paths are
# written as strings.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]

PositiveInt = Annotated[int, Strict(), Field(gt=0)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]

# Values allowed in free-form tables (`network.args`, `optimizer.args`, `launch.extra`):
# what TOML gives and sd-scripts can take (checked against sd-scripts' option types).
ScalarValue = Text | Bool | Int | Float
ExtraValue = ScalarValue | list[Text] | list[Int] | list[Float]


def check_key_value_args(value: dict[str, ExtraValue], example: str) -> dict[str, ExtraValue]:
    """Keys and values that survive sd-scripts' `key=value` splitting on "=" unchanged."""
    for key, item in value.items():
        if "=" in key or not key.isidentifier():
            msg = f"key {key!r} is not a plain name — e.g. {example}"
            raise ValueError(msg)
        if isinstance(item, str) and "=" in item:
            msg = f"value of {key!r} contains '=' ({item!r}) — sd-scripts splits on '='"
            raise ValueError(msg)
    return value


_CAPTION_EXT = re.compile(r"^\.?[A-Za-z0-9_.-]+$")


def check_caption_extension(value: str) -> str:
    """sd-scripts adds a missing leading dot itself; we do it here so the rendered file is exact."""
    if not _CAPTION_EXT.match(value):
        msg = f'{value!r} is not a file extension — use something like ".txt"'
        raise ValueError(msg)
    return value if value.startswith(".") else "." + value


CaptionExtension = Annotated[str, Strict(), AfterValidator(check_caption_extension)]

PathText = Annotated[str, Strict(), AfterValidator(check_no_control_characters)]
"""A path or a Hub reference kept as text (model.base): no control characters either."""
