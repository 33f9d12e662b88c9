"""`kohya-plan submit`, `status`, `stop` for SLURM: a run folder's job, from sbatch to its end.

`submit` makes the run folder (with job.sbatch) from a plan, or takes one `make --slurm` made,
runs sbatch and records the job in slurm.json. `status` reads the run folder and asks the
scheduler: squeue while the job waits or runs (with the progress its log shows), sacct once it
has ended (with the cause its log names). `summary` of a SLURM run folder is built from the
job's log and sacct's record by `slurm_summary`. `stop_slurm` cancels the job: SIGTERM reaches
the trainer through the job script (accelerate's launcher passes it on), SIGKILL follows after
the cluster's KillWait.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.errors import LaunchError
from kohya_plan.run import slurm as scheduler
from kohya_plan.trainlog.replay import replay_file

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from kohya_plan.summary import Cause, RunSummary
    from kohya_plan.trainlog.events import RunState

# sacct's final states, and what they make of the run
_SUCCEEDED = frozenset({"COMPLETED"})
_STOPPED = {"CANCELLED": "cancelled", "TIMEOUT": "time limit", "PREEMPTED": "preempted"}
_SCHEDULER_FAILED = {
    "OUT_OF_MEMORY": "the job went over its memory (slurm.mem): raise slurm.mem or lower "
    "training.batch_size",
    "NODE_FAIL": "a node of the job failed: submit it again (with training.save_state it "
    "resumes from the newest state)",
    "BOOT_FAIL": "a node could not be booted: submit it again",
    "DEADLINE": "the job missed its deadline",
}
_WAITING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING"})
_ELAPSED = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")


@dataclass(frozen=True)
class JobRecord:
    """slurm.json: the job that runs this folder (for a sweep's point: its array task)."""

    job_id: str
    log: str
    submitted_at: float
    script: str
    array_job: str | None = None
    array_task: int | None = None
    stop_requested_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "log": self.log,
            "submitted_at": self.submitted_at,
            "script": self.script,
            "array_job": self.array_job,
            "array_task": self.array_task,
            "stop_requested_at": self.stop_requested_at,
        }


def job_record(run: rundir.RunDir) -> JobRecord | None:
    """The folder's SLURM job, or None when it was never submitted."""
    data = run.read_json(rundir.SLURM_JOB, required=False)
    if data is None:
        return None
    try:
        task = data.get("array_task")
        stopped = data.get("stop_requested_at")
        return JobRecord(
            job_id=str(data["job_id"]),
            log=str(data["log"]),
            submitted_at=float(data.get("submitted_at") or 0.0),
            script=str(data.get("script") or ""),
            array_job=None if data.get("array_job") is None else str(data["array_job"]),
            array_task=int(task) if isinstance(task, int) else None,
            stop_requested_at=float(stopped) if isinstance(stopped, (int, float)) else None,
        )
    except (KeyError, TypeError, ValueError):
        msg = f"{run.path / rundir.SLURM_JOB} is not a job record kohya-plan wrote — restore it"
        raise rundir.RunDirError(msg) from None


# --- submit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    """What `submit` started: the run folder, its job, where the job's output goes."""

    run_dir: Path
    job_id: str
    log: Path
    made: bool  # a new run folder was made from a plan


