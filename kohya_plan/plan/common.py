"""Shared field types and the base class of every plan section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
)

BASE_DIR_KEY = "base_dir"


class Section(BaseModel):
    """A plan section: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def control_character_problem(text: str) -> str | None:
    """Why ``text`` cannot be a file name or path as written (a NUL byte, a control character).

    No file system takes a NUL byte (the OS refuses the call); other control characters are
    allowed by some but break the files written for sd-scripts and the terminal showing them.
    A tab, newline, backspace, form feed or carriage return is most often a Windows path that a
    double-quoted TOML string has mangled (a backslash starts an escape there): said so.
    """
    for index, char in enumerate(text):
        code = ord(char)
        if code == 0:
            return (
                f"contains a NUL byte (\\x00, at position {index}), which no file system allows "
                "in a name — remove it"
            )
        if char in "\t\n\b\f\r":
            return (
                f"contains the control character {char!r} (at position {index} of {text!r}): in "
                "a double-quoted TOML string a backslash starts an escape (\\t, \\n, \\b …) — "
                "write Windows paths in single quotes ('C:\\Users\\me') or with forward slashes "
                '("C:/Users/me")'
            )
        if code < 0x20 or 0x7F <= code < 0xA0:
            return (
                f"contains the control character {char!r} (at position {index}), which breaks "
                "the files written for sd-scripts — write it without (and rename the file or "
                "folder that has it)"
            )
    return None


def _no_control_characters(value: Any) -> Any:
    if isinstance(value, (str, Path)):
        problem = control_character_problem(str(value))
        if problem is not None:
            raise ValueError(problem)
    return value


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a path absolute against the plan file's folder (given in the validation context)."""
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


PlanPath = Annotated[Path, BeforeValidator(_no_control_characters), AfterValidator(resolve_path)]
OptionalPlanPath = Annotated[
    Path | None, BeforeValidator(_no_control_characters), AfterValidator(resolve_path_or_none)
]
PlainText = Annotated[str, Strict(), BeforeValidator(_no_control_characters)]
"""A string that names a file, folder or program: no NUL byte, no control character."""

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
