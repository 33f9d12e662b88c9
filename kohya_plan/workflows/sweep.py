"""`kohya-plan sweep`: one plan, a grid of values, one run folder per combination.

Every point is the plan with its grid values set, named ``<name>-<values>`` (its LoRA files do
not overwrite each other's), checked like any plan — all points together, before anything is
written. Then each is a normal `make` into the sweep's folder, with sweep.json recording the
grid, the points and their run folders. The points then run locally one after another (a queue
in queue.json: a failed point does not stop the others, and `sweep SWEEP_DIR` resumes where a
stopped queue left off) or as one SLURM job array (`--slurm`, at most `max_parallel` at once).

This module stays long because the grid, the points' folders, the local queue and the job
array share the sweep's one record (sweep.json, queue.json): each part is short.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.errors import EXIT_STOPPED, LaunchError, PlanError, UsageError
from kohya_plan.loading import apply_overrides, parse_override, read_toml
from kohya_plan.plan.sweep import grid_key_problem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from kohya_plan.checks.report import CheckReport
    from kohya_plan.findings import Finding
    from kohya_plan.plan.common import ScalarValue
    from kohya_plan.summary import RunSummary
    from kohya_plan.workflows.slurm import RunStatus
    from kohya_plan.workflows.watch import RunView

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
QUEUE_STATES = ("pending", "running", "succeeded", "failed", "stopped")


@dataclass(frozen=True)
class Axis:
    """One grid key and the values it takes, in order."""

    key: str
    values: tuple[ScalarValue, ...]
    texts: tuple[str, ...]  # how each value is written in names (as the user wrote it)


@dataclass(frozen=True)
class Point:
    """One combination of the grid."""

    index: int
    values: dict[str, ScalarValue]
    label: str  # "unet_lr1e-4_dim16": what tells the point's files and run folder apart


def _value_text(value: ScalarValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_grid(texts: Iterable[str]) -> list[Axis]:
    """`--grid optimizer.unet_lr=1e-4,5e-5` → axes; values typed as TOML (bare words: text)."""
    axes: list[Axis] = []
    problems: list[Finding] = []
    from kohya_plan import rules

    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        items = [item.strip() for item in raw.split(",")] if sep else []
        why = grid_key_problem(key) if sep else f"{text!r} is not key=value,value"
        if why is None and (not items or not all(items)):
            why = f"{text!r} has an empty value — e.g. --grid {key}=16,32"
        if why is None and any(a.key == key for a in axes):
            why = f"{key} is given twice — list all its values in one --grid"
        if why is not None:
            problems.append(rules.INVALID.finding("--grid", why, "e.g. --grid network.dim=16,32"))
            continue
        values = tuple(parse_override(f"{key}={item}")[1] for item in items)
        if len({repr(v) for v in values}) != len(values):
            problems.append(
                rules.INVALID.finding("--grid", f"{key} lists a value twice", "each point differs")
            )
            continue
        axes.append(Axis(key, values, tuple(items)))
    if problems:
        raise PlanError(problems)
    return axes


def grid_points(axes: Sequence[Axis]) -> list[Point]:
    """Every combination, the first axis changing slowest."""
    points = []
    for index, combo in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
        values = {a.key: a.values[i] for a, i in zip(axes, combo, strict=True)}
        parts = [
            a.key.rsplit(".", 1)[-1] + _SLUG_UNSAFE.sub("", a.texts[i])
            for a, i in zip(axes, combo, strict=True)
        ]
        points.append(Point(index, values, "_".join(parts)))
    return points


def _put(data: dict[str, Any], key: str, value: object) -> None:
    node = data
    *parents, last = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            msg = f"{key}: {part} is not a table in the plan"
            raise UsageError(msg)
        node = child
    node[last] = value


@dataclass(frozen=True)
class SweepPlan:
    """What `sweep` will make: the base plan's data, the axes and the checked points."""

    plan_path: Path
    name: str
    axes: tuple[Axis, ...]
    points: tuple[Point, ...]
    reports: tuple[CheckReport, ...]
    max_parallel: int | None