def submit(target: Path, overrides: Iterable[str] = (), *, overwrite: bool = False) -> Submitted:
    """sbatch a run: a plan becomes a new run folder with job.sbatch first."""
    target = target.expanduser().absolute()
    overrides = list(overrides)
    made = False
    if target.is_dir():
        if overrides:
            msg = (
                f"{target} is a made run folder and cannot change — submit its plan with --set "
                "instead (a new run folder is made)"
            )
            raise LaunchError(msg)
        run = rundir.RunDir(target).require_made()
    else:
        from kohya_plan.planning import check_plan, locate_trainer, make_run
        from kohya_plan.workflows.preflight import preflight, refuse_overwrite

        report = check_plan(target, overrides)
        report.raise_if_blocked()
        if not overwrite:
            refuse_overwrite(report.plan)
        preflight(locate_trainer(report), report.plan)
        run = rundir.RunDir(make_run(report, slurm=True).run_dir)
        made = True
    if not run.job_sbatch.is_file():
        msg = (
            f"{run.path} has no {rundir.JOB_SBATCH} — it was made for a local launch; make it "
            f"for SLURM with `kohya-plan make --slurm {run.plan}` (or add [slurm] to the plan)"
        )
        raise LaunchError(msg)
    if run.was_launched() or job_record(run) is not None:
        msg = (
            f"{run.path} was launched or submitted before — a run folder is used once; "
            f"`kohya-plan submit {run.plan}` makes a new one"
        )
        raise LaunchError(msg)
    job = scheduler.sbatch(run.job_sbatch)
    record = JobRecord(
        job_id=job,
        log=rundir.slurm_log_name(job),
        submitted_at=time.time(),
        script=str(run.job_sbatch),
    )
    run.write_json(rundir.SLURM_JOB, record.to_json())
    return Submitted(run.path, job, run / record.log, made)


# --- status ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStatus:
    """Where a run stands: its state, the scheduler's view, the progress its log shows."""

    run_dir: str
    state: str  # not launched, pending, running, interrupted, succeeded, failed, stopped, unknown
    detail: str
    job_id: str | None = None
    scheduler_state: str | None = None
    reason: str | None = None
    step: int = 0
    steps_total: int | None = None
    epoch: int | None = None
    epochs_total: int | None = None
    avr_loss: float | None = None
    elapsed: str | None = None
    exit_code: str | None = None
    cause: Cause | None = None
    log: str | None = None
    machine_logs: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def machine_logs(run: rundir.RunDir, record: JobRecord) -> list[Path]:
    """The logs of the job's machines other than 0 (one per machine), in machine order."""
    found = []
    machine = 1
    while (path := run / rundir.slurm_machine_log_name(record.log, machine)).is_file():
        found.append(path)
        machine += 1
    return found


def job_state(run: rundir.RunDir, record: JobRecord) -> RunState:
    """What the job's logs say: machine 0's, with the other machines' failures added (a rank
    that died on another machine is the cause there, not on machine 0)."""
    from kohya_plan.trainlog.events import RunState

    log = run / record.log
    state = replay_file(log) if log.is_file() else RunState()
    for other in machine_logs(run, record):
        for failure in replay_file(other).failures:
            if failure not in state.failures:
                state.failures.append(failure)
    return state


def _seconds(elapsed: str) -> float | None:
    m = _ELAPSED.match(elapsed.strip())
    if m is None:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def _exit_status(code: str) -> int | None:
    status, _, _ = code.partition(":")
    return int(status) if status.strip().lstrip("-").isdigit() else None


def _progress(state: RunState) -> dict[str, Any]:
    last = state.last_progress
    return {
        "step": state.step,
        "steps_total": state.total,
        "epoch": state.epoch,
        "epochs_total": state.epochs,
        "avr_loss": last.avr_loss if last is not None else None,
    }


