"""Which format a source is in, from its text (and its file name)."""

from __future__ import annotations

import json
import re
from typing import Literal

from kohya_plan.workflows.importers.state import refuse

Format = Literal["kohya_ss", "sd-scripts", "command", "sd-trainer", "lets"]
FORMATS: tuple[Format, ...] = ("kohya_ss", "sd-scripts", "command", "sd-trainer", "lets")

_COMMAND = re.compile(r"(^|[\s\\/'\"])(accelerate|[\w.-]*train[\w-]*\.py)\b|^\s*--\w", re.MULTILINE)


def detect_format(text: str, name: str = "") -> Format:
    """kohya_ss JSON, LETS / SD-Trainer / sd-scripts TOML, or a command line."""
    from kohya_plan.loading import loads_toml
    from kohya_plan.workflows.importers.lets import is_lets
    from kohya_plan.workflows.importers.sd_trainer import is_sd_trainer

    stripped = text.lstrip("\ufeff \t\r\n")
    lower = name.lower()
    if lower.endswith(".json") or stripped.startswith("{"):
        return "kohya_ss"
    if stripped.startswith("["):
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return "kohya_ss"  # a JSON array: the kohya_ss importer says what is wrong
    try:
        data = loads_toml(stripped)
    except ValueError:
        if _COMMAND.search(text):
            return "command"
        if lower.endswith(".toml"):
            return "sd-scripts"  # its importer reports the TOML syntax error
        refuse(
            "source",
            "is neither a kohya_ss JSON, a TOML config nor a training command",
            "give --format to say which it is",
        )
    if is_lets(data):
        return "lets"
    if is_sd_trainer(data):
        return "sd-trainer"
    if not data and _COMMAND.search(text):
        return "command"
    return "sd-scripts"