def plan_sweep(
    plan_path: Path,
    grid: Iterable[str] = (),
    overrides: Iterable[str] = (),
    *,
    runs_dir: Path | None = None,
) -> SweepPlan:
    """Read the plan, build the grid (`--grid`, else its [sweep]), check every point.

    Raises PlanError with every point's problems at once (each says which point).
    """
    from kohya_plan.loading import validate_plan
    from kohya_plan.planning import check_data

    plan_path = plan_path.expanduser().absolute()
    data = apply_overrides(read_toml(plan_path), overrides)
    base = validate_plan(data, plan_path.parent)  # the plan itself first, with its [sweep]
    axes = parse_grid(grid)
    if not axes and base.sweep is not None:
        axes = [
            Axis(key, tuple(values), tuple(_value_text(v) for v in values))
            for key, values in base.sweep.grid.items()
        ]
    if not axes:
        msg = (
            f"{plan_path} has no grid: give --grid section.key=value,value (repeatable) or a "
            '[sweep] table with grid = { "optimizer.unet_lr" = [1e-4, 5e-5] }'
        )
        raise UsageError(msg)
    data.pop("sweep", None)
    target = runs_dir or base.runs_dir(plan_path.parent)
    points = grid_points(axes)
    reports: list[CheckReport] = []
    problems: dict[tuple[str, str, str], tuple[Finding, list[int]]] = {}
    for point in points:
        point_data = apply_overrides(data, ())
        for key, value in point.values.items():
            _put(point_data, key, value)
        _put(point_data, "output.name", f"{base.output.name}-{point.label}")
        _put(point_data, "output.runs_dir", str(target))
        try:
            report = check_data(point_data, plan_path)
        except PlanError as exc:
            found = exc.findings
        else:
            reports.append(report)
            from kohya_plan.findings import blocking

            found = blocking(report.findings)
        for finding in found:
            slot = problems.setdefault((finding.id, finding.field, finding.message), (finding, []))
            slot[1].append(point.index)
    if problems:
        total = len(points)
        raise PlanError(
            [
                replace(f, message=f"{_which(indexes, total, points)}: {f.message}")
                for f, indexes in problems.values()
            ]
        )
    return SweepPlan(
        plan_path=plan_path,
        name=base.output.name,
        axes=tuple(axes),
        points=tuple(points),
        reports=tuple(reports),
        max_parallel=base.sweep.max_parallel if base.sweep is not None else None,
    )


def _which(indexes: list[int], total: int, points: Sequence[Point]) -> str:
    if len(indexes) == total:
        return f"all {total} points" if total > 1 else "the point"
    shown = ", ".join(f"{i} ({points[i].label})" for i in indexes[:4])
    more = f" and {len(indexes) - 4} more" if len(indexes) > 4 else ""
    return f"point{'s' if len(indexes) > 1 else ''} {shown}{more}"


# --- making the folders ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """A made sweep: its folder, the grid and each point's run folder."""

    path: Path
    plan_path: Path
    axes: tuple[Axis, ...]
    points: tuple[Point, ...]
    run_dirs: tuple[Path, ...]
    max_parallel: int | None = None
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": str(self.plan_path),
            "created_at": self.created_at,
            "grid": {a.key: list(a.values) for a in self.axes},
            "grid_texts": {a.key: list(a.texts) for a in self.axes},
            "max_parallel": self.max_parallel,
            "points": [
                {
                    "index": p.index,
                    "label": p.label,
                    "values": p.values,
                    "run_dir": str(d),
                }
                for p, d in zip(self.points, self.run_dirs, strict=True)
            ],
        }


def load_sweep(path: Path) -> Sweep:
    """A sweep folder's sweep.json (a clear error when the folder is not one)."""
    folder = rundir.RunDir(path)
    if not folder.path.is_dir() or not (folder / rundir.SWEEP).is_file():
        msg = f"{folder.path} is not a sweep folder (no {rundir.SWEEP}) — give one `sweep` made"
        raise rundir.RunDirError(msg)
    data = folder.read_json(rundir.SWEEP) or {}
    try:
        texts = data.get("grid_texts") or {}
        axes = tuple(
            Axis(k, tuple(v), tuple(texts.get(k) or [_value_text(x) for x in v]))
            for k, v in data["grid"].items()
        )
        points = tuple(
            Point(int(p["index"]), dict(p["values"]), str(p["label"])) for p in data["points"]
        )
        runs = tuple(Path(str(p["run_dir"])) for p in data["points"])
    except (KeyError, TypeError, ValueError, AttributeError):
        msg = f"{folder.path / rundir.SWEEP} is not a sweep record kohya-plan wrote — restore it"
        raise rundir.RunDirError(msg) from None
    return Sweep(
        path=folder.path,
        plan_path=Path(str(data.get("plan", ""))),
        axes=axes,
        points=points,
        run_dirs=runs,
        max_parallel=data.get("max_parallel"),
        created_at=float(data.get("created_at") or 0.0),
    )