def run_status(run_dir: Path) -> RunStatus:
    """Where a run folder stands (a SLURM job: asking squeue and sacct)."""
    run = rundir.RunDir(run_dir).require_made()
    record = job_record(run)
    if record is None:
        return _local_status(run)
    state = job_state(run, record)
    progress = _progress(state)
    logs = tuple(str(p) for p in machine_logs(run, record))
    common = {
        "run_dir": str(run.path),
        "job_id": record.job_id,
        "log": str(run / record.log),
        "machine_logs": logs,
        **progress,
    }
    queued = [r for r in scheduler.squeue([record.job_id]) if _same_job(r.job_id, record)]
    if queued:
        row = queued[0]
        if row.state in _WAITING:
            why = f" ({row.reason})" if row.reason and row.reason != "None" else ""
            return RunStatus(
                state="pending",
                detail=f"job {record.job_id} waits{why}",
                scheduler_state=row.state,
                reason=row.reason,
                elapsed=row.elapsed,
                **common,
            )
        where = f" on {row.nodes}" if row.nodes else ""
        return RunStatus(
            state="running",
            detail=f"job {record.job_id} {row.state.lower()}{where} for {row.elapsed}: "
            + _progress_text(state),
            scheduler_state=row.state,
            elapsed=row.elapsed,
            **common,
        )
    rows = [r for r in scheduler.sacct(record.job_id) if _same_job(r.job_id, record)]
    if not rows:
        return RunStatus(
            state="unknown",
            detail=f"job {record.job_id} is not in the queue and sacct has no record of it "
            "(no accounting on this cluster?): " + _progress_text(state),
            **common,
        )
    ended = rows[-1]
    outcome, detail, cause = _ended(state, ended, record)
    return RunStatus(
        state=outcome,
        detail=detail,
        scheduler_state=ended.final_state,
        elapsed=ended.elapsed,
        exit_code=ended.exit_code,
        cause=cause,
        **common,
    )


def _same_job(row_id: str, record: JobRecord) -> bool:
    return row_id == record.job_id or row_id.split(".")[0] == record.job_id


def _progress_text(state: RunState) -> str:
    total = state.total
    if total is None and state.step == 0:
        return f"starting ({state.phase})" if state.phase else "starting"
    epoch = f", epoch {state.epoch}/{state.epochs}" if state.epoch is not None else ""
    last = state.last_progress
    loss = f", avr_loss {last.avr_loss:.4g}" if last and last.avr_loss is not None else ""
    return f"step {state.step}/{total if total is not None else '?'}{epoch}{loss}"


def _ended(
    state: RunState, row: scheduler.AccountRow, record: JobRecord
) -> tuple[str, str, Cause | None]:
    from kohya_plan.summary import ADVICE, Cause, failure_cause

    final = row.final_state
    status = _exit_status(row.exit_code)
    what = f"job {record.job_id} {final} (exit code {row.exit_code}) after {row.elapsed}"
    if final in _SUCCEEDED and state.saw_model_saved:
        return "succeeded", f"{what}: {_progress_text(state)}, model saved", None
    if final in _STOPPED:
        by = " by `kohya-plan stop`" if record.stop_requested_at is not None else ""
        cause = Cause("interrupted", f"stopped ({_STOPPED[final]}{by})", (), ADVICE["interrupted"])
        return "stopped", f"{what}{by}: {_progress_text(state)}", cause
    found = failure_cause(state, status, None)
    if final in _SCHEDULER_FAILED and (found is None or found.kind == "exit"):
        found = Cause(final.lower(), f"SLURM: {final}", (), _SCHEDULER_FAILED[final])
    if found is None:
        found = Cause("exit", f"SLURM: {final}", (), ADVICE["exit"])
    return "failed", f"{what}: {found.kind}: {found.message}", found


def _local_status(run: rundir.RunDir) -> RunStatus:
    if not run.was_launched():
        return RunStatus(
            run_dir=str(run.path),
            state="not launched",
            detail=f"made, never launched: `kohya-plan launch {run.path}` (or submit it)",
        )
    state = replay_file(run.log)
    info = run.read_json(rundir.EXIT, required=False) or {}
    common = {"run_dir": str(run.path), "log": str(run.log), **_progress(state)}
    if not info.get("finished"):
        from kohya_plan.run.control import live_status

        live = live_status(run)
        if live.running:
            return RunStatus(
                state="running", detail=f"launched here: {_progress_text(state)}", **common
            )
        trainer = (
            f"its trainer (pid {live.trainer_pid}) still runs"
            if live.trainer_alive
            else "its trainer is gone"
        )
        return RunStatus(
            state="interrupted",
            detail=f"launched here, and kohya-plan stopped before the trainer ended ({trainer}): "
            f"{_progress_text(state)}; `kohya-plan summary {run.path}` says what was saved",
            **common,
        )
    summary = run.read_json(rundir.SUMMARY, required=False) or {}
    outcome = str(summary.get("outcome") or "unknown")
    cause_data = summary.get("cause") or None
    from kohya_plan.summary import Cause

    cause = None
    if isinstance(cause_data, dict):
        cause = Cause(
            str(cause_data.get("kind")),
            str(cause_data.get("message")),
            tuple(str(x) for x in cause_data.get("lines") or ()),
            str(cause_data.get("advice") or ""),
            cause_data.get("rank") if isinstance(cause_data.get("rank"), int) else None,
        )
    return RunStatus(
        state=outcome,
        detail=f"launched here, {outcome} (exit status {info.get('exit_status')}): "
        + _progress_text(state),
        exit_code=str(info.get("exit_status")),
        cause=cause,
        **common,
    )


