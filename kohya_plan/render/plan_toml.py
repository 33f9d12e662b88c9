"""The validated plan written back as TOML (absolute paths, every default spelled out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kohya_plan.render.dataset_toml import header_lines
from kohya_plan.render.toml_text import toml_key, toml_string, toml_value

if TYPE_CHECKING:
    from kohya_plan.plan import Plan


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{toml_key(k)} = {_inline(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, str):
        return toml_string(value)
    return toml_value(value)


def dump_plan(plan: Plan, header: str) -> str:
    """TOML text of the plan that, loaded again, validates to the same plan."""
    data = plan.model_dump(mode="json", exclude_none=True)
    lines = header_lines(header)
    for section, values in data.items():
        tables = {
            k: v for k, v in values.items() if isinstance(v, list) and v and isinstance(v[0], dict)
        }
        lines.append(f"[{section}]")
        lines += [f"{toml_key(k)} = {_inline(v)}" for k, v in values.items() if k not in tables]
        for key, rows in tables.items():
            for row in rows:
                lines += ["", f"[[{section}.{key}]]"]
                lines += [f"{toml_key(k)} = {_inline(v)}" for k, v in row.items()]
        lines.append("")
    return "\n".join(lines)
