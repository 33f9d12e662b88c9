"""The mapping's working state: plan data being built, a record per source key, and the steps
every handler shares (take an option, type it, resolve a path, carry it into launch.extra)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from kohya_plan.errors import PlanError
from kohya_plan.families import FAMILIES
from kohya_plan.rules import IMPORT_SOURCE
from kohya_plan.workflows.importers.report import Filled, ImportResult, Kind, Record
from kohya_plan.workflows.importers.sources import Sources, resolve_path
from kohya_plan.workflows.importers.values import CannotCarry, Given, typed

if TYPE_CHECKING:
    from pathlib import PurePath

    from kohya_plan.options import Option

# Plan keys holding paths: resolved like the plan's own (every family's model files too).
_PATH_KEYS = {
    "model.tokenizer_cache_dir",
    "output.dir",
    "network.weights",
    *(f"model.{spec.key}" for f in FAMILIES.values() for spec in f.model_files),
}

# Extra options that name files: relative paths are resolved like the plan's own paths.
_PATH_OPTIONS = {"resume", "log_tracker_config", "base_weights", "in_json", "conditioning_data_dir"}


@dataclass
class DatasetBlock:
    """One `[[datasets]]` of a dataset config."""

    where: str
    params: dict[str, Given]
    subsets: list[dict[str, Given]]


@dataclass
class DatasetInput:
    """A dataset config (`--dataset_config`), its values attributed to their keys."""

    general: dict[str, Given]
    datasets: list[DatasetBlock]
    base_dir: PurePath
    """Folder its relative image_dir paths are taken against."""


@dataclass
class Builder:
    """Plan data being built, and one record per source key (the first one wins)."""

    format: str
    sources: Sources
    plan: dict[str, Any] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    filled: list[Filled] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_steps: int | None = None

    def record(
        self,
        source: str,
        kind: Kind,
        plan_key: str | None = None,
        value: Any = None,
        reason: str = "",
        *,
        default: bool = False,
    ) -> None:
        """What became of `source` (kept only if the key has no record yet)."""
        if source not in self.records:
            self.records[source] = Record(source, kind, plan_key, value, reason, default)

    def set(self, plan_key: str, value: Any, given: Given | None, reason: str = "") -> None:
        """Set a plan key; the source key behind it (if any) is recorded as mapped."""
        put(self.plan, plan_key, value)
        if given is not None:
            self.record(given.source, "mapped", plan_key, value, reason, default=given.default)

    def has(self, plan_key: str) -> bool:
        """Whether the plan key is set already."""
        node: Any = self.plan
        for part in plan_key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def fill(self, plan_key: str, value: Any, reason: str, *, placeholder: bool = False) -> None:
        """A plan key no source key gives: a placeholder to change, or sd-scripts' default."""
        put(self.plan, plan_key, value)
        self.filled.append(Filled(plan_key, value, reason, placeholder))

    def result(self, script: str) -> ImportResult:
        """The finished import."""
        return ImportResult(
            format=self.format,
            script=script,
            plan=self.plan,
            records=tuple(self.records.values()),
            filled=tuple(self.filled),
            notes=tuple(self.notes),
            source_steps=self.source_steps,
        )


def put(data: dict[str, Any], dotted: str, value: Any) -> None:
    """`put(d, "a.b", v)` sets `d["a"]["b"] = v`, creating tables on the way."""
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def refuse(field_name: str, message: str, fix: str = "") -> NoReturn:
    """Stop the import with an error naming the source key (exit 2, nothing written)."""
    raise PlanError([IMPORT_SOURCE.finding(field_name, message, fix)]) from None


@dataclass
class State:
    """What `build_plan` works on: the options still to map, and which were mapped."""

    builder: Builder
    script: str
    options: dict[str, Given]
    known: dict[str, Option] | None
    types: dict[str, Option]
    used: set[str] = field(default_factory=set)

    def take(self, name: str) -> Given | None:
        """The option, marked as handled."""
        given = self.options.get(name)
        if given is not None:
            self.used.add(name)
        return given