# --- summary and stop ---------------------------------------------------------------------------


def slurm_summary(run_dir: Path) -> RunSummary:
    """summary.json of a SLURM run, from its job's logs and sacct's record."""
    from kohya_plan.loading import load_plan
    from kohya_plan.workflows.results import finish_summary

    run = rundir.RunDir(run_dir).require_made()
    record = job_record(run)
    if record is None:
        msg = f"{run.path} was not submitted to SLURM (no {rundir.SLURM_JOB})"
        raise LaunchError(msg)
    if not (run / record.log).is_file():
        msg = (
            f"job {record.job_id} has written nothing yet ({run / record.log} is missing): "
            f"`kohya-plan status {run.path}` says whether it is still waiting"
        )
        raise LaunchError(msg)
    rows = [r for r in scheduler.sacct(record.job_id) if _same_job(r.job_id, record)]
    row = rows[-1] if rows else None
    final = row.final_state if row else ""
    stop = _STOPPED.get(final)
    return finish_summary(
        run.path,
        load_plan(run.plan),
        job_state(run, record),
        exit_status=_exit_status(row.exit_code) if row else None,
        wall_s=_seconds(row.elapsed) if row else None,
        stop_reason=stop,
        escalation=None,
        started_at=record.submitted_at,
        link_final=False,
    )


def stop_slurm(run_dir: Path, *, now: bool = False) -> str:
    """Cancel a run folder's SLURM job (the trainer gets SIGTERM; `now`: SIGKILL); the job id."""
    run = rundir.RunDir(run_dir).require_made()
    record = job_record(run)
    if record is None:
        msg = f"{run.path} was not submitted to SLURM (no {rundir.SLURM_JOB}): nothing to cancel"
        raise LaunchError(msg)
    return cancel(run, record, now=now)


def cancel(run: rundir.RunDir, record: JobRecord, *, now: bool = False) -> str:
    """scancel `record`'s job (a run's, or a sweep's whole array; `now`: SIGKILL, else
    SIGTERM) and note the request in the folder's slurm.json; the job id."""
    scheduler.scancel(record.job_id, signal="KILL" if now else None)
    run.write_json(rundir.SLURM_JOB, {**record.to_json(), "stop_requested_at": time.time()})
    return record.job_id


def queue_state(run: rundir.RunDir) -> str | None:
    """Where the scheduler has the folder's job, from squeue and sacct alone (no log read):
    "queued" (waiting or running), "ended", "unknown" (neither knows it: no accounting), or
    None when the folder was not submitted."""
    record = job_record(run)
    if record is None:
        return None
    if any(_same_job(r.job_id, record) for r in scheduler.squeue([record.job_id])):
        return "queued"
    if any(_same_job(r.job_id, record) for r in scheduler.sacct(record.job_id)):
        return "ended"
    return "unknown"


def summary_of(run_dir: Path) -> RunSummary:
    """`kohya-plan summary RUN_DIR`: a local run's from train.log, a SLURM run's from its job."""
    from kohya_plan.workflows.results import summary_from_disk

    run = rundir.RunDir(run_dir).require_made()
    if not run.log.is_file() and job_record(run) is not None:
        return slurm_summary(run.path)
    return summary_from_disk(run.path)
