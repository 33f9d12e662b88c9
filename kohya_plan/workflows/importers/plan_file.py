"""The imported plan as a commented TOML file (tomlkit): every value says where it came from."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tomlkit.items import Table

    from kohya_plan.workflows.importers.report import ImportResult

_SECTIONS = (
    "model",
    "dataset",
    "network",
    "optimizer",
    "training",
    "flux",
    "sampling",
    "output",
    "launch",
)
_TABLES = {
    ("network", "args"),
    ("optimizer", "args"),
    ("optimizer", "scheduler_args"),
    ("launch", "extra"),
}
# Plan keys holding paths that kohya-plan resolves against the plan's folder.
_PATHS = {
    "model.base",
    "model.vae",
    "model.tokenizer_cache_dir",
    "model.ae",
    "model.clip_l",
    "model.t5xxl",
    "dataset.train_dir",
    "dataset.reg_dir",
    "dataset.subsets.image_dir",
    "network.weights",
    "output.dir",
    "launch.sd_scripts",
}


def relative_paths(data: dict[str, Any], plan_dir: Path) -> dict[str, Any]:
    """Absolute paths under the plan's folder written relative to it (the plan stays movable)."""

    def fix(key: str, value: Any) -> Any:
        if key in _PATHS and isinstance(value, str) and PurePath(value).is_absolute():
            try:
                return PurePath(value).relative_to(plan_dir).as_posix() or "."
            except ValueError:
                return value
        return value

    out: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            out[section] = values
            continue
        table: dict[str, Any] = {}
        for key, value in values.items():
            if key == "subsets" and isinstance(value, list):
                table[key] = [
                    {k: fix(f"{section}.subsets.{k}", v) for k, v in row.items()} for row in value
                ]
            else:
                table[key] = fix(f"{section}.{key}", value)
        out[section] = table
    return out


def _order(section: str, keys: list[str]) -> list[str]:
    """The plan model's field order, then anything it does not know (yet)."""
    from kohya_plan.plan import Plan

    field = Plan.model_fields.get(section)
    model = getattr(field, "annotation", None)
    known = list(getattr(model, "model_fields", {}))
    return sorted(keys, key=lambda k: known.index(k) if k in known else len(known))


def render_plan(result: ImportResult, plan_dir: Path, source_label: str, version: str) -> str:
    """TOML text of the imported plan, commented with the source key of every value."""
    import tomlkit

    origin: dict[str, str] = {}
    for record in result.records:
        if record.plan_key and record.kind in ("mapped", "extra"):
            note = f"← {record.source}" + (
                " (not in the file: its tool's default)" if record.default else ""
            )
            origin.setdefault(record.plan_key, note)
    for item in result.filled:
        mark = "CHANGE ME: " if item.placeholder else "(no source key) "
        origin[item.plan_key] = mark + item.reason
    data = relative_paths(result.plan, plan_dir)
    doc = tomlkit.document()
    doc.add(
        tomlkit.comment(f"Imported by kohya-plan {version} from {source_label} ({result.format}).")
    )
    doc.add(tomlkit.comment("Each value's comment names the source key it came from;"))
    doc.add(tomlkit.comment("`kohya-plan check` on this file says what kohya-plan thinks of it."))
    doc.add(tomlkit.nl())
    for section in _SECTIONS:
        values = data.get(section)
        if not values:
            continue
        table = tomlkit.table()
        later: list[tuple[str, Any]] = []
        for key in _order(section, list(values)):
            value = values[key]
            if ((section, key) in _TABLES and isinstance(value, dict)) or (
                key == "subsets" and isinstance(value, list)
            ):
                later.append((key, value))
            else:
                _add(table, key, value, origin.get(f"{section}.{key}"))
        for key, value in later:
            if key == "subsets":
                rows = tomlkit.aot()
                for index, row in enumerate(value):
                    sub = tomlkit.table()
                    for k, v in row.items():
                        _add(sub, k, v, origin.get(f"{section}.subsets[{index}].{k}"))
                    rows.append(sub)
                table.add(key, rows)
            else:
                sub = tomlkit.table()
                for k, v in value.items():
                    _add(
                        sub,
                        k,
                        v,
                        origin.get(f"{section}.{key}.{k}") or origin.get(f"{section}.{key}"),
                    )
                table.add(key, sub)
        doc.add(section, table)
    left = [r for r in result.records if r.kind == "cannot"]
    if left:
        doc.add(tomlkit.nl())
        doc.add(tomlkit.comment("Not carried over (see `kohya-plan import --json` for every key):"))
        for record in left:
            doc.add(tomlkit.comment(f"  {record.source}: {record.reason}"))
    return tomlkit.dumps(doc)


def _add(table: Table, key: str, value: Any, comment: str | None) -> None:
    import tomlkit

    item = tomlkit.item(value)
    if comment:
        item.comment(comment)
    table.add(key, item)