def is_sweep_dir(path: Path) -> bool:
    """Whether `path` is a folder `sweep` made."""
    return (path / rundir.SWEEP).is_file()


def make_sweep(
    plan_path: Path,
    grid: Iterable[str] = (),
    overrides: Iterable[str] = (),
    *,
    slurm: bool = False,
    max_parallel: int | None = None,
) -> Sweep:
    """Check every point, then make the sweep folder with one run folder per point in it.

    Nothing is written when a point has a problem (the folder is removed again on any error).
    """
    from kohya_plan.loading import load_plan
    from kohya_plan.planning import make_run

    plan_path = plan_path.expanduser().absolute()
    overrides = list(overrides)
    base = load_plan(plan_path, overrides)
    runs = base.runs_dir(plan_path.parent)
    with rundir.creating(runs, f"{base.output.name}-sweep") as folder:
        # every point checked before any run folder is made; an error removes the folder
        planned = plan_sweep(plan_path, grid, overrides, runs_dir=folder.path)
        limit = max_parallel if max_parallel is not None else planned.max_parallel
        made = [make_run(report, slurm=slurm).run_dir for report in planned.reports]
        sweep = Sweep(
            path=folder.path,
            plan_path=plan_path,
            axes=planned.axes,
            points=planned.points,
            run_dirs=tuple(made),
            max_parallel=limit,
            created_at=time.time(),
        )
        if slurm:
            folder.write_text(rundir.JOB_SBATCH, job_array(sweep, planned.reports, limit))
        folder.write_json(rundir.SWEEP, sweep.to_json())
        folder.write_json(rundir.SWEEP_QUEUE, _new_queue(sweep))
    return sweep


# --- as a SLURM job array -----------------------------------------------------------------------


def job_array(sweep: Sweep, reports: Sequence[CheckReport], max_parallel: int | None) -> str:
    """The sweep's job array: task i trains point i; the points must launch alike."""
    from kohya_plan.planning import locate_trainer, slurm_section
    from kohya_plan.render.command import build_launch
    from kohya_plan.render.sbatch import SbatchRun, render_sbatch_array, without_machine_flags

    launches = []
    for report, run_dir in zip(reports, sweep.run_dirs, strict=True):
        trainer = locate_trainer(report)
        launches.append(
            build_launch(
                report.plan,
                python=trainer.python,
                sd_scripts=trainer.sd_scripts,
                files=rundir.RunDir(run_dir),
            )
        )
    first, plan = launches[0], reports[0].plan
    for launch, report, point in zip(launches, reports, sweep.points, strict=True):
        shared = without_machine_flags(launch.flags)
        # the run's own accelerate.json differs by folder only: compare without it
        if _no_config(shared) != _no_config(without_machine_flags(first.flags)) or (
            launch.prefix,
            launch.cwd,
            launch.env,
            slurm_section(report.plan),
        ) != (first.prefix, first.cwd, first.env, slurm_section(plan)):
            msg = (
                f"point {point.index} ({point.label}) launches differently from point 0 (its "
                "[launch] or [slurm] values differ): one job array runs every point with the "
                "same launcher — sweep other keys with --slurm, or submit its run folders one "
                "by one with `kohya-plan submit RUN_DIR`"
            )
            raise UsageError(msg)
    runs = [
        SbatchRun(
            run_dir=run_dir,
            script_args=[*_config_of(launch.flags), *launch.script_args],
            output_dir=report.plan.output.dir,
            output_name=report.plan.output.name,
        )
        for launch, report, run_dir in zip(launches, reports, sweep.run_dirs, strict=True)
    ]
    return render_sbatch_array(
        slurm_section(plan),
        sweep_dir=sweep.path,
        runs=runs,
        max_parallel=max_parallel,
        accelerate_prefix=first.prefix,
        launcher_flags_without_machine_flags=_no_config(without_machine_flags(first.flags)),
        cwd=first.cwd,
        env=first.env,
        save_state=plan.training.save_state,
        job_name=f"{plan.output.name.rsplit('-', 1)[0]}-sweep",
        processes_per_node=plan.launch.processes_per_machine,
        main_process_port=plan.launch.main_process_port,
        header=[f"SLURM job array of the sweep {sweep.path} ({len(runs)} points)"],
    )


