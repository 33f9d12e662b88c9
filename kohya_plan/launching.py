"""`kohya-plan launch`: make (or take) a run folder, run it supervised, summarise the run."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kohya_plan.errors import LaunchError
from kohya_plan.events import Event, Failure, RunState
from kohya_plan.loading import load_plan
from kohya_plan.parse import LogParser
from kohya_plan.planning import CheckReport, check_plan, make_run, render_run
from kohya_plan.render.toml_text import toml_string
from kohya_plan.summary import (
    LoraFile,
    RunSummary,
    lora_files,
    read_scalars,
    summarize,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from kohya_plan.lrfind import Plateau
    from kohya_plan.plan import Plan

LOG_NAME = "train.log"
SUMMARY_NAME = "summary.json"
EXIT_NAME = "exit.json"
MANIFEST_NAME = "manifest.json"


class RunView(Protocol):
    """What shows a running trainer to the user (see display.run_view)."""

    def event(self, event: Event, state: RunState) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LaunchOptions:
    """How `launch` behaves besides the plan."""

    overwrite: bool = False
    resume: bool = False
    resume_from: Path | None = None
    keep_going_on_nan: bool = False
    grace_s: float = 30.0


@dataclass(frozen=True)
class PreparedRun:
    """A run folder ready to start: its plan and the exact argv from launch.json."""

    run_dir: Path
    plan: Plan
    argv: list[str]
    cwd: Path
    env: dict[str, str]


def _existing_outputs(plan: Plan) -> list[Path]:
    out, name, ext = plan.output.dir, plan.output.name, plan.output.save_model_as
    if not out.is_dir():
        return []
    found = []
    for path in out.iterdir():
        if path.suffix == f".{ext}" and (path.stem == name or path.stem.startswith(name + "-")):
            found.append(path)
    return sorted(found)


def latest_state(plan: Plan) -> Path | None:
    """The newest `<name>*-state` folder sd-scripts saved in output.dir (save_state)."""
    out, name = plan.output.dir, plan.output.name
    if not out.is_dir():
        return None
    states = [
        p
        for p in out.iterdir()
        if p.is_dir()
        and p.name.startswith(name)
        and p.name.endswith("-state")
        and (p / "train_state.json").is_file()
    ]
    return max(states, key=lambda p: p.stat().st_mtime, default=None)


def prepare(target: Path, overrides: Iterable[str], options: LaunchOptions) -> PreparedRun:
    """A plan file → a new run folder (via `make`); a run folder → itself, if never launched."""
    target = target.expanduser().absolute()
    overrides = list(overrides)
    if target.is_dir():
        if overrides or options.resume or options.resume_from:
            msg = (
                f"{target} is a made run folder and cannot change — launch the plan file "
                f"with --set/--resume instead (its copy is {target / 'plan.toml'})"
            )
            raise LaunchError(msg)
        run_dir = target
        if not (run_dir / "launch.json").is_file():
            msg = f"{run_dir} has no launch.json — give a plan file or a folder made by `make`"
            raise LaunchError(msg)
        if (run_dir / LOG_NAME).exists():
            msg = (
                f"{run_dir} was launched before (it has {LOG_NAME}) — a run folder is used once; "
                f"`kohya-plan launch {run_dir / 'plan.toml'}` makes a new one"
            )
            raise LaunchError(msg)
        plan = load_plan(run_dir / "plan.toml")
    else:
        run_dir, plan = _make_from_plan(target, overrides, options)
    launch = json.loads((run_dir / "launch.json").read_text(encoding="utf-8"))
    prepared = PreparedRun(
        run_dir=run_dir,
        plan=plan,
        argv=list(launch["argv"]),
        cwd=Path(launch["cwd"]),
        env=dict(launch.get("env", {})),
    )
    if target.is_dir():
        if not options.overwrite:
            _refuse_overwrite(plan)
        _preflight(prepared.argv)
    return prepared


def _make_from_plan(
    target: Path, overrides: list[str], options: LaunchOptions
) -> tuple[Path, Plan]:
    base = check_plan(target, overrides)
    base.raise_if_blocked()
    state = options.resume_from
    if options.resume and state is None:
        state = latest_state(base.plan)
        if state is None:
            msg = (
                f"no saved state (<name>-state folder) in {base.plan.output.dir} to resume "
                "from — set training.save_state = true for runs you may want to resume"
            )
            raise LaunchError(msg)
    if state is not None:
        if not (state / "train_state.json").is_file():
            msg = f"{state} is not an sd-scripts state folder (no train_state.json)"
            raise LaunchError(msg)
        # Continue the step count where the state stopped (contract §9.4).
        overrides = [
            *overrides,
            f"launch.extra.resume={toml_string(str(state.absolute()))}",
            "launch.extra.skip_until_initial_step=true",
        ]
        base = check_plan(target, overrides)
        base.raise_if_blocked()
    if not (options.overwrite or state is not None):
        _refuse_overwrite(base.plan)
    _preflight(render_run(base, base.next_run_dir()).launch.argv)
    run_dir, _ = make_run(base)
    return run_dir, base.plan


def prepare_report(report: CheckReport, options: LaunchOptions) -> PreparedRun:
    """A new run folder for an already checked (possibly derived) plan, ready to start."""
    report.raise_if_blocked()
    if not options.overwrite:
        _refuse_overwrite(report.plan)
    _preflight(render_run(report, report.next_run_dir()).launch.argv)
    run_dir, rendered = make_run(report)
    return PreparedRun(
        run_dir=run_dir,
        plan=report.plan,
        argv=list(rendered.launch.argv),
        cwd=rendered.launch.cwd,
        env=dict(rendered.launch.env),
    )


def _refuse_overwrite(plan: Plan) -> None:
    existing = _existing_outputs(plan)
    if existing:
        names = ", ".join(p.name for p in existing[:3]) + (" …" if len(existing) > 3 else "")
        msg = (
            f"{plan.output.dir} already holds {names}; sd-scripts would overwrite them without "
            "a word — pass --overwrite, --resume to continue from a saved state, or change "
            "output.name / output.dir"
        )
        raise LaunchError(msg)


def _preflight(argv: list[str]) -> None:
    """What would make the trainer fail at once: say it now, clearly."""
    script = next((a for a in argv if a.endswith("train_network.py")), None)
    if script is not None and not Path(script).is_file():
        msg = (
            f"sd-scripts is not at {Path(script).parent} — run `kohya-plan setup` (in a "
            "clone of kohya-plan: scripts/setup-sd-scripts), or set launch.sd_scripts "
            "(or KOHYA_SD_SCRIPTS) and make the run again"
        )
        raise LaunchError(msg)
    program = argv[0]
    if os.sep in program or "/" in program:
        if not Path(program).is_file():
            msg = (
                f"the Python for sd-scripts is not at {program} — run `kohya-plan setup` (in "
                "a clone of kohya-plan: scripts/setup-sd-scripts) or set launch.python (or "
                "KOHYA_SD_PYTHON)"
            )
            raise LaunchError(msg)
    elif shutil.which(program) is None:
        msg = (
            f"`{program}` is not on PATH — set launch.python to the interpreter that has "
            "sd-scripts' requirements (or run scripts/setup-sd-scripts)"
        )
        raise LaunchError(msg)


def _epoch_copy(files: list[LoraFile], plan: Plan, epochs: int | None) -> str | None:
    """T29: the final file, which sd-scripts never numbers, also under its epoch's name."""
    final = next((f for f in files if f.final), None)
    if final is None or not epochs:
        return None
    source = Path(final.path)
    target = source.with_name(f"{plan.output.name}-{epochs:06d}{source.suffix}")
    if target.exists():
        return str(target) if target.stat().st_size == source.stat().st_size else None
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return str(target)


