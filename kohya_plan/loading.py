"""Read a plan file, apply `--set` overrides, validate, and report every problem at once."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from kohya_plan import rules, rundir
from kohya_plan.errors import PlanError, UsageError
from kohya_plan.plan import (
    DatasetSection,
    DeepSpeedSection,
    FluxSection,
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
    "flux": FluxSection,
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
        fix = windows_path_hint(text, str(exc)) or "fix the syntax at that line"
        problem = _invalid(str(path), f"invalid TOML: {exc}", fix)
        raise PlanError([problem]) from None


_WINDOWS_HINT = (
    'a backslash in a "double-quoted" TOML string starts an escape (\\U, \\n, \\t …): '
    "write Windows paths in single quotes ('C:\\Users\\me\\data') or with forward slashes "
    '("C:/Users/me/data")'
)


def windows_path_hint(text: str, error: str) -> str | None:
    """The fix for a TOML error caused by a Windows path in a double-quoted string, if it is one."""
    import re

    match = re.search(r"line (\d+)", error)
    lines = text.splitlines()
    if match is None or not 0 < int(match.group(1)) <= len(lines):
        return None
    line = lines[int(match.group(1)) - 1]
    if '"' in line and "\\" in line:
        return _WINDOWS_HINT
    return None


def is_plan_folder(path: Path) -> bool:
    """A folder holding a plan file (what `init` makes), not a run folder (made by `make`)."""
    from kohya_plan.templates import PLAN_FILE

    run = rundir.RunDir(path)
    if not path.is_dir() or run.is_made() or (path / rundir.PLAN_SOURCE).exists():
        return False
    return (path / PLAN_FILE).is_file()


def plan_file(path: Path) -> Path:
    """PLAN as the user may give it: the plan file, or the folder `init` made (its plan.toml).

    A run folder is refused with the way out: its plan.toml is a copy whose own `runs/` would
    be inside the run folder.
    """
    from kohya_plan.templates import PLAN_FILE

    if not path.is_dir():
        return path
    if is_plan_folder(path):
        return path / PLAN_FILE
    run = rundir.RunDir(path)
    if run.is_made() or (path / rundir.PLAN_SOURCE).exists():
        source = source_plan(run)
        instead = f"give its plan, {source}" if source else "give the plan file it was made from"
        msg = (
            f"{path} is a run folder made by `make`, not a plan — {instead} "
            f"(`kohya-plan launch {path}` runs the folder itself)"
        )
        raise UsageError(msg)
    msg = (
        f"{path} is a folder without a {PLAN_FILE} — give the plan file, or write one with "
        f"`kohya-plan init {path}`"
    )
    raise UsageError(msg)


def source_plan(run: rundir.RunDir) -> str | None:
    """The plan file a run folder was made from (check.json records it), if it still exists."""
    from pathlib import Path

    try:
        record = run.read_json(rundir.CHECK, required=False) or {}
    except rundir.RunDirError:
        return None
    source = record.get("plan")
    return source if isinstance(source, str) and Path(source).is_file() else None


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
    except tomllib.TOMLDecodeError as exc:
        if value.strip()[:1] in ('"', "'", "[", "{"):
            # Meant as a TOML value, but not one: taking it as text would keep the quotes.
            where = str(exc).split(" (at ")[0]
            fix = windows_path_hint(value, "line 1") or "write the value as TOML, or bare"
            problem = _invalid("--set", f"{text!r} is not a TOML value ({where})", fix)
            raise PlanError([problem]) from None
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


# What stands in for a required section that did not validate, so that the rest can be checked.
_STAND_INS: dict[str, dict[str, Any]] = {
    "model": {"base": "unchecked/unchecked"},
    "dataset": {"subsets": [{"image_dir": ".kohya-plan-unchecked"}]},
    "output": {"name": "unchecked"},
}


def partial_plan(data: Mapping[str, Any], base_dir: Path) -> tuple[Plan, frozenset[str]] | None:
    """The plan with each section that does not validate replaced by a stand-in, and their names.

    So that one broken section does not hide what the others would show (`check` still looks
    at the dataset when `[network]` has a typo). None when even that does not validate. The
    stand-ins (defaults, or a placeholder for a required section) must not be checked: only
    the sections not named broken say anything about the plan.
    """
    context = {BASE_DIR_KEY: base_dir}
    usable: dict[str, Any] = {}
    broken: set[str] = set()
    for name, info in Plan.model_fields.items():
        model = _MODELS.get(name)
        value = data.get(name)
        if value is None and not info.is_required():
            continue  # the section's defaults
        try:
            if model is None or value is None:
                raise ValueError(name)
            model.model_validate(value, context=context)
        except (ValidationError, ValueError):
            broken.add(name)
            if info.is_required():
                usable[name] = _STAND_INS[name]
            continue
        usable[name] = value
    try:
        return Plan.model_validate(usable, context=context), frozenset(broken)
    except ValidationError:
        return None


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
        if errors[0]["type"] == "value_error" and (len(parts) > 1 or not field):
            for part in parts:
                message, _, fix = part.partition(" — ")
                # The plan-wide validator (plan/fit.py) names its field: "model.ae: ...".
                named = _NAMED.match(message) if not field else None
                where = named.group(1) if named else field
                text = named.group(2) if named else message
                problems.append(replace(problem, field=where, message=text, fix=fix))
        else:
            problems.append(problem)
    return problems


_NAMED = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.DOTALL)


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
    if kind in _BOUNDS:
        model = _model_for(field)
        info = model.model_fields.get(name) if model else None
        whole = _whole_field(info.annotation) if info else isinstance(value, int)
        declared = [*info.metadata, *_annotated_metadata(info.annotation)] if info else []
        span = _range(declared, error.get("ctx") or {}, whole=whole)
        what = "a whole number" if whole else "a number"
        return _invalid(
            field, f"expected {what} {span}, got {toml_repr(value)}", f"use a value {span}"
        )
    kinds = dict.fromkeys(_expected(e) for e in errors)
    if "a whole number" in kinds and "a number" in kinds:
        del kinds["a whole number"]  # int | float: any number
    expected = " or ".join(kinds)
    return _invalid(
        field,
        f"expected {expected}, got {toml_repr(value)} ({_toml_type(value)})",
        _type_fix(name, errors, value),
    )


_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def toml_repr(value: Any) -> str:
    """A value as it is written in TOML: `"32"`, `true`, `1000.0`, `[1, 2]`."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_repr(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_repr(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text in quotes"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number with a decimal point or exponent"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _annotated_metadata(annotation: Any) -> list[Any]:
    """Constraints declared inside a field's type (`PositiveInt | None`: gt=0)."""
    import typing

    found: list[Any] = []
    pending = [annotation]
    while pending:
        item = pending.pop()
        if typing.get_origin(item) is typing.Annotated:
            for meta in item.__metadata__:
                found.extend(getattr(meta, "metadata", None) or [meta])  # FieldInfo or Gt/Le
            pending.append(typing.get_args(item)[0])
        elif typing.get_origin(item) is not tuple:
            pending.extend(typing.get_args(item))
    return found


