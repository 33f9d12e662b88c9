"""`kohya-plan launch`: make (or take) a run folder, run it supervised, summarise the run."""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from kohya_plan import rules, rundir
from kohya_plan.errors import (
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_TRAINING_FAILED,
    LaunchError,
    PlanError,
    os_error_text,
)
from kohya_plan.findings import blocking
from kohya_plan.loading import is_plan_folder, load_plan, plan_file, source_plan
from kohya_plan.outputs import (
    STATE_LAST_FILE,
    break_links,
    existing_outputs,
    incomplete_state_reason,
    latest_state,
    read_state,
)
from kohya_plan.planning import check_plan, check_validated, locate_trainer, make_run
from kohya_plan.render.command import expand_env_refs
from kohya_plan.render.toml_text import toml_string
from kohya_plan.run.identity import identity
from kohya_plan.summary import format_clock
from kohya_plan.trainlog.events import Event, Failure
from kohya_plan.trainlog.replay import replay_file
from kohya_plan.workflows.preflight import (
    lock_output,
    lock_run_dir,
    preflight,
    preflight_argv,
    refuse_overwrite,
)
from kohya_plan.workflows.results import finish_summary
from kohya_plan.workflows.watch import RunNotes, SafeView, Tracker

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    from kohya_plan.checks.report import CheckReport
    from kohya_plan.plan import Plan
    from kohya_plan.planning import RenderedRun
    from kohya_plan.run.locks import Lock
    from kohya_plan.summary import RunSummary
    from kohya_plan.workflows.watch import RunView


@dataclass(frozen=True)
class LaunchOptions:
    """How `launch` behaves besides the plan."""

    overwrite: bool = False
    resume: bool = False
    resume_from: Path | None = None
    keep_going_on_nan: bool = False
    grace_s: float = 30.0
    stall_timeout_s: float = 1800.0
    """No output for this long → a warning (0: never); sd-scripts prints every step."""
    stop_on_stall: bool = False
    """…and a graceful stop, named in the summary."""
    trust_edited: bool = False
    """Run a run folder's launch.json even though it was changed after `make`."""


@dataclass(frozen=True)
class PreparedRun:
    """A run folder ready to start: its plan and the exact argv (as in launch.json)."""

    run_dir: Path
    plan: Plan
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    edited_launch: bool = False
    """launch.json was changed after `make` and is run as edited (--trust-edited)."""
    locks: tuple[Lock, ...] = field(default=(), compare=False, repr=False)
    """The run folder's and the output's locks, held until the run's summary is written."""

    @classmethod
    def from_rendered(
        cls, rendered: RenderedRun, plan: Plan, locks: tuple[Lock, ...] = ()
    ) -> PreparedRun:
        """The run `make` has just written, from memory (nothing is read back)."""
        launch = rendered.launch
        return cls(
            rendered.run_dir, plan, list(launch.argv), launch.cwd, dict(launch.env), locks=locks
        )

    def release(self) -> None:
        """Give the locks back (the OS does it anyway when this process and its guardian end)."""
        for lock in self.locks:
            lock.release()


