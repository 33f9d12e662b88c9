"""sd-scripts' own files and command lines: `--config_file` TOML, `--dataset_config` TOML, and a
pasted `accelerate launch … train_network.py --…` (POSIX or PowerShell/cmd quoting).

A config file is flattened as sd-scripts' `read_config_from_file` does (one level of tables,
a later section's key wins); command-line flags are parsed with the option snapshot of the
script and win over the config file, as with argparse.
"""

from __future__ import annotations

import difflib
import re
import shlex
from typing import TYPE_CHECKING, Any

from kohya_plan.workflows.importers.mapping import build_plan
from kohya_plan.workflows.importers.sources import Sources, resolve_path
from kohya_plan.workflows.importers.state import Builder, DatasetBlock, DatasetInput, refuse
from kohya_plan.workflows.importers.values import (
    OTHER_SCRIPTS,
    SCRIPT_FAMILY,
    Given,
    known_options,
    script_options,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import PurePath

    from kohya_plan.options import Option
    from kohya_plan.workflows.importers.report import ImportResult

DEFAULT_SCRIPT = "train_network.py"


# --- TOML -----------------------------------------------------------------------------------


def load_toml(text: str, what: str) -> dict[str, Any]:
    """Parse TOML text; a syntax error names the file and the line."""
    from kohya_plan.loading import loads_toml

    try:
        return loads_toml(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        refuse(what, f"is not valid TOML ({exc})", "fix the syntax at that line")


def flatten_config(data: Mapping[str, Any], builder: Builder, prefix: str = "") -> dict[str, Given]:
    """sd-scripts' `read_config_from_file`: tables are flattened one level, later keys win."""
    flat: dict[str, Given] = {}
    for section, value in data.items():
        items = value.items() if isinstance(value, dict) else [(section, value)]
        for key, item in items:
            source = f"{prefix}{section}.{key}" if isinstance(value, dict) else f"{prefix}{key}"
            if isinstance(item, dict):
                builder.record(
                    source,
                    "cannot",
                    reason="a nested table: sd-scripts flattens "
                    "one level of tables only and would get a dict",
                )
                continue
            if key in flat:
                builder.record(
                    flat[key].source,
                    "dropped",
                    reason=f"overridden by {source} (the later key wins)",
                )
            flat[key] = Given(item, source)
    return flat


def dataset_input(data: Mapping[str, Any], base_dir: PurePath, prefix: str = "") -> DatasetInput:
    """A `--dataset_config` file, every value attributed to its key."""
    general = data.get("general", {})
    datasets = data.get("datasets", [])
    if not isinstance(general, dict) or not isinstance(datasets, list):
        refuse(
            f"{prefix}datasets",
            "is not a dataset config ([general], [[datasets]])",
            "see sd-scripts' docs/config_README",
        )
    blocks = []
    for index, block in enumerate(datasets):
        if not isinstance(block, dict):
            refuse(f"{prefix}datasets[{index}]", "is not a table", "write [[datasets]]")
        where = f"{prefix}datasets[{index}]"
        subsets = block.get("subsets", [])
        params = {k: Given(v, f"{where}.{k}") for k, v in block.items() if k != "subsets"}
        rows = [
            {k: Given(v, f"{where}.subsets[{i}].{k}") for k, v in subset.items()}
            for i, subset in enumerate(subsets)
            if isinstance(subset, dict)
        ]
        blocks.append(DatasetBlock(where, params, rows))
    return DatasetInput(
        general={k: Given(v, f"{prefix}general.{k}") for k, v in general.items()},
        datasets=blocks,
        base_dir=base_dir,
    )


def is_dataset_config(data: Mapping[str, Any]) -> bool:
    """A TOML made of [general] and [[datasets]] only."""
    return "datasets" in data and set(data) <= {"general", "datasets"}


def read_referenced(
    given: Given, builder: Builder, *, suffix: str = ""
) -> tuple[dict[str, Any], PurePath]:
    """Read a TOML file another source names (relative to the source's folder)."""
    text = str(given.value)
    if suffix and not text.endswith(suffix):
        text += suffix  # sd-scripts appends .toml to --config_file itself
    resolved = resolve_path(text, builder.sources)
    path = type(builder.sources.base_dir)(resolved.path)
    try:
        content = builder.sources.read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        refuse(
            given.source,
            f"{resolved.path} cannot be read ({exc})",
            "give the file's path (relative to the source's folder)",
        )
    if resolved.note:
        builder.notes.append(f"{given.source}: {resolved.note}")
    return load_toml(content, given.source), path.parent


def import_config(
    text: str,
    sources: Sources,
    *,
    dataset_text: str | None = None,
    dataset_base: PurePath | None = None,
    what: str = "config",
) -> ImportResult:
    """A `--config_file` TOML (or a dataset TOML alone), with its `--dataset_config`."""
    builder = Builder("sd-scripts", sources)
    data = load_toml(text, what)
    if is_dataset_config(data):
        return _import_parts(builder, {}, data, sources.base_dir, DEFAULT_SCRIPT, None, {})
    options = flatten_config(data, builder)
    dataset_data = None if dataset_text is None else load_toml(dataset_text, "--dataset-config")
    return _import_parts(
        builder, options, dataset_data, dataset_base or sources.base_dir, DEFAULT_SCRIPT, None, {}
    )


def _import_parts(
    builder: Builder,
    options: dict[str, Given],
    dataset_data: Mapping[str, Any] | None,
    dataset_base: PurePath,
    script: str,
    family: Given | None,
    launch: Mapping[str, Given],
) -> ImportResult:
    named = options.get("dataset_config")
    prefix = ""
    if dataset_data is None and named is not None and named.value:
        dataset_data, dataset_base = read_referenced(named, builder)
        prefix = "dataset_config: "
    dataset = None if dataset_data is None else dataset_input(dataset_data, dataset_base, prefix)
    build_plan(builder, options, script=script, family=family, dataset=dataset, launch=launch)
    return builder.result(script)


# --- command lines --------------------------------------------------------------------------

_CONTINUATION = re.compile(r"(\\|`|\^)[ \t]*\r?\n")
_WINDOWS_HINTS = re.compile(r"`|\^\s*$|[A-Za-z]:\\|\.exe\b|^\s*&\s|\$env:", re.MULTILINE)
_SEPARATORS = {"&&", "||", ";", "|"}


def split_command(text: str) -> list[list[str]]:
    """The commands of a pasted text, each split into tokens.

    Line continuations (POSIX `\\`, PowerShell backtick, cmd `^`) are joined first; then each
    line is split with POSIX shell rules, or with PowerShell/cmd rules when the text looks like
    Windows (backticks, `^`, `C:\\` paths, `.exe`, `& '…'`), where a backslash is a path
    separator rather than an escape.
    """
    windows = bool(_WINDOWS_HINTS.search(text))
    joined = _CONTINUATION.sub(" ", text)
    commands: list[list[str]] = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "REM ", "rem ")):
            continue
        tokens = _split_windows(line) if windows else _split_posix(line)
        current: list[str] = []
        for token in tokens:
            if token in _SEPARATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [c for c in commands if c]