def _no_config(flags: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag == "--config_file":
            skip = True
        else:
            out.append(flag)
    return out


def _config_of(flags: Sequence[str]) -> list[str]:
    """The run's `--config_file accelerate.json` pair: it goes with each task's run folder.

    accelerate's launcher takes its own flags in any order before the script; the task's pair
    then comes right after the shared flags (see render_sbatch_array's TRAIN array).
    """
    if "--config_file" not in flags:
        return []
    i = list(flags).index("--config_file")
    return list(flags[i : i + 2])


def submit_sweep(sweep: Sweep) -> str:
    """sbatch the sweep's job array; record it in the sweep folder and in each run folder."""
    from kohya_plan.run import slurm as scheduler
    from kohya_plan.workflows.slurm import JobRecord

    folder = rundir.RunDir(sweep.path)
    if not folder.job_sbatch.is_file():
        msg = f"{sweep.path} was made without --slurm (no {rundir.JOB_SBATCH})"
        raise LaunchError(msg)
    if (folder / rundir.SLURM_JOB).exists():
        msg = f"{sweep.path} was submitted before — make a new sweep"
        raise LaunchError(msg)
    job = scheduler.sbatch(folder.job_sbatch)
    now = time.time()
    folder.write_json(
        rundir.SLURM_JOB,
        JobRecord(job, rundir.slurm_log_name(job, 0), now, str(folder.job_sbatch)).to_json(),
    )
    for point, run_dir in zip(sweep.points, sweep.run_dirs, strict=True):
        record = JobRecord(
            job_id=f"{job}_{point.index}",
            log=rundir.slurm_log_name(job, point.index),
            submitted_at=now,
            script=str(folder.job_sbatch),
            array_job=job,
            array_task=point.index,
        )
        rundir.RunDir(run_dir).write_json(rundir.SLURM_JOB, record.to_json())
    return job


# --- the local queue ------------------------------------------------------------------------


def _new_queue(sweep: Sweep) -> dict[str, Any]:
    return {
        "points": [
            {"index": p.index, "state": "pending", "run_dir": str(d), "runs": [str(d)]}
            for p, d in zip(sweep.points, sweep.run_dirs, strict=True)
        ]
    }


@dataclass
class QueueItem:
    """One point of the local queue: its state and the run folder it runs (or ran) in."""

    index: int
    state: str
    run_dir: Path
    runs: list[Path] = field(default_factory=list)
    exit_code: int | None = None


def read_queue(sweep: Sweep) -> list[QueueItem]:
    """queue.json, each point's state (a point that was running when kohya-plan stopped is
    `stopped`: its run folder was used, so it runs again in a new one)."""
    data = rundir.RunDir(sweep.path).read_json(rundir.SWEEP_QUEUE, required=False)
    items = []
    points = (data or _new_queue(sweep)).get("points") or []
    for entry in points:
        state = str(entry.get("state", "pending"))
        items.append(
            QueueItem(
                index=int(entry["index"]),
                state="stopped" if state == "running" else state,
                run_dir=Path(str(entry["run_dir"])),
                runs=[Path(str(r)) for r in entry.get("runs") or [entry["run_dir"]]],
                exit_code=entry.get("exit_code"),
            )
        )
    return items


def _write_queue(sweep: Sweep, items: Sequence[QueueItem]) -> None:
    rundir.RunDir(sweep.path).write_json(
        rundir.SWEEP_QUEUE,
        {
            "points": [
                {
                    "index": i.index,
                    "state": i.state,
                    "run_dir": str(i.run_dir),
                    "runs": [str(r) for r in i.runs],
                    "exit_code": i.exit_code,
                }
                for i in items
            ]
        },
    )


@dataclass(frozen=True)
class QueueResult:
    """How a local queue run ended: each point's state; stopped when Ctrl-C ended it."""

    items: tuple[QueueItem, ...]
    stopped: bool

    @property
    def exit_code(self) -> int:
        """0 when every point succeeded, 130 when stopped, 3 when a point failed."""
        from kohya_plan.errors import EXIT_OK, EXIT_TRAINING_FAILED

        if self.stopped:
            return EXIT_STOPPED
        return EXIT_OK if all(i.state == "succeeded" for i in self.items) else EXIT_TRAINING_FAILED


def run_queue(
    sweep: Sweep,
    view_factory: Callable[[], RunView],
    *,
    retry_failed: bool = False,
    on_point: Callable[[QueueItem, int], None] | None = None,
    on_summary: Callable[[QueueItem, RunSummary], None] | None = None,
) -> QueueResult:
    """Run the pending points one after another; a failed point does not stop the queue.

    A point stopped earlier (Ctrl-C, or kohya-plan killed) runs again in a new run folder made
    from its plan; failed points run again only with `retry_failed`. Ctrl-C stops the running
    point and the queue; running the sweep folder again resumes it.
    """
    from kohya_plan.workflows.launch import LaunchOptions, prepare, run

    items = read_queue(sweep)
    todo = {"pending", "stopped"} | ({"failed"} if retry_failed else set())
    for item in items:
        if item.state not in todo:
            continue
        if item.state != "pending" or rundir.RunDir(item.run_dir).was_launched():
            # its folder was used: a new one from the point's validated plan
            target: Path = rundir.RunDir(item.run_dir).plan
            options = LaunchOptions(overwrite=True)
        else:
            target = item.run_dir
            options = LaunchOptions()
        prepared = prepare(target, (), options)
        item.run_dir = prepared.run_dir
        if prepared.run_dir not in item.runs:
            item.runs.append(prepared.run_dir)
        item.state = "running"
        _write_queue(sweep, items)
        if on_point is not None:
            on_point(item, len(items))
        try:
            summary = run(prepared, options, view_factory)
        except KeyboardInterrupt:
            item.state = "stopped"
            _write_queue(sweep, items)
            return QueueResult(tuple(items), stopped=True)
        item.state = {"succeeded": "succeeded", "stopped": "stopped"}.get(summary.outcome, "failed")
        item.exit_code = summary.exit_status
        _write_queue(sweep, items)
        if on_summary is not None:
            on_summary(item, summary)
        if item.state == "stopped":
            return QueueResult(tuple(items), stopped=True)
    return QueueResult(tuple(items), stopped=False)


# --- status and stop --------------------------------------------------------------------------


def sweep_status(sweep_dir: Path) -> list[tuple[str, RunStatus]]:
    """Every point of a sweep: `label` and where its run stands."""
    from kohya_plan.workflows.slurm import RunStatus, run_status

    sweep = load_sweep(sweep_dir)
    queue = {item.index: item for item in read_queue(sweep)}
    rows = []
    for point, run_dir in zip(sweep.points, sweep.run_dirs, strict=True):
        item = queue.get(point.index)
        folder = item.run_dir if item is not None else run_dir
        status = run_status(folder)
        if status.state == "not launched" and item is not None:
            status = RunStatus(
                run_dir=str(folder), state=item.state, detail="in the local queue: not started yet"
            )
        rows.append((f"{point.index} {point.label}", status))
    return rows


def stop_sweep(sweep_dir: Path, *, now: bool = False) -> str:
    """Cancel a sweep's SLURM job array (every point still waiting or running; `now`: SIGKILL)."""
    from kohya_plan.workflows.slurm import cancel, job_record

    run = rundir.RunDir(sweep_dir)
    record = job_record(run)
    if record is None:
        msg = (
            f"{run.path} was not submitted to SLURM (no {rundir.SLURM_JOB}); a local sweep stops "
            "with Ctrl-C in its terminal"
        )
        raise LaunchError(msg)
    return cancel(run, record, now=now)