def resolved(state: State, given: Given) -> str:
    """A source path made absolute (see sources.resolve_path); notes how it was found."""
    resolved = resolve_path(str(given.value), state.builder.sources)
    if resolved.note:
        state.builder.notes.append(f"{given.source}: {resolved.note}")
    return resolved.path


def pure_path(state: State, text: str) -> PurePath:
    """A path string as the sources' path type."""
    return type(state.builder.sources.base_dir)(text)


def take_typed(state: State, name: str) -> tuple[Given, Any] | None:
    """Take an option and type it; a value sd-scripts cannot use is recorded and skipped."""
    given = state.take(name)
    if given is None:
        return None
    try:
        value, note = typed(state.types.get(name), given.value)
    except CannotCarry as exc:
        state.builder.record(given.source, "cannot", reason=str(exc), default=given.default)
        return None
    if note:
        state.builder.notes.append(f"{given.source}: {note}")
    return given, value


def map_direct(state: State, name: str, plan_key: str, reason: str = "") -> Any:
    """Option → plan key, value typed (paths resolved); returns the value or None."""
    taken = take_typed(state, name)
    if taken is None:
        return None
    given, value = taken
    if plan_key in _PATH_KEYS and isinstance(value, str):
        value = resolved(state, Given(value, given.source))
    state.builder.set(plan_key, value, given, reason)
    return value


def map_flag(state: State, name: str, plan_key: str) -> None:
    """A store_true option → a plan flag (false is sd-scripts' default: left out)."""
    taken = take_typed(state, name)
    if taken is None:
        return
    given, value = taken
    if value:
        state.builder.set(plan_key, True, given)
    else:
        state.builder.record(given.source, "unset", reason="false: sd-scripts' default")


def mark_used(state: State, given: Given) -> None:
    """Mark the option holding `given` as mapped."""
    for name, item in state.options.items():
        if item is given:
            state.used.add(name)


def is_option(state: State, given: Given) -> bool:
    """Whether `given` is one of the options (not a dataset-config value)."""
    return any(item is given for item in state.options.values())


def carry_extra(state: State, name: str, given: Given, reason: str = "") -> None:
    """An sd-scripts option the plan does not model: into launch.extra, checked."""
    from kohya_plan.options import extra_refusal, value_problem

    b = state.builder
    refusal = extra_refusal(name)
    if refusal is not None:  # ignored by sd-scripts, a secret, or not training: never carried
        b.record(given.source, "cannot", reason=refusal, default=given.default)
        return
    option = (state.known or state.types).get(name)
    if option is None and state.known is not None:
        close = difflib.get_close_matches(name, state.known, n=1, cutoff=0.7)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        b.record(
            given.source,
            "cannot",
            reason=f"not a {state.script} option — sd-scripts ignores it silently{hint}",
            default=given.default,
        )
        return
    if option is None:
        b.notes.append(
            f"{given.source}: not checked — kohya-plan has no option snapshot of {state.script} yet"
        )
        put(b.plan, f"launch.extra.{name}", given.value)
        b.record(
            given.source,
            "extra",
            f"launch.extra.{name}",
            given.value,
            reason,
            default=given.default,
        )
        return
    try:
        value, note = typed(option, given.value)
    except CannotCarry as exc:
        b.record(given.source, "cannot", reason=str(exc), default=given.default)
        return
    if note:
        b.notes.append(f"{given.source}: {note}")
    if name in _PATH_OPTIONS:
        value = (
            [resolved(state, Given(v, given.source)) for v in value]
            if isinstance(value, list)
            else resolved(state, Given(value, given.source))
        )
    if (name, value) in (("max_token_length", 75), ("max_timestep", 1000)):
        b.record(
            given.source,
            "dropped",
            reason=f"{value} is what sd-scripts uses when it is not set",
            default=given.default,
        )
        return
    if value == option.default or (option.action == "store_true" and value is False):
        b.record(
            given.source,
            "dropped",
            reason=f"{value!r} is sd-scripts' default",
            default=given.default,
        )
        return
    trouble = value_problem(option, value)
    if trouble is not None:
        b.record(given.source, "cannot", reason=trouble, default=given.default)
        return
    put(b.plan, f"launch.extra.{name}", value)
    b.record(given.source, "extra", f"launch.extra.{name}", value, reason, default=given.default)