def _manifest(files: list[LoraFile], copy: str | None, epochs: int | None) -> dict[str, object]:
    by_epoch = {str(f.epoch): f.path for f in files if f.epoch is not None}
    final = next((f.path for f in files if f.final), None)
    if final is not None and epochs:
        by_epoch[str(epochs)] = copy or final
    by_step = {str(f.step): f.path for f in files if f.step is not None}
    return {"epochs": by_epoch, "steps": by_step, "final": final, "final_copy": copy}


def finish_summary(
    run_dir: Path,
    plan: Plan,
    state: RunState,
    *,
    exit_status: int | None,
    wall_s: float | None,
    stop_reason: str | None,
    escalation: str | None,
    started_at: float | None,
    link_final: bool,
) -> RunSummary:
    """Collect files and TensorBoard scalars, write summary.json and manifest.json."""
    files = lora_files(plan.output.dir, plan.output.name, plan.output.save_model_as, started_at)
    copy = None
    if not link_final and (run_dir / MANIFEST_NAME).is_file():
        # Rebuilding: the epoch-numbered copy of the final file is not a file of its own.
        manifest = json.loads((run_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        copy = manifest.get("final_copy")
        files = [f for f in files if f.path != copy]
    scalars = read_scalars(run_dir / "logs")
    summary = summarize(
        state,
        exit_status=exit_status,
        wall_s=wall_s,
        stop_reason=stop_reason,
        escalation=escalation,
        files=files,
        tensorboard=scalars,
        final_copy=copy,
    )
    if link_final and summary.outcome == "succeeded":
        copy = _epoch_copy(files, plan, summary.epochs_done)
        summary = replace(summary, final_copy=copy)
    manifest = _manifest(files, copy, summary.epochs_done)
    _write_json(run_dir / MANIFEST_NAME, manifest)
    _write_json(run_dir / SUMMARY_NAME, summary.to_json())
    return summary


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def replay_log(path: Path) -> RunState:
    """Parse a whole train.log again (for `summary RUN_DIR`), in bounded chunks."""
    parser = LogParser()
    state = RunState()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            for event in parser.feed(chunk):
                state.apply(event)
    for event in parser.finish():
        state.apply(event)
    return state


def run(
    prepared: PreparedRun,
    options: LaunchOptions,
    view_factory: Callable[[], RunView],
) -> RunSummary:
    """Start the trainer under supervision, show it, and summarise it (also after Ctrl-C)."""
    from kohya_plan.run.supervisor import Supervisor

    state = RunState()
    parser = LogParser()
    view = view_factory()
    stopping: list[str] = []
    supervisor: Supervisor | None = None

    def handle(events: list[Event]) -> None:
        for event in events:
            state.apply(event)
            view.event(event, state)
            if (
                isinstance(event, Failure)
                and event.kind == "nan_loss"
                and not options.keep_going_on_nan
                and not stopping
                and supervisor is not None
            ):
                stopping.append("nan")
                supervisor.request_stop("avr_loss became NaN")

    started_at = time.time()
    usage_before = _usage()
    _write_json(
        prepared.run_dir / EXIT_NAME,
        {"started_at": started_at, "argv": prepared.argv, "finished": False},
    )
    supervisor = Supervisor(
        prepared.argv,
        env={**os.environ, **prepared.env},
        cwd=prepared.cwd,
        log_path=prepared.run_dir / LOG_NAME,
        on_output=lambda chunk: handle(parser.feed(chunk)),
        grace_s=options.grace_s,
    )
    try:
        with supervisor:
            result = supervisor.run()
        handle(parser.finish())
    finally:
        view.close()
    stop_reason = result.stop_reason
    if stopping and stop_reason is not None:
        stop_reason = "nan"
    _write_json(
        prepared.run_dir / EXIT_NAME,
        {
            "started_at": started_at,
            "argv": prepared.argv,
            "finished": True,
            "exit_status": result.returncode,
            "wall_s": result.duration_s,
            "stop_reason": stop_reason,
            "escalation": result.escalation,
            # Supervision overhead: kohya-plan's own CPU time vs the trainer tree's.
            **_usage_delta(usage_before, _usage()),
        },
    )
    summary = finish_summary(
        prepared.run_dir,
        prepared.plan,
        state,
        exit_status=result.returncode,
        wall_s=result.duration_s,
        stop_reason=stop_reason,
        escalation=result.escalation,
        started_at=started_at,
        link_final=True,
    )
    write_report_quietly(prepared.run_dir)
    return summary


def write_report_quietly(run_dir: Path) -> Path | None:
    """report.html for a finished run; a failure here must not hide the run's own result."""
    from kohya_plan.report import write_report

    try:
        return write_report(run_dir)
    except Exception:
        return None


def _usage() -> tuple[float, float, int]:
    try:
        import resource
    except ImportError:  # Windows: not measured
        return (0.0, 0.0, 0)
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime, me.ru_maxrss)


def _usage_delta(
    before: tuple[float, float, int], after: tuple[float, float, int]
) -> dict[str, float]:
    return {
        "kohya_plan_cpu_s": round(after[0] - before[0], 3),
        "trainer_cpu_s": round(after[1] - before[1], 3),
        "kohya_plan_max_rss_mib": round(after[2] / 1024, 1),
    }


def summary_from_disk(run_dir: Path) -> RunSummary:
    """Rebuild a run's summary from train.log, the TensorBoard events and the files on disk."""
    run_dir = run_dir.expanduser().absolute()
    log = run_dir / LOG_NAME
    if not log.is_file():
        msg = f"{run_dir} has no {LOG_NAME}: it was never launched (`kohya-plan launch {run_dir}`)"
        raise LaunchError(msg)
    plan = load_plan(run_dir / "plan.toml")
    exit_info: dict[str, object] = {}
    if (run_dir / EXIT_NAME).is_file():
        exit_info = json.loads((run_dir / EXIT_NAME).read_text(encoding="utf-8"))
    status = exit_info.get("exit_status")
    wall = exit_info.get("wall_s")
    started = exit_info.get("started_at")
    reason = exit_info.get("stop_reason")
    escalation = exit_info.get("escalation")
    return finish_summary(
        run_dir,
        plan,
        replay_log(log),
        exit_status=status if isinstance(status, int) else None,
        wall_s=float(wall) if isinstance(wall, (int, float)) else None,
        stop_reason=reason if isinstance(reason, str) else None,
        escalation=escalation if isinstance(escalation, str) else None,
        started_at=float(started) if isinstance(started, (int, float)) else None,
        link_final=False,
    )


def exit_code(summary: RunSummary) -> int:
    """kohya-plan's exit status: 0 succeeded, 130 stopped, else the failure's status (≥ 1)."""
    if summary.outcome == "succeeded":
        return 0
    if summary.outcome == "stopped":
        return 130
    status = summary.trainer_exit_status or summary.exit_status
    return status if isinstance(status, int) and status > 0 else 1


def is_interactive() -> bool:
    """Whether a live progress bar makes sense (stdout is a terminal)."""
    return sys.stdout.isatty()


@dataclass(frozen=True)
class LrFindResult:
    """What `lr-find` found and wrote."""

    summary: RunSummary
    run_dir: Path
    plateau: Plateau
    text_encoder: Plateau | None
    new_plan: Path
    chart: Path
    points: list[tuple[int, float]]


def lr_find(
    plan_path: Path,
    overrides: Iterable[str],
    *,
    searcher: str,
    steps: int | None,
    te_ratio: float,
    target: str,
    options: LaunchOptions,
    view_factory: Callable[[], RunView],
) -> LrFindResult:
    """T19–T21: a short adaptive-optimizer run, the flat value of its d*lr, a new plan."""
    from kohya_plan import lrfind, pngchart
    from kohya_plan.loading import apply_overrides, read_toml, validate_plan
    from kohya_plan.planning import check_data
    from kohya_plan.render.toml_text import toml_table

    plan_path = plan_path.expanduser().absolute()
    data = apply_overrides(read_toml(plan_path), overrides)
    original = validate_plan(data, plan_path.parent)
    derived = lrfind.derive_search(data, searcher=searcher, steps=steps or 200)
    report = check_data(derived, plan_path)
    if steps is None and report.facts.steps is not None:
        budget = lrfind.default_steps(report.facts.steps.batches_per_epoch)
        derived = lrfind.derive_search(data, searcher=searcher, steps=budget)
        report = check_data(derived, plan_path)
    # The search writes its own throwaway <name>-lr-find files: replacing them is expected.
    prepared = prepare_report(report, replace(options, overwrite=True))
    summary = run(prepared, options, view_factory)
    scalars = read_scalars(prepared.run_dir / "logs")
    points = scalars.get(lrfind.UNET_TAG) or scalars.get("lr/d*lr/group0") or []
    if not points:
        cause = summary.cause.message if summary.cause else "no TensorBoard scalars were written"
        msg = f"the search run gave no {lrfind.UNET_TAG} values ({cause}); see {prepared.run_dir}"
        raise LaunchError(msg)
    plateau = lrfind.find_plateau(points)
    te_points = scalars.get(lrfind.TE_TAG) or []
    te_plateau = lrfind.find_plateau(te_points) if te_points else None
    adaptive_before = original.optimizer.type.lower().startswith(("dadapt", "prodigy"))
    scheduler = "cosine_with_restarts" if adaptive_before else original.optimizer.scheduler
    table = lrfind.optimizer_table(
        plateau.value,
        target=target,
        te_ratio=te_ratio,
        scheduler=scheduler,
        train_te=not original.network.train_unet_only,
    )
    if not adaptive_before and scheduler == "cosine_with_restarts":
        table["scheduler_num_cycles"] = original.optimizer.scheduler_num_cycles
    note = (
        f"Found by `kohya-plan lr-find` ({lrfind.SEARCHERS[searcher]}, run "
        f"{prepared.run_dir.name}): {lrfind.describe(plateau)}.\n"
        f"T20/T21: {table['type']} with U-Net LR = "
        + ("the found value" if target == "adamw8bit" else "a third of it")
        + (f", text encoder × {te_ratio:g} (T17)." if "text_encoder_lr" in table else ".")
    )
    text = plan_path.read_text(encoding="utf-8")
    new_text = lrfind.replace_section(text, "optimizer", toml_table(table), note)
    new_plan = _new_plan_path(plan_path, table["unet_lr"], target)
    validate_plan(apply_overrides(_loads(new_text), overrides), plan_path.parent)
    with new_plan.open("x", encoding="utf-8") as handle:
        handle.write(new_text)
    chart = prepared.run_dir / "lr-find.png"
    series = [(points, (31, 119, 180))]
    if te_points:
        series.append((te_points, (255, 127, 14)))
    band = None
    if plateau.settled and plateau.since_step is not None:
        tol = lrfind.FLAT_TOLERANCE * plateau.value
        band = (float(plateau.since_step), plateau.value - tol, plateau.value + tol)
    chart.write_bytes(pngchart.line_chart([(list(p), c) for p, c in series], band=band))
    _write_json(
        prepared.run_dir / "lr-find.json",
        {
            "searcher": lrfind.SEARCHERS[searcher],
            "tag": lrfind.UNET_TAG,
            "value": plateau.value,
            "settled": plateau.settled,
            "since_step": plateau.since_step,
            "spread": plateau.spread,
            "new_plan": str(new_plan),
            "optimizer": table,
        },
    )
    return LrFindResult(summary, prepared.run_dir, plateau, te_plateau, new_plan, chart, points)


def _loads(text: str) -> dict[str, Any]:
    from kohya_plan.loading import loads_toml

    return loads_toml(text)


def _new_plan_path(plan_path: Path, lr: float, target: str) -> Path:
    """`<plan>.lr-3.3e-05.toml` (`.lion-…` for Lion) beside the plan; never an existing file."""
    kind = "lion" if target == "lion" else "lr"
    candidate = plan_path.with_name(f"{plan_path.stem}.{kind}-{lr:.3g}.toml")
    counter = 2
    while candidate.exists():
        candidate = plan_path.with_name(f"{plan_path.stem}.{kind}-{lr:.3g}-{counter}.toml")
        counter += 1
    return candidate
