"""Values as sd-scripts reads them: the option snapshot's types, `key=value` lists, resolutions,
prompt files. Pure helpers shared by every importer."""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kohya_plan.families import FAMILIES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kohya_plan.options import Option

SCRIPT_FAMILY: dict[str, str] = {f.script: f.name for f in FAMILIES.values()}
"""The training script of each model family (kohya_plan.families)."""

# Scripts of sd-scripts that train something other than a LoRA: refused by name.
OTHER_SCRIPTS: dict[str, str] = {
    "train_db.py": "DreamBooth",
    "fine_tune.py": "fine-tuning",
    "sdxl_train.py": "SDXL fine-tuning",
    "flux_train.py": "Flux fine-tuning",
    "sd3_train.py": "SD3 fine-tuning",
    "train_textual_inversion.py": "textual inversion",
    "sdxl_train_textual_inversion.py": "SDXL textual inversion",
    "train_textual_inversion_XTI.py": "textual inversion (XTI)",
    "sd3_train_network.py": "SD3 LoRA",
    "lumina_train_network.py": "Lumina LoRA",
    "anima_train_network.py": "Anima LoRA",
    "hunyuan_image_train_network.py": "HunyuanImage LoRA",
    "train_control_net.py": "ControlNet",
    "sdxl_train_control_net.py": "SDXL ControlNet",
}


@dataclass(frozen=True, slots=True)
class Given:
    """One value as sd-scripts would receive it, and the source key it came from.

    `parts` names the source key behind each `key=value` of a list option (the kohya_ss GUI
    builds `network_args` from many fields); `default` marks the source tool's own default.
    """

    value: Any
    source: str
    default: bool = False
    parts: Mapping[str, str] | None = None


def script_options(script: str) -> dict[str, Option] | None:
    """The snapshot of `script`'s parser, or None while kohya-plan has none for it."""
    from kohya_plan.options import options_for

    try:
        return options_for(script)
    except KeyError:
        return None


def known_options(script: str) -> dict[str, Option]:
    """The options to type values with: the script's own, else train_network.py's (shared)."""
    from kohya_plan.options import options_for

    return script_options(script) or options_for("train_network.py")


class CannotCarry(Exception):
    """A value sd-scripts could not use as given (the message says why)."""


def typed(option: Option | None, value: Any) -> tuple[Any, str]:
    """The value with the option's type, and a note when the source wrote it otherwise."""
    if option is None:
        return value, ""
    if option.is_list:
        if isinstance(value, list):
            items = [typed_scalar(option, item) for item in value]
            return [v for v, _ in items], next((n for _, n in items if n), "")
        item, note = typed_scalar(option, value)
        # sd-scripts accepts one text-encoder LR (backward compatibility); other list options
        # would be iterated character by character.
        return [item], note or (
            "" if option.dest == "text_encoder_lr" else "one value given for a list option"
        )
    if isinstance(value, list):
        msg = f"{option.dest} takes one value, got a list {value!r}"
        raise CannotCarry(msg)
    return typed_scalar(option, value)


def typed_scalar(option: Option, value: Any) -> tuple[Any, str]:
    """One value converted losslessly to what argparse would have made of it."""
    kind = "bool" if option.action in ("store_true", "store_false") else option.type
    text_note = f"written as text {value!r}; sd-scripts reads config values without conversion"
    if kind == "bool":
        if isinstance(value, bool):
            return value, ""
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", text_note
        if isinstance(value, int) and value in (0, 1):
            return bool(value), f"written as {value}"
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, ""
        if isinstance(value, float) and value.is_integer():
            return int(value), f"written as {value!r}"
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value), text_note
    elif kind in ("float", "int_or_float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if kind == "float" or not isinstance(value, float) or value < 1:
                return value, ""
            return (int(value), f"written as {value!r}") if value.is_integer() else (value, "")
        if isinstance(value, str):
            try:
                number = float(value.strip().removesuffix("%"))
            except ValueError:
                pass
            else:
                if value.strip().endswith("%") and kind == "int_or_float":
                    return number / 100, text_note
                if math.isfinite(number):
                    if kind == "int_or_float" and number >= 1 and number.is_integer():
                        return int(number), text_note
                    return number, text_note
    elif isinstance(value, str):
        return value, ""
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value), f"written as the number {value!r}"
    msg = f"{option.dest} takes {_expected(kind)}, got {value!r}"
    raise CannotCarry(msg)


def _expected(kind: str) -> str:
    return {
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
        "int_or_float": "a step count or a ratio",
    }.get(kind, "text")


def parse_key_values(items: list[str], *, literal: bool) -> tuple[dict[str, Any], list[str]]:
    """`["k=v", ...]` → `{k: v}` as sd-scripts reads them (and what could not be read).

    Optimizer and scheduler arguments go through `ast.literal_eval` in sd-scripts ("0.9,0.99"
    is a tuple); network arguments stay strings, so they become numbers here only where the
    number prints back as the same text (the renderer writes `str(value)`).
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or "=" in text:
            problems.append(f"{item!r} is not key=value (sd-scripts splits each on '=')")
            continue
        values[key.strip()] = _literal(text) if literal else _network_value(text)
    return values, problems


def _literal(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # sd-scripts would fail on it; as a string the renderer quotes it
    if isinstance(value, tuple):
        return list(value)
    return value


def _network_value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        if str(number) == text:
            return number
    return text


def bare_word(items: list[str], key: str) -> bool:
    """Whether `key`'s value in a key=value list is no Python literal (sd-scripts fails)."""
    for item in items:
        k, _, text = str(item).partition("=")
        if k.strip() == key:
            try:
                ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return True
    return False


def split_resolution(value: Any) -> int | list[int] | None:
    """sd-scripts' resolution ("512", "768,512", 512 or [768, 512]) as the plan writes it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return [int(value[0]), int(value[1])] if value[0] != value[1] else [int(value[0])] * 2
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if all(re.fullmatch(r"\d+", p) for p in parts) and len(parts) in (1, 2):
            numbers = [int(p) for p in parts]
            return numbers[0] if len(numbers) == 1 else numbers
    return None


def prompt_lines(text: str) -> list[str]:
    """Prompt lines as sd-scripts reads a .txt file (blank lines and # comments skipped)."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