def prepare(
    target: Path,
    overrides: Iterable[str],
    options: LaunchOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> PreparedRun:
    """A plan file → a new run folder (via `make`); a run folder → itself, if never launched.

    Either way every image is decoded first (`check --deep`, reusing the verdicts of images
    unchanged since the last deep check; ``progress(done, total)`` follows it): a damaged
    image would otherwise stop sd-scripts only when it loads it, possibly hours in.
    """
    target = target.expanduser().absolute()
    overrides = list(overrides)
    if not target.is_dir():
        return _make_from_plan(target, overrides, options, progress)
    if is_plan_folder(target):  # the folder `init` made: its plan.toml
        return _make_from_plan(plan_file(target), overrides, options, progress)
    run = rundir.RunDir(target)
    if overrides or options.resume or options.resume_from:
        msg = (
            f"{target} is a made run folder and cannot change — launch its plan with "
            f"--set/--resume instead: {relaunch_command(run)} makes a new run folder"
        )
        raise LaunchError(msg)
    run.require_made()
    run_lock = lock_run_dir(run)
    try:
        return _prepare_run_dir(run, options, run_lock, progress)
    except BaseException:
        run_lock.release()
        raise


def _prepare_run_dir(
    run: rundir.RunDir,
    options: LaunchOptions,
    run_lock: Lock,
    progress: Callable[[int, int], None] | None,
) -> PreparedRun:
    target = run.path
    if run.was_launched():
        how = (
            f"launched before (it has {rundir.LOG})"
            if (run / rundir.LOG).exists()
            else f"submitted to SLURM before (it has {rundir.SLURM_JOB})"
        )
        msg = (
            f"{target} was {how} — a run folder is used once; {relaunch_command(run)} makes a "
            "new one beside it"
        )
        raise LaunchError(msg)
    plan = load_plan(run.plan)
    launch = run.read_launch(trust_edited=options.trust_edited)
    deep = check_validated(plan, run.plan, deep="cached", progress=progress)
    damaged = [f for f in blocking(deep.findings) if f.id == rules.IMAGE_CORRUPT.id]
    if damaged:
        raise PlanError(damaged)
    output_lock = lock_output(plan, run.path)
    prepared = PreparedRun(
        run_dir=run.path,
        plan=plan,
        argv=launch.argv,
        cwd=launch.cwd,
        env=launch.env,
        edited_launch=launch.edited,
        locks=(run_lock, output_lock),
    )
    try:
        if not options.overwrite:
            refuse_overwrite(plan)
        preflight_argv(prepared.argv, plan.script_name)
    except BaseException:
        output_lock.release()
        raise
    return prepared


def relaunch_command(run: rundir.RunDir) -> str:
    """The command that makes a new run of the same plan beside `run` (never inside it).

    The plan the run was made from, when it still exists; else the run's own plan.toml with
    output.runs_dir pointed at the folder that holds the run (its own runs/ would nest).
    """
    source = source_plan(run)
    if source is not None:
        return f"`kohya-plan launch {shlex.quote(source)}`"
    runs = toml_string(str(run.path.parent))
    words = ["kohya-plan", "launch", str(run.plan), "--set", f"output.runs_dir={runs}"]
    return f"`{shlex.join(words)}`"


def _make_from_plan(
    target: Path,
    overrides: list[str],
    options: LaunchOptions,
    progress: Callable[[int, int], None] | None,
) -> PreparedRun:
    base = check_plan(target, overrides, deep="cached", progress=progress)
    base.raise_if_blocked()
    state = options.resume_from
    if options.resume and state is None:
        state = latest_state(base.plan)
        if state is None:
            msg = (
                f"no complete saved state (<name>-…-state folder with {STATE_LAST_FILE}) in "
                f"{base.plan.output.dir} to resume from — set training.save_state = true for "
                "runs you may want to resume"
            )
            raise LaunchError(msg)
    if state is not None:
        overrides = [*overrides, *resume_overrides(state, base.plan, overwrite=options.overwrite)]
        base = check_plan(target, overrides)
        base.raise_if_blocked()
    return prepare_report(base, options, overwrite=options.overwrite or state is not None)


def resume_overrides(state_dir: Path, plan: Plan, *, overwrite: bool) -> list[str]:
    """The launch.extra options that continue from `state_dir` (as the SLURM job script does).

    sd-scripts 48d368fa restarts `global_step` after a resume (it subtracts the skipped whole
    epochs from the saved step), so a state's saved step is only right for a state saved by a
    run that was not itself resumed, while its epoch stays right. An epoch state therefore
    resumes with `--initial_epoch <its epoch + 1>`; a step state with its saved step
    (`--skip_until_initial_step` skips the batches already trained, in the right epoch).
    Either way the step numbers after the resume count from the resume, so step-numbered
    LoRA files (save_every_n_steps) restart at the first multiple and would overwrite
    the first run's: refused unless `overwrite`.
    """
    reason = incomplete_state_reason(state_dir)
    if reason is not None:
        msg = f"{reason} — give an older state with --resume-from, or start anew"
        raise LaunchError(msg)
    state = read_state(state_dir)
    assert state is not None
    extra = [
        f"launch.extra.resume={toml_string(str(state.path.absolute()))}",
        "launch.extra.skip_until_initial_step=true",
    ]
    if not state.by_step and state.epoch is not None:
        epochs = plan.training.epochs
        if epochs is not None and state.epoch >= epochs:
            msg = (
                f"{state.path} was saved at the end of epoch {state.epoch} and the plan trains "
                f"{epochs} epochs: nothing is left to train — raise training.epochs "
                f"(--set training.epochs={state.epoch + 1} or more) to continue"
            )
            raise LaunchError(msg)
        extra.append(f"launch.extra.initial_epoch={state.epoch + 1}")
    if plan.training.save_every_n_steps and not overwrite:
        ext = plan.output.save_model_as
        step_files = [
            p for p in existing_outputs(plan) if p.suffix == f".{ext}" and "-step" in p.name
        ]
        if step_files:
            msg = (
                f"{plan.output.dir} holds step-numbered files ({step_files[0].name} …): after a "
                "resume sd-scripts numbers steps from the resume, so with save_every_n_steps it "
                "would overwrite them — move them away, or pass --overwrite"
            )
            raise LaunchError(msg)
    return extra


def prepare_report(
    report: CheckReport, options: LaunchOptions, *, overwrite: bool | None = None
) -> PreparedRun:
    """A new run folder for an already checked (possibly derived) plan, ready to start."""
    report.raise_if_blocked()
    output_lock = lock_output(report.plan, None, plan_path=report.plan_path)
    try:
        if not (options.overwrite if overwrite is None else overwrite):
            refuse_overwrite(report.plan)
        preflight(locate_trainer(report), report.plan)
        rendered = make_run(report)
        run_lock = lock_run_dir(rundir.RunDir(rendered.run_dir))
    except BaseException:
        output_lock.release()
        raise
    output_lock.update(run_dir=str(rendered.run_dir))
    return PreparedRun.from_rendered(rendered, report.plan, (run_lock, output_lock))


def run(
    prepared: PreparedRun,
    options: LaunchOptions,
    view_factory: Callable[[], RunView],
) -> RunSummary:
    """Start the trainer under supervision, show it, and summarise it (also after Ctrl-C).

    The run folder's and the output's locks are held until the summary is written; the
    trainer's guardian holds them too, so they outlive kohya-plan as long as the trainer does.
    """
    try:
        # sd-scripts rewrites its files in place: a file sharing its inode with another name
        # (an old hard-linked epoch copy) gets its own first, so that the other stays as it was.
        break_links(existing_outputs(prepared.plan))
        return _run(prepared, options, view_factory)
    finally:
        prepared.release()


def _run(
    prepared: PreparedRun,
    options: LaunchOptions,
    view_factory: Callable[[], RunView],
) -> RunSummary:
    from kohya_plan.run.supervisor import Supervisor

    folder = rundir.RunDir(prepared.run_dir)
    notes = RunNotes(folder / rundir.NOTES)
    view = SafeView(view_factory, notes)
    tracker = Tracker(view, notes)
    supervisor: Supervisor | None = None

    def on_events(events: list[Event]) -> None:
        for event in events:
            tracker.state.apply(event)
            view.event(event, tracker.state)
            if (
                isinstance(event, Failure)
                and event.kind == "nan_loss"
                and not options.keep_going_on_nan
                and tracker.stopping is None
                and supervisor is not None
            ):
                tracker.stopping = "nan"
                supervisor.request_stop("avr_loss became NaN")

    env = {**os.environ, **prepared.env}
    argv = run_argv(prepared.argv, env)
    machine_rank = machine_rank_of(argv, prepared.plan)
    started_at = time.time()
    usage_before = _usage()
    record: dict[str, object] = {
        "started_at": started_at,
        "argv": argv,
        "machine_rank": machine_rank,
        "edited_launch": prepared.edited_launch,
        "finished": False,
        # Who supervises: `stop` signals it, `summary` tells a running run from a dead one.
        "supervisor": identity(),
        "grace_s": options.grace_s,
        "stall_timeout_s": options.stall_timeout_s,
    }
    folder.write_json(rundir.EXIT, record)
    notes.add(f"launch started (kohya-plan pid {os.getpid()})")
    if prepared.edited_launch:
        tracker.warn("launch.json was changed after `make` and was run as edited (--trust-edited)")

    def on_status(event: dict[str, object]) -> None:
        kind = event.get("event")
        if kind == "started":
            record["trainer"] = {"pid": event.get("pid"), "create_time": event.get("create_time")}
            record["guardian"] = {"pid": event.get("guardian_pid")}
            folder.write_json(rundir.EXIT, record)
        elif kind == "stall":
            silent = float(event.get("silent_s") or 0.0)  # type: ignore[arg-type]
            step = tracker.state.step
            tracker.warn(
                f"the trainer printed nothing for {format_clock(silent)} (at step {step}; "
                f"--stall-timeout {format_clock(options.stall_timeout_s)})"
                + ("; stopping it (--stop-on-stall)" if options.stop_on_stall else "")
            )
            if options.stop_on_stall and tracker.stopping is None and supervisor is not None:
                tracker.stopping = "stall"
                supervisor.request_stop("stall")
        elif kind == "hangup":
            view.detach("the terminal was closed (SIGHUP)")
            tracker.note(
                "the terminal was closed (SIGHUP): kohya-plan went on supervising without a "
                f"display, as documented; `kohya-plan stop {folder.path}` stops a run like this"
            )
        elif kind == "log_error":
            tracker.warn(
                f"{rundir.LOG} could not be written any more ({event.get('error')}); the training "
                "went on, and the summary is from the output kohya-plan saw"
            )
        elif kind == "guardian_error":
            notes.add(f"guardian: {event.get('text')}")

    supervisor = Supervisor(
        argv,
        env=env,
        cwd=prepared.cwd,
        log_path=folder.log,
        on_output=lambda chunk: on_events(tracker.feed(chunk)),
        grace_s=options.grace_s,
        record_path=folder / rundir.TRAINER,
        notes_path=folder / rundir.NOTES,
        hold_fds=[lock.fd for lock in prepared.locks if lock.fd >= 0],
        stall_s=options.stall_timeout_s or None,
        on_status=on_status,
    )
    try:
        with supervisor:
            result = supervisor.run()
        on_events(tracker.finish())
    finally:
        view.close()
    if result.dropped_bytes:
        tracker.note(
            f"kohya-plan's display fell behind and skipped {result.dropped_bytes} bytes of the "
            f"trainer's output; {rundir.LOG} has them all"
        )
        if result.log_error is None:
            tracker.state = replay_file(folder.log)  # the summary from everything
    stop_reason = result.stop_reason
    if tracker.stopping is not None and stop_reason is not None:
        stop_reason = tracker.stopping
    notes.add(f"launch ended: exit status {result.returncode}, stop {stop_reason}")
    record.update(
        {
            "finished": True,
            "exit_status": result.returncode,
            "wall_s": result.duration_s,
            "stop_reason": stop_reason,
            "escalation": result.escalation,
            "log_error": result.log_error,
            "log_lost_bytes": result.log_lost_bytes,
            "dropped_bytes": result.dropped_bytes,
            "warnings": tracker.warnings,
            "notes": tracker.notes,
            # Supervision overhead: kohya-plan's own CPU time vs the trainer tree's.
            **_usage_delta(usage_before, _usage()),
        }
    )
    unsaved: list[str] = []
    try:
        folder.write_json(rundir.EXIT, record)
    except OSError as exc:  # a full disk at the end must not hide the run's result
        why, fix = os_error_text(exc)
        unsaved.append(f"{folder / rundir.EXIT} was not written: {why} — {fix}")
    summary = finish_summary(
        folder.path,
        prepared.plan,
        tracker.state,
        exit_status=result.returncode,
        wall_s=result.duration_s,
        stop_reason=stop_reason,
        escalation=result.escalation,
        started_at=started_at,
        link_final=True,
        warnings=tracker.warnings,
        notes=tracker.notes,
        machine_rank=machine_rank,
    )
    write_report_quietly(prepared.run_dir)
    if unsaved:
        summary = replace(summary, warnings=(*unsaved, *summary.warnings))
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
