"""A small TOML writer whose output both `toml` 0.10.2 (sd-scripts' reader) and `tomllib` read
back identically: basic strings with every escape spelled out, homogeneous inline arrays."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

TomlScalar = str | bool | int | float
TomlValue = TomlScalar | Sequence[TomlScalar]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    """A TOML basic string; control characters as escapes, other text (CJK too) as UTF-8."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _visible(char: str) -> str:
    code = ord(char)
    if char == "\t":
        return char
    if code < 0x20 or 0x7F <= code < 0xA0 or char in "\u2028\u2029" or 0xD800 <= code < 0xE000:
        return char.encode("unicode_escape").decode("ascii")
    return char


def comment_text(text: str) -> str:
    """``text`` for one TOML comment line: control characters (line breaks too), C1 controls,
    line separators and undecodable bytes (lone surrogates) as visible escapes (``\\n``,
    ``\\x1b``, ``\\udcff``), since TOML forbids them in comments and a line break would end
    the comment; tomllib and toml 0.10.2 then read the file the same."""
    return "".join(_visible(char) for char in text)


def toml_key(key: str) -> str:
    """A bare key where TOML allows one, else a quoted key."""
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value: TomlValue) -> str:
    """One TOML value. Floats keep a decimal point or exponent so they read back as floats."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"TOML for sd-scripts cannot hold {value!r}"
            raise ValueError(msg)
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    items = list(value)
    kinds = {type(item) for item in items}
    if len(kinds) > 1:
        # toml 0.10.2 rejects mixed arrays ("Not a homogeneous array").
        msg = f"TOML array must hold one type, got {sorted(k.__name__ for k in kinds)}"
        raise ValueError(msg)
    return "[" + ", ".join(toml_value(item) for item in items) + "]"


def toml_table(values: Mapping[str, TomlValue | None], indent: str = "") -> list[str]:
    """`key = value` lines, skipping None (sd-scripts' "not set")."""
    return [
        f"{indent}{toml_key(key)} = {toml_value(value)}"
        for key, value in values.items()
        if value is not None
    ]