def _whole_field(annotation: Any) -> bool:
    """Whether a field takes whole numbers only (int, not float, among its types)."""
    import typing

    types: set[Any] = set()
    pending = [annotation]
    while pending:
        item = pending.pop()
        args = typing.get_args(item)
        if typing.get_origin(item) is typing.Annotated:
            pending.append(args[0])
        elif args and typing.get_origin(item) is not tuple:
            pending.extend(args)
        else:
            types.add(item)
    return int in types and float not in types


def _range(metadata: Iterable[Any], ctx: Mapping[str, Any], *, whole: bool) -> str:
    """The allowed range of a field, from its declared bounds: `from 1 to 1024`, `> 0`."""
    bounds: dict[str, Any] = {}
    for item in metadata:
        for key in ("gt", "ge", "lt", "le"):
            if getattr(item, key, None) is not None:
                bounds[key] = getattr(item, key)
    bounds.update({k: v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le")})
    bounds = {k: f"{v:g}" if isinstance(v, float) else v for k, v in bounds.items()}
    low = bounds.get("ge")
    if low is None and "gt" in bounds and whole:
        low = bounds["gt"] + 1
    high = bounds.get("le")
    if high is None and "lt" in bounds and whole:
        high = bounds["lt"] - 1
    if low is not None and high is not None:
        return f"from {low} to {high}"
    lower = f">= {low}" if low is not None else f"> {bounds['gt']}" if "gt" in bounds else ""
    upper = f"<= {high}" if high is not None else f"< {bounds['lt']}" if "lt" in bounds else ""
    return " and ".join(p for p in (lower, upper) if p) or "in the allowed range"


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
    if kind in _BOUNDS:
        return "a value " + _range((), ctx, whole=isinstance(error.get("input"), int))
    return str(error["msg"]).lower()


def _type_fix(name: str, errors: list[dict[str, Any]], value: Any) -> str:
    kinds = {e["type"] for e in errors}
    if kinds & {"int_type", "int_parsing", "int_from_float"}:
        if name == "resolution":
            return "write resolution = 512 or resolution = [768, 512]"
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return f"write {name} = {int(value)}, without quotes"
        if isinstance(value, float) and value.is_integer():
            return f"write {name} = {int(value)} (a whole number has no decimal point or exponent)"
        if isinstance(value, bool):
            return f"true is not 1 here: write a whole number, e.g. {name} = 10"
        return f"write a whole number, e.g. {name} = 10"
    if kinds & {"float_type", "float_parsing"}:
        if isinstance(value, str) and _is_number(value):
            return f"write {name} = {value.strip()}, without quotes"
        return f"write a number, e.g. {name} = 0.0001"
    if kinds & {"bool_type", "bool_parsing"}:
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            word = "true" if value.strip().lower() in _TRUE_WORDS else "false"
            return f"write {name} = {word} (TOML's true/false, without quotes)"
        return f"write {name} = true or {name} = false"
    if kinds & {"string_type"}:
        example = toml_repr(toml_repr(value)) if isinstance(value, (int, float)) else '"..."'
        return f"write it in quotes, e.g. {name} = {example}"
    if kinds & {"literal_error"}:
        ctx = errors[0].get("ctx") or {}
        return f"use {ctx.get('expected', 'one of the listed values')}"
    if kinds & {"tuple_type", "list_type", "too_short", "too_long"}:
        return "write a list, e.g. [768, 512]" if name == "resolution" else "write a TOML list"
    if kinds & {"dict_type", "model_type"}:
        return f"write it as a table: [{name}] or {name} = {{ ... }}"
    return "see the template (`kohya-plan init`) for an example"


_TRUE_WORDS = frozenset({"true", "yes", "on", "1", "y"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", "n"})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
