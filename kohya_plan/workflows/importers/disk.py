"""The I/O edge of `kohya-plan import`: read the source (and the files it names), write the new
plan (never over an existing file), and check it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.errors import PlanError, UsageError
from kohya_plan.rules import IMPORT_SOURCE
from kohya_plan.workflows.importers.detect import FORMATS, detect_format
from kohya_plan.workflows.importers.sources import Sources

if TYPE_CHECKING:
    from kohya_plan.checks.report import CheckReport
    from kohya_plan.findings import Finding
    from kohya_plan.workflows.importers.report import ImportResult


def disk_sources(base_dir: Path) -> Sources:
    """Sources read from this machine's disk."""

    def read_text(path: PurePath) -> str:
        return Path(path).read_bytes().decode("utf-8-sig")

    def exists(path: PurePath) -> bool:
        return Path(path).exists()

    def list_dir(path: PurePath) -> list[tuple[str, bool]] | None:
        folder = Path(path)
        if not folder.is_dir():
            return None
        return sorted((child.name, child.is_dir()) for child in folder.iterdir())

    return Sources(base_dir.absolute(), read_text, exists, list_dir)


def import_text(
    text: str,
    *,
    name: str,
    base_dir: Path,
    fmt: str = "auto",
    dataset_config: Path | None = None,
) -> ImportResult:
    """Import source text (named `name`, its relative paths taken against `base_dir`)."""
    from kohya_plan.workflows.importers.kohya_ss import import_kohya_ss
    from kohya_plan.workflows.importers.lets import import_lets
    from kohya_plan.workflows.importers.sd_scripts import import_command, import_config
    from kohya_plan.workflows.importers.sd_trainer import import_sd_trainer

    sources = disk_sources(base_dir)
    chosen = detect_format(text, name) if fmt == "auto" else fmt
    if chosen not in FORMATS:
        msg = f"unknown format {fmt!r} — use auto or one of: {', '.join(FORMATS)}"
        raise UsageError(msg)
    if dataset_config is not None and chosen != "sd-scripts":
        msg = f"--dataset-config goes with an sd-scripts config, not a {chosen} source"
        raise UsageError(msg)
    if chosen == "kohya_ss":
        return import_kohya_ss(text, sources)
    if chosen == "command":
        return import_command(text, sources)
    if chosen == "sd-trainer":
        return import_sd_trainer(text, sources)
    if chosen == "lets":
        return import_lets(text, sources)
    if dataset_config is None:
        return import_config(text, sources)
    dataset_text = _read(dataset_config, "--dataset-config")
    return import_config(
        text,
        sources,
        dataset_text=dataset_text,
        dataset_base=dataset_config.absolute().parent,
    )


def _read(path: Path, field: str) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise PlanError(
            [IMPORT_SOURCE.finding(field, f"{path} not found", "check the path")]
        ) from None
    except IsADirectoryError:
        raise PlanError(
            [IMPORT_SOURCE.finding(field, f"{path} is a folder", "give the file")]
        ) from None
    except UnicodeDecodeError as exc:
        problem = IMPORT_SOURCE.finding(
            field, f"{path} is not UTF-8 (byte {exc.start})", "save it as UTF-8"
        )
        raise PlanError([problem]) from None


@dataclass(frozen=True)
class Imported:
    """What `kohya-plan import` did: the mapping, the new plan file, and its check."""

    result: ImportResult
    plan_path: Path
    report: CheckReport | None
    problems: list[Finding]

    def to_json(self) -> dict[str, Any]:
        """`import --json`: the mapping report, the plan written, and its check."""
        from kohya_plan.checks.report import failed_report_json

        check = (
            self.report.to_json()
            if self.report is not None
            else failed_report_json(PlanError(self.problems))
        )
        return {"plan": str(self.plan_path), **self.result.to_json(), "check": check}


def default_target(source: str) -> Path:
    """`<source stem>.plan.toml` beside a source file; ./plan.toml for stdin."""
    if source == "-":
        return Path(rundir.PLAN)  # the plan file's usual name (as `init` writes it)
    path = Path(source)
    return path.with_name(f"{path.stem}.plan.toml")


def import_source(
    source: str,
    *,
    output: Path | None = None,
    fmt: str = "auto",
    dataset_config: Path | None = None,
    stdin_text: str | None = None,
) -> Imported:
    """Import SOURCE (a file, or "-" with `stdin_text`), write the new plan, check it."""
    from kohya_plan import __version__
    from kohya_plan.planning import check_plan
    from kohya_plan.workflows.importers.plan_file import render_plan

    if source == "-":
        text, name, base_dir, label = stdin_text or "", "", Path.cwd(), "a pasted command"
        if fmt == "auto" and not text.strip():
            raise PlanError(
                [IMPORT_SOURCE.finding("-", "nothing was read from stdin", "paste the command")]
            )
    else:
        path = Path(source)
        text, name, base_dir, label = (
            _read(path, source),
            path.name,
            path.absolute().parent,
            path.name,
        )
    target = (output or default_target(source)).absolute()
    if target.exists():
        msg = f"{target} already exists — give another -o, or remove the file first"
        raise UsageError(msg)
    result = import_text(text, name=name, base_dir=base_dir, fmt=fmt, dataset_config=dataset_config)
    rendered = render_plan(result, target.parent, label, __version__)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("x", encoding="utf-8", newline="\n") as handle:
            handle.write(rendered)
    except FileExistsError:
        msg = f"{target} already exists — give another -o, or remove the file first"
        raise UsageError(msg) from None
    report = None
    problems: list[Finding] = []
    try:
        report = check_plan(target)
    except PlanError as exc:
        problems = exc.findings
    return Imported(result, target, report, problems)
