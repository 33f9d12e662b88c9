"""Read a plan file, apply `--set` overrides, validate, and report every problem at once."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from kohya_plan import rules
from kohya_plan.errors import PlanError
from kohya_plan.plan import (
    DatasetSection,
    DeepSpeedSection,
    LaunchSection,
    ModelSection,
    NetworkSection,
    OptimizerSection,
    OutputSection,
    Plan,
    RulesSection,
    SamplingSection,
    SlurmSection,
    SubsetSection,
    SweepSection,
    TrainingSection,
)
from kohya_plan.plan.common import BASE_DIR_KEY

if TYPE_CHECKING:
    from pathlib import Path

    from kohya_plan.findings import Finding

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_invalid = rules.INVALID.finding

# Which model validates which dotted location (list indices dropped).
_MODELS: dict[str, type[BaseModel]] = {
    "": Plan,
    "model": ModelSection,
    "dataset": DatasetSection,
    "dataset.subsets": SubsetSection,
    "network": NetworkSection,
    "optimizer": OptimizerSection,
    "training": TrainingSection,
    "sampling": SamplingSection,
    "output": OutputSection,
    "launch": LaunchSection,
    "launch.deepspeed": DeepSpeedSection,
    "slurm": SlurmSection,
    "sweep": SweepSection,
    "rules": RulesSection,
}
_EXAMPLES = {
    "model.base": 'base = "stable-diffusion-v1-5/stable-diffusion-v1-5"',
    "output.name": 'name = "xunxian"',
    "model": '[model] with base = "stable-diffusion-v1-5/stable-diffusion-v1-5"',
    "dataset": '[dataset] with train_dir = "datasets/xunxian"',
    "output": '[output] with name = "xunxian"',
    "dataset.subsets.image_dir": 'image_dir = "datasets/xunxian/50_xunxian"',
}


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax and encoding problems become a PlanError naming the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PlanError([_invalid(str(path), "file not found", "check the path")]) from None
    except IsADirectoryError:
        problem = _invalid(str(path), "is a folder", "give the plan's .toml file")
        raise PlanError([problem]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = _invalid(str(path), f"is not UTF-8 (byte {exc.start})", "save the file as UTF-8")
        raise PlanError([problem]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = _invalid(str(path), f"invalid TOML: {exc}", "fix the syntax at that line")
        raise PlanError([problem]) from None


def loads_toml(text: str) -> dict[str, Any]:
    """Parse TOML text (tomllib, or tomli on Python 3.10)."""
    return tomllib.loads(text)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` → (["section", "key"], value typed as TOML; bare words are strings)."""
    key, sep, value = text.partition("=")
    keys = [k.strip() for k in key.split(".")]
    if not sep or len(keys) < 2 or not all(keys):
        problem = _invalid(
            "--set", f"{text!r} is not section.key=value", "e.g. --set training.epochs=5"
        )
        raise PlanError([problem])
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return keys, parsed


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of the plan data with each `--set` applied (tables created as needed)."""
    result = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                problem = _invalid("--set", f"{where} is not a table", f"cannot set {text!r}")
                raise PlanError([problem])
            node = child
        node[keys[-1]] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def validate_plan(data: Mapping[str, Any], base_dir: Path) -> Plan:
    """Validate plan data; relative paths are taken against `base_dir`."""
    try:
        return Plan.model_validate(data, context={BASE_DIR_KEY: base_dir})
    except ValidationError as exc:
        raise PlanError(problems_from_validation(exc)) from None


def load_plan(path: Path, overrides: Iterable[str] = ()) -> Plan:
    """Read, override and validate the plan file at `path`."""
    data = apply_overrides(read_toml(path), overrides)
    return validate_plan(data, path.resolve().parent)


def problems_from_validation(exc: ValidationError) -> list[Finding]:
    """One finding per location, with the dotted TOML path, what is wrong, and the fix."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        field = _dotted(error["loc"])
        grouped.setdefault(field, []).append(dict(error))
    problems: list[Finding] = []
    for field, errors in grouped.items():
        problem = _problem(field, errors)
        # A validator that found several things joins them with "; " (pydantic keeps one error).
        parts = (
            f"{problem.message} — {problem.fix}".split("; ") if problem.fix else [problem.message]
        )
        if errors[0]["type"] == "value_error" and len(parts) > 1:
            for part in parts:
                message, _, fix = part.partition(" — ")
                problems.append(replace(problem, message=message, fix=fix))
        else:
            problems.append(problem)
    return problems


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        elif _is_type_tag(item):
            continue  # pydantic names the union member it tried; the user never wrote that
        else:
            parts.append(item)
    return ".".join(parts)


