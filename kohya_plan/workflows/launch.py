"""`kohya-plan launch`: make (or take) a run folder, run it supervised, summarise the run."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kohya_plan import rundir
from kohya_plan.errors import EXIT_OK, EXIT_STOPPED, EXIT_TRAINING_FAILED, LaunchError
from kohya_plan.loading import load_plan
from kohya_plan.outputs import existing_outputs, latest_state
from kohya_plan.planning import check_plan, locate_trainer, make_run
from kohya_plan.render.command import expand_env_refs
from kohya_plan.render.toml_text import toml_string
from kohya_plan.trainlog.events import Event, Failure, RunState
from kohya_plan.trainlog.records import LogParser
from kohya_plan.workflows.results import finish_summary

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from kohya_plan.checks.report import CheckReport
    from kohya_plan.plan import Plan
    from kohya_plan.planning import RenderedRun, Trainer
    from kohya_plan.summary import RunSummary


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
    """A run folder ready to start: its plan and the exact argv (as in launch.json)."""

    run_dir: Path
    plan: Plan
    argv: list[str]
    cwd: Path
    env: dict[str, str]

    @classmethod
    def from_rendered(cls, rendered: RenderedRun, plan: Plan) -> PreparedRun:
        """The run `make` has just written, from memory (nothing is read back)."""
        launch = rendered.launch
        return cls(rendered.run_dir, plan, list(launch.argv), launch.cwd, dict(launch.env))


def prepare(target: Path, overrides: Iterable[str], options: LaunchOptions) -> PreparedRun:
    """A plan file → a new run folder (via `make`); a run folder → itself, if never launched."""
    target = target.expanduser().absolute()
    overrides = list(overrides)
    if not target.is_dir():
        return _make_from_plan(target, overrides, options)
    run = rundir.RunDir(target)
    if overrides or options.resume or options.resume_from:
        msg = (
            f"{target} is a made run folder and cannot change — launch its plan with "
            f"--set/--resume instead: `kohya-plan launch {run.plan}` makes a new run folder"
        )
        raise LaunchError(msg)
    run.require_made()
    if run.was_launched():
        msg = (
            f"{target} was launched before (it has {rundir.LOG}, or {rundir.SLURM_JOB} from "
            "`submit`) — a run folder is used once; "
            f"`kohya-plan launch {run.plan}` makes a new one beside it"
        )
        raise LaunchError(msg)
    plan = load_plan(run.plan)
    launch = run.read_json(rundir.LAUNCH) or {}
    prepared = PreparedRun(
        run_dir=run.path,
        plan=plan,
        argv=[str(a) for a in launch.get("argv", [])],
        cwd=Path(str(launch.get("cwd", "."))),
        env={str(k): str(v) for k, v in dict(launch.get("env") or {}).items()},
    )
    if not options.overwrite:
        refuse_overwrite(plan)
    preflight_argv(prepared.argv, plan.script_name)
    return prepared


def _make_from_plan(target: Path, overrides: list[str], options: LaunchOptions) -> PreparedRun:
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
    return prepare_report(base, options, overwrite=options.overwrite or state is not None)


def prepare_report(
    report: CheckReport, options: LaunchOptions, *, overwrite: bool | None = None
) -> PreparedRun:
    """A new run folder for an already checked (possibly derived) plan, ready to start."""
    report.raise_if_blocked()
    if not (options.overwrite if overwrite is None else overwrite):
        refuse_overwrite(report.plan)
    preflight(locate_trainer(report), report.plan)
    return PreparedRun.from_rendered(make_run(report), report.plan)


def refuse_overwrite(plan: Plan) -> None:
    """Refuse a launch that would overwrite LoRA files of this output name without a word."""
    existing = existing_outputs(plan)
    if existing:
        names = ", ".join(p.name for p in existing[:3]) + (" …" if len(existing) > 3 else "")
        msg = (
            f"{plan.output.dir} already holds {names}; sd-scripts would overwrite them without "
            "a word — pass --overwrite, --resume to continue from a saved state, or change "
            "output.name / output.dir"
        )
        raise LaunchError(msg)


def preflight(trainer: Trainer, plan: Plan) -> None:
    """What would make the trainer fail at once, said now and clearly (before `make`)."""
    _check_script(trainer.script(plan))
    _check_program(trainer.python or "accelerate")


def preflight_argv(argv: list[str], script_name: str) -> None:
    """`preflight` for a made run folder, from its argv."""
    script = next((a for a in argv if Path(a).name == script_name), None)
    if script is not None:
        _check_script(Path(script))
    if argv:
        _check_program(argv[0])


def _check_script(script: Path) -> None:
    if not script.is_file():
        msg = (
            f"sd-scripts is not at {script.parent} — run `kohya-plan setup` (in a "
            "clone of kohya-plan: scripts/setup-sd-scripts), or set launch.sd_scripts "
            "(or KOHYA_SD_SCRIPTS) and make the run again"
        )
        raise LaunchError(msg)


def _check_program(program: str) -> None:
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


def run(
    prepared: PreparedRun,
    options: LaunchOptions,
    view_factory: Callable[[], RunView],
) -> RunSummary:
    """Start the trainer under supervision, show it, and summarise it (also after Ctrl-C)."""
    from kohya_plan.run.supervisor import Supervisor

    folder = rundir.RunDir(prepared.run_dir)
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

    env = {**os.environ, **prepared.env}
    argv = run_argv(prepared.argv, env)
    machine_rank = machine_rank_of(argv, prepared.plan)
    started_at = time.time()
    usage_before = _usage()
    started = {"started_at": started_at, "argv": argv, "machine_rank": machine_rank}
    folder.write_json(rundir.EXIT, {**started, "finished": False})
    supervisor = Supervisor(
        argv,
        env=env,
        cwd=prepared.cwd,
        log_path=folder.log,
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
    folder.write_json(
        rundir.EXIT,
        {
            **started,
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
        folder.path,
        prepared.plan,
        state,
        exit_status=result.returncode,
        wall_s=result.duration_s,
        stop_reason=stop_reason,
        escalation=result.escalation,
        started_at=started_at,
        link_final=True,
        machine_rank=machine_rank,
    )
    write_report_quietly(prepared.run_dir)
    return summary


def run_argv(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """The argv to start: "$NAME" values (launch.machine_rank = "$NODE_RANK") filled in."""
    try:
        return expand_env_refs(argv, env)
    except ValueError as exc:
        raise LaunchError(str(exc)) from None


def machine_rank_of(argv: list[str], plan: Plan) -> int | None:
    """This machine's number in a run over several machines (None for one machine)."""
    if plan.launch.num_machines < 2 or "--machine_rank" not in argv:
        return None
    value = argv[argv.index("--machine_rank") + 1]
    return int(value) if value.isdigit() else None


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


def exit_code(summary: RunSummary) -> int:
    """kohya-plan's exit status for a run: 0 succeeded, 130 stopped, 3 the training failed.

    The trainer's own exit status stays in summary.json; it is not passed on, because
    `accelerate launch` exits 1 whatever happened and 1 and 2 mean other things here.
    """
    if summary.outcome == "succeeded":
        return EXIT_OK
    if summary.outcome == "stopped":
        return EXIT_STOPPED
    return EXIT_TRAINING_FAILED


def is_interactive() -> bool:
    """Whether a live progress bar makes sense (stdout is a terminal)."""
    return sys.stdout.isatty()
