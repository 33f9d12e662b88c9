"""`kohya-plan launch`: make (or take) a run folder, run it supervised, summarise the run."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

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
    OUTPUT_LOCK,
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
from kohya_plan.run.identity import alive, identity
from kohya_plan.run.locks import Busy, Lock, acquire, holder
from kohya_plan.summary import format_clock
from kohya_plan.trainlog.events import Event, Failure, RunState
from kohya_plan.trainlog.records import LogParser
from kohya_plan.trainlog.replay import replay_file
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

    def notice(self, text: str) -> None: ...

    def close(self) -> None: ...


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


# How long a refused launch waits for the other launch to name its new run folder.
_RUN_DIR_WAIT_S = 5.0


def _holder_text(note: dict[str, object]) -> str:
    pid = note.get("pid")
    if not isinstance(pid, int):
        return "another kohya-plan launch"
    where = note.get("run_dir") or note.get("plan")
    text = f"kohya-plan pid {pid}" + (f", run folder {where}" if where else "")
    if not alive(pid, note.get("create_time")):
        text += "; that kohya-plan is gone, and its guardian is still stopping the trainer"
    return text


def lock_run_dir(run: rundir.RunDir) -> Lock:
    """The run folder's lock, or a LaunchError naming the launch that holds it."""
    try:
        return acquire(run.lock, **identity(), run_dir=str(run.path), since=time.time())
    except Busy as busy:
        msg = (
            f"{run.path} is being launched already ({_holder_text(busy.note)}) — "
            f"`kohya-plan summary {run.path}` shows its progress, `kohya-plan stop {run.path}` "
            "stops it"
        )
        raise LaunchError(msg) from None
    except OSError as exc:
        msg = f"cannot lock {run.lock} ({exc.strerror or exc}) — is the run folder writable?"
        raise LaunchError(msg) from None


def lock_output(plan: Plan, run_dir: Path | None, *, plan_path: Path | None = None) -> Lock:
    """The lock on output.dir + output.name (one writer per output), or a LaunchError."""
    out = plan.output.dir
    path = out / OUTPUT_LOCK.format(name=plan.output.name)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return acquire(
            path,
            **identity(),
            run_dir=None if run_dir is None else str(run_dir),
            plan=None if plan_path is None else str(plan_path),
            since=time.time(),
        )
    except Busy as busy:
        note = busy.note
        # The other launch may still be making its run folder: give it a moment to say which.
        deadline = time.monotonic() + _RUN_DIR_WAIT_S
        while not note.get("run_dir") and time.monotonic() < deadline:
            time.sleep(0.1)
            note = holder(path) or note
        busy.note = note
        where = note.get("run_dir")
        stop = f" (`kohya-plan stop {where}` stops it)" if where else ""
        msg = (
            f"{out} / {plan.output.name}: another launch is writing this output "
            f"({_holder_text(busy.note)}){stop} — wait for it to end, or choose another "
            "output.name or output.dir"
        )
        raise LaunchError(msg) from None
    except OSError as exc:
        msg = (
            f"cannot write into output.dir {out} ({exc.strerror or exc}) — sd-scripts could not "
            "save the LoRA files there either: choose a writable output.dir"
        )
        raise LaunchError(msg) from None


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
    from kohya_plan.run.identity import identity
    from kohya_plan.run.supervisor import Supervisor

    folder = rundir.RunDir(prepared.run_dir)
    notes = RunNotes(folder / rundir.NOTES)
    view = SafeView(view_factory, notes)
    tracker = _Tracker(view, notes)
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


class RunNotes:
    """kohya-plan.log: kohya-plan's own lines about the run, with times (never train.log)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, text: str) -> None:
        """Append one line; a note that cannot be written is not worth stopping a run for."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(f"{stamp} kohya-plan: {text}\n")
        except OSError:
            pass


class _Tracker:
    """The parsed state of the run, and kohya-plan's own warnings and notes about it."""

    def __init__(self, view: SafeView, notes: RunNotes) -> None:
        self.state = RunState()
        self.parser: LogParser | None = LogParser()
        self.view = view
        self.run_notes = notes
        self.stopping: str | None = None
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        if self.parser is None:
            return []
        try:
            return self.parser.feed(chunk)
        except Exception as exc:
            # A parser bug must not cost the training: stop parsing, keep supervising.
            self.parser = None
            self.warn(
                f"kohya-plan could not parse the trainer's output ({type(exc).__name__}: {exc}); "
                f"progress is no longer shown, the training goes on, {rundir.LOG} has everything"
            )
            return []

    def finish(self) -> list[Event]:
        if self.parser is None:
            return []
        try:
            return self.parser.finish()
        except Exception:
            return []

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.run_notes.add(f"warning: {text}")
        self.view.notice(f"warning: {text}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.run_notes.add(text)
        self.view.notice(text)


class SafeView:
    """The run's view, made harmless: nothing the display does can stop or kill the training.

    A closed stdout (`| head`, a dead `tee`), a closed terminal (SIGHUP, or EIO on write) or an
    exception in the view switches the display off: the run goes on, train.log and the
    summary are written as always, and the reason is noted.
    """

    def __init__(self, factory: Callable[[], RunView], notes: RunNotes) -> None:
        self.notes = notes
        self.view: RunView | None = None
        try:
            self.view = factory()
        except (Exception, SystemExit) as exc:
            self._failed(exc)

    def event(self, event: Event, state: RunState) -> None:
        if self.view is not None:
            try:
                self.view.event(event, state)
            except (Exception, SystemExit) as exc:
                self._failed(exc)

    def notice(self, text: str) -> None:
        if self.view is not None:
            try:
                self.view.notice(text)
            except (Exception, SystemExit) as exc:
                self._failed(exc)

    def close(self) -> None:
        view, self.view = self.view, None
        if view is not None:
            try:
                view.close()
            except (Exception, SystemExit) as exc:
                self._failed(exc)

    def detach(self, reason: str) -> None:
        """Stop showing anything (the terminal is gone); the run goes on."""
        silence_terminal()
        self.close()
        self.notes.add(f"display off: {reason}")

    def _failed(self, exc: BaseException) -> None:
        view, self.view = self.view, None
        if isinstance(exc, SystemExit):
            # rich's answer to a broken pipe: stdout to the null device, then SystemExit(1).
            silence_broken_output()
            reason = "the output is closed or gone (broken pipe)"
        elif isinstance(exc, OSError):
            silence_broken_output()
            reason = f"the output is closed or gone ({exc.strerror or exc})"
        else:
            reason = f"the display failed ({type(exc).__name__}: {exc})"
        self.notes.add(f"display off: {reason}; the training goes on")
        if view is not None:
            with contextlib.suppress(Exception, SystemExit):
                view.close()


def _devnull_over(fd: int) -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def _fd_of(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None  # not a real file (a test runner's buffer)


def silence_broken_output() -> None:
    """stdout can no longer be written (EPIPE: `| head`, a dead `tee`; EIO: a closed terminal):
    point it at the null device, so that later writes (the summary, the interpreter's last
    flush) succeed quietly instead of raising. The run's results are in its folder."""
    fd = _fd_of(sys.stdout)
    if fd is not None:
        _devnull_over(fd)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()


def silence_terminal() -> None:
    """After SIGHUP: stdout/stderr that are terminals point at the null device from now on."""
    import stat

    for stream in (sys.stdout, sys.stderr):
        fd = _fd_of(stream)
        if fd is None:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            _devnull_over(fd)
            continue
        if stat.S_ISCHR(mode) and os.fstat(fd).st_rdev != Path(os.devnull).stat().st_rdev:
            _devnull_over(fd)
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


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