def _is_type_tag(item: str) -> bool:
    # Field names are identifiers; union member tags look like "int", "tuple[int,int]",
    # "constrained-int" or "function-after[...]".
    return not item.isidentifier() or item in {
        "int",
        "float",
        "str",
        "bool",
        "list",
        "tuple",
        "dict",
    }


def _model_for(field: str) -> type[BaseModel] | None:
    parent = ".".join(p.split("[")[0] for p in field.split(".")[:-1])
    return _MODELS.get(parent)


def _problem(field: str, errors: list[dict[str, Any]]) -> Finding:
    error = errors[0]
    kind = error["type"]
    value = error.get("input")
    name = field.rsplit(".", 1)[-1].split("[")[0]
    plain = ".".join(p.split("[")[0] for p in field.split("."))
    if kind == "extra_forbidden":
        model = _model_for(field)
        choices = list(model.model_fields) if model else []
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
        fix = (
            f'did you mean "{close[0]}"?'
            if close
            else "remove it; valid keys: " + ", ".join(choices)
        )
        where = "section" if "." not in field else "key"
        return rules.UNKNOWN_KEY.finding(field, f"unknown {where}", fix)
    if kind == "missing":
        example = _EXAMPLES.get(plain, f"{name} = ...")
        return rules.MISSING.finding(field, "is required", f"add {example}")
    if kind in {"value_error", "assertion_error"}:
        text = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        message, _, fix = text.partition(" — ")
        return _invalid(field, message, fix)
    if kind == "finite_number":
        return _invalid(field, f"{value!r} is not a finite number", "use an ordinary number")
    expected = " or ".join(dict.fromkeys(_expected(e) for e in errors))
    return _invalid(field, f"expected {expected}, got {value!r}", _type_fix(name, errors))


def _expected(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind.startswith("int_"):
        return "a whole number"
    if kind.startswith("float_"):
        return "a number"
    if kind.startswith("bool_"):
        return "true or false"
    if kind.startswith("string_"):
        return "text in quotes"
    if kind in {"tuple_type", "list_type"}:
        return "a list"
    if kind in {"too_short", "too_long"}:
        return f"a list of {ctx.get('max_length', ctx.get('min_length', 'the right'))} items"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "a table"
    if kind == "literal_error":
        return str(ctx.get("expected", "one of the allowed values"))
    bounds = {
        "greater_than": "a value > {gt}",
        "greater_than_equal": "a value >= {ge}",
        "less_than": "a value < {lt}",
        "less_than_equal": "a value <= {le}",
    }
    if kind in bounds:
        return bounds[kind].format(**ctx)
    return str(error["msg"]).lower()


def _type_fix(name: str, errors: list[dict[str, Any]]) -> str:
    kinds = {e["type"] for e in errors}
    if kinds & {"int_type", "int_parsing", "int_from_float"}:
        if name == "resolution":
            return "write resolution = 512 or resolution = [768, 512]"
        return f"write a whole number, e.g. {name} = 10"
    if kinds & {"float_type", "float_parsing"}:
        return f"write a number, e.g. {name} = 0.0001"
    if kinds & {"bool_type", "bool_parsing"}:
        return f"write {name} = true or {name} = false"
    if kinds & {"string_type"}:
        return f'write it in quotes, e.g. {name} = "..."'
    if kinds & {"literal_error"}:
        ctx = errors[0].get("ctx") or {}
        return f"use {ctx.get('expected', 'one of the listed values')}"
    if kinds & {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return f"change {name} to a value in that range"
    if kinds & {"tuple_type", "list_type", "too_short", "too_long"}:
        return "write a list, e.g. [768, 512]" if name == "resolution" else "write a TOML list"
    if kinds & {"dict_type", "model_type"}:
        return f"write it as a table: [{name}] or {name} = {{ ... }}"
    return "see the template (`kohya-plan init`) for an example"
