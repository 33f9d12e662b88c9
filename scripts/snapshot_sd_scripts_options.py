"""Snapshot the command-line options of sd-scripts' training scripts into a JSON file.

Run it with the sd-scripts venv's python (it imports sd-scripts, hence torch etc.):

    .venv-sd/bin/python scripts/snapshot_sd_scripts_options.py
    .venv-sd/bin/python scripts/snapshot_sd_scripts_options.py --output OUT.json \
        --sd-scripts vendor/sd-scripts

Default output: kohya_plan/data/sd_scripts_options.json. The output is deterministic
(sorted keys, indent 1), so a regenerated file can be compared byte for byte.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SD_SCRIPTS = REPO_ROOT / "vendor" / "sd-scripts"
DEFAULT_OUTPUT = REPO_ROOT / "kohya_plan" / "data" / "sd_scripts_options.json"

# script file name -> module name whose setup_parser() builds its parser
SCRIPTS = {
    "train_network.py": "train_network",
    "sdxl_train_network.py": "sdxl_train_network",
    "flux_train_network.py": "flux_train_network",
}

_TYPE_NAMES: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    pathlib.Path: "path",
}

_ACTION_NAMES = {
    "_StoreAction": "store",
    "_StoreTrueAction": "store_true",
    "_StoreFalseAction": "store_false",
    "_StoreConstAction": "store_const",
    "_AppendAction": "append",
    "_AppendConstAction": "append_const",
    "_CountAction": "count",
    "_HelpAction": "help",
    "_VersionAction": "version",
    "BooleanOptionalAction": "boolean_optional",
    "_ExtendAction": "extend",
}


def type_name(action: argparse.Action) -> str:
    """A stable name for an option's value type."""
    action_name = action_kind(action)
    if action_name in ("store_true", "store_false", "boolean_optional"):
        return "bool"
    if action_name == "count":
        return "int"
    t = action.type
    if t is None:
        if action_name in ("store_const", "append_const"):
            return "const"
        return "str"
    if t in _TYPE_NAMES:
        return _TYPE_NAMES[t]
    name = getattr(t, "__name__", None) or type(t).__name__
    # sd-scripts defines int_or_float as a nested helper in library/train_util.py
    if name == "int_or_float":
        return "int_or_float"
    return str(name)


def action_kind(action: argparse.Action) -> str:
    cls = type(action).__name__
    return _ACTION_NAMES.get(cls, cls)


def jsonable(value: Any) -> Any:
    """Convert a default / choice value into something JSON can hold, deterministically."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):  # NaN / inf
            return repr(value)
        return value
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return repr(value)


def describe_parser(parser: argparse.ArgumentParser) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for action in parser._actions:
        kind = action_kind(action)
        if kind == "help" or not action.option_strings:
            continue
        if action.dest in options:
            msg = f"duplicate dest {action.dest!r}"
            raise RuntimeError(msg)
        default = action.default
        if default is argparse.SUPPRESS:
            default = None
        options[action.dest] = {
            "flags": list(action.option_strings),
            "type": type_name(action),
            "nargs": action.nargs if action.nargs is None else jsonable(action.nargs),
            "default": jsonable(default),
            "choices": None if action.choices is None else jsonable(list(action.choices)),
            "action": kind,
        }
    return options


def git_head(path: pathlib.Path) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=path,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def build_snapshot(sd_scripts: pathlib.Path) -> dict[str, Any]:
    sd_scripts = sd_scripts.resolve()
    # sd-scripts imports its modules (library.*, networks.*) relative to its root
    sys.path.insert(0, str(sd_scripts))
    old_cwd = pathlib.Path.cwd()
    os.chdir(sd_scripts)
    try:
        scripts: dict[str, Any] = {}
        for script, module_name in SCRIPTS.items():
            module = importlib.import_module(module_name)
            scripts[script] = describe_parser(module.setup_parser())
    finally:
        os.chdir(old_cwd)
    return {"sd_scripts_commit": git_head(sd_scripts), "scripts": scripts}


def render(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sd-scripts", type=pathlib.Path, default=DEFAULT_SD_SCRIPTS)
    ap.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    args = ap.parse_args(argv)
    if not (args.sd_scripts / "train_network.py").is_file():
        print(
            f"error: {args.sd_scripts} has no train_network.py; "
            "run: git submodule update --init vendor/sd-scripts",
            file=sys.stderr,
        )
        return 1
    snapshot = build_snapshot(args.sd_scripts)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(snapshot), encoding="utf-8")
    counts = ", ".join(f"{k}: {len(v)} options" for k, v in snapshot["scripts"].items())
    print(f"wrote {args.output} (sd-scripts {snapshot['sd_scripts_commit'][:12]}; {counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