def _split_posix(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        refuse("command", f"cannot be split ({exc})", "check the quotes")


def _split_windows(line: str) -> list[str]:
    """PowerShell/cmd word splitting: '...' literal ('' is a quote), "..." ("" or `" is a
    quote), ` and ^ escape the next character outside quotes."""
    tokens: list[str] = []
    current: list[str] = []
    started = False
    i = 0
    while i < len(line):
        char = line[i]
        if char in " \t":
            if started:
                tokens.append("".join(current))
                current, started = [], False
        elif char == "'":
            end = i + 1
            while end < len(line):
                if line[end] == "'" and line[end + 1 : end + 2] == "'":
                    current.append("'")
                    end += 2
                    continue
                if line[end] == "'":
                    break
                current.append(line[end])
                end += 1
            i, started = end, True
        elif char == '"':
            end = i + 1
            while end < len(line):
                pair = line[end : end + 2]
                if pair in ('""', '`"', '\\"'):
                    current.append('"')
                    end += 2
                    continue
                if line[end] == '"':
                    break
                current.append(line[end])
                end += 1
            i, started = end, True
        elif char in "`^" and i + 1 < len(line):
            current.append(line[i + 1])
            i, started = i + 1, True
        elif char == "#" and not started:
            break
        else:
            current.append(char)
            started = True
        i += 1
    if started:
        tokens.append("".join(current))
    return tokens


def _script_index(tokens: list[str]) -> int | None:
    for index, token in enumerate(tokens):
        name = re.split(r"[\\/]", token)[-1]
        if name in SCRIPT_FAMILY or name in OTHER_SCRIPTS:
            return index
    return None


def find_training_command(text: str) -> tuple[list[str], int]:
    """The command that starts a training script, and the script's index in it."""
    found = None
    for tokens in split_command(text):
        index = _script_index(tokens)
        if index is not None:
            found = (tokens, index)
            break
    if found is None:
        refuse(
            "command",
            "names no sd-scripts training script",
            "paste the line with train_network.py (or sdxl_/flux_train_network.py)",
        )
    return found


_ACCELERATE_VALUE = {
    "--num_processes": "num_processes",
    "--num_machines": "num_machines",
    "--num_cpu_threads_per_process": "num_cpu_threads_per_process",
    "--gpu_ids": "gpu_ids",
    "--main_process_port": "main_process_port",
    "--mixed_precision": "mixed_precision",
    "--dynamo_backend": "dynamo_backend",
    "--machine_rank": "machine_rank",
    "--main_process_ip": "main_process_ip",
    "--rdzv_backend": "rdzv_backend",
    "--rdzv_conf": "rdzv_conf",
}
_ACCELERATE_INT = {
    "num_processes",
    "num_machines",
    "num_cpu_threads_per_process",
    "main_process_port",
    "machine_rank",
}


def parse_launcher(
    tokens: list[str], builder: Builder
) -> tuple[dict[str, Given], str | None, bool]:
    """accelerate's flags before the script, the Python named (if any), and whether the script
    was started through accelerate at all."""
    launch: dict[str, Given] = {}
    python = None
    start = None
    for index, token in enumerate(tokens):
        base = re.split(r"[\\/]", token)[-1].lower()
        if token in ("launch", "accelerate.commands.launch"):
            start = index + 1
            break
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
            name, _, value = token.partition("=")
            if name == "CUDA_VISIBLE_DEVICES" and value:
                launch["gpu_ids"] = Given(value, token)
            else:
                builder.record(
                    token,
                    "cannot",
                    reason="an environment variable of the run: "
                    "kohya-plan does not set environment variables",
                )
        elif base.startswith("python") and python is None:
            python = token
    if start is None:
        return launch, python, False
    i = start
    while i < len(tokens):
        token = tokens[i]
        flag, eq, inline = token.partition("=")
        source = f"accelerate {flag}"
        if flag == "--multi_gpu":
            launch["multi_gpu"] = Given(True, source)
        elif flag in ("--quiet", "-q"):
            builder.record(source, "dropped", reason="only quiets accelerate's own messages")
        elif flag in _ACCELERATE_VALUE:
            value = inline if eq else (tokens[i + 1] if i + 1 < len(tokens) else "")
            i += 0 if eq else 1
            name = _ACCELERATE_VALUE[flag]
            if name in _ACCELERATE_INT:
                if not value.isdigit():
                    refuse(source, f"{value!r} is not a whole number", "e.g. 1")
                launch[name] = Given(int(value), source)
            else:
                launch[name] = Given(value, source)
        elif flag.startswith("-"):
            has_value = not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith("-")
            launch[flag.lstrip("-")] = Given(
                inline or (tokens[i + 1] if has_value else True), source
            )
            i += 1 if has_value else 0
        i += 1
    return launch, python, True


def parse_script_args(
    tokens: list[str], script: str, *, source_prefix: str = "", what: str = "command"
) -> dict[str, Given]:
    """Script flags → sd-scripts option values, typed as argparse would type them.

    An option the script does not have is an error (argparse stops with "unrecognized
    arguments"), named with the closest real option.
    """
    known = script_options(script)
    types = known_options(script)
    values: dict[str, Given] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            refuse(
                f"{source_prefix}{token}",
                f"is not an option of {script}",
                f"{what}: each value follows its --option",
            )
        flag, eq, inline = token[2:].partition("=")
        option = _find_option(flag, types, known is not None)
        source = f"{source_prefix}--{flag}"
        if option is None:
            if known is not None:
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                hint = f'did you mean "--{close[0]}"?' if close else f"see {script} --help"
                refuse(source, f"is not a {script} option (sd-scripts would stop)", hint)
            # No snapshot of this script yet: a value follows unless the next token is a flag.
            raw: list[str] = [inline] if eq else []
            while not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                raw.append(tokens[i + 1])
                i += 1
            value: Any = True if not raw else (raw[0] if len(raw) == 1 else raw)
            _store(values, flag, Given(value, source))
            i += 1
            continue
        raw = [inline] if eq else []
        if option.action in ("store_true", "store_false"):
            if eq:
                refuse(source, "takes no value", f"write --{option.dest} alone")
            value = option.action == "store_true"
        elif option.is_list:
            while not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                raw.append(tokens[i + 1])
                i += 1
            value = [_convert(option, item, source) for item in raw]
        else:
            if not eq:
                if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                    refuse(source, "needs a value", f"write --{option.dest} VALUE")
                raw = [tokens[i + 1]]
                i += 1
            value = _convert(option, raw[0], source)
        _store(values, option.dest, Given(value, source))
        i += 1
    return values


def _store(values: dict[str, Given], dest: str, given: Given) -> None:
    values.pop(dest, None)  # argparse: the last one wins
    values[dest] = given


def _find_option(flag: str, options: Mapping[str, Option], checked: bool) -> Option | None:
    if flag in options:
        return options[flag]
    if not checked:
        return None
    prefixed = [name for name in options if name.startswith(flag)]
    return options[prefixed[0]] if len(prefixed) == 1 else None  # argparse's allow_abbrev


def _convert(option: Option, text: str, source: str) -> Any:
    try:
        if option.type == "int":
            value: Any = int(text)
        elif option.type == "float":
            value = float(text)
        elif option.type == "int_or_float":
            value = _int_or_float(text)
        else:
            value = text
    except ValueError:
        refuse(source, f"{text!r} is not {_kind(option.type)}", "fix the value")
    if option.choices and value not in option.choices:
        choices = ", ".join(str(c) for c in option.choices if c is not None)
        refuse(source, f"{value!r} is not one of {choices}", "use one of them")
    return value


def _int_or_float(text: str) -> int | float:
    """sd-scripts' `int_or_float`: "10%" is 0.1, a number ≥ 1 a step count, below 1 a ratio."""
    if text.endswith("%"):
        return float(text[:-1]) / 100.0
    number = float(text)
    return int(text) if number >= 1 else number


def _kind(kind: str) -> str:
    return {"int": "a whole number", "float": "a number"}.get(kind, "a step count or ratio")


def import_command(text: str, sources: Sources) -> ImportResult:
    """A pasted training command (with its --config_file / --dataset_config, if any)."""
    builder = Builder("command", sources)
    tokens, index = find_training_command(text)
    script_token = tokens[index]
    script = re.split(r"[\\/]", script_token)[-1]
    if script in OTHER_SCRIPTS:
        refuse(script, f"is a {OTHER_SCRIPTS[script]} script", "kohya-plan plans LoRA runs")
    launch, python, accelerated = parse_launcher(tokens[:index], builder)
    if python is not None:
        reason = "" if accelerated else "started without accelerate: kohya-plan runs it as "
        reason += "" if accelerated else "python -m accelerate.commands.launch"
        builder.set("launch.python", python, Given(python, "python"), reason)
    if re.search(r"[\\/]", script_token):
        folder = re.split(r"[\\/][^\\/]*$", script_token)[0] or "/"
        resolved = resolve_path(folder, sources)
        builder.set(
            "launch.sd_scripts",
            resolved.path,
            Given(script_token, "script path"),
            "the folder of the script",
        )
    else:
        builder.record(
            "script path",
            "dropped",
            reason=f"{script} from the current folder: "
            "set launch.sd_scripts if kohya-plan does not find sd-scripts",
        )
    flags = parse_script_args(tokens[index + 1 :], script)
    options: dict[str, Given] = {}
    config = flags.get("config_file")
    if config is not None:
        data, _ = read_referenced(config, builder, suffix=".toml")
        options = flatten_config(data, builder, prefix="config_file: ")
    for name, given in flags.items():
        if name in options:
            builder.record(
                options[name].source,
                "dropped",
                reason=f"overridden by {given.source} on the command line",
            )
        options[name] = given
    family = Given(script, script)
    return _import_parts(builder, options, None, sources.base_dir, script, family, launch)
