"""A run's results on disk: summary.json and manifest.json, written at the end and rebuilt later.

The summary is folded from the parsed log (`RunState`), the process result recorded in
exit.json, the LoRA files in the output folder and the TensorBoard scalars; `summary RUN_DIR`
replays train.log to rebuild it, so the two always agree.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from kohya_plan import rundir
from kohya_plan.errors import LaunchError, os_error_text
from kohya_plan.loading import load_plan
from kohya_plan.outputs import epoch_copy, lora_files
from kohya_plan.summary import Interruption, LoraFile, RunSummary, resume_note, summarize
from kohya_plan.trainlog.events import RunState
from kohya_plan.trainlog.replay import replay_file
from kohya_plan.trainlog.tensorboard import read_scalars

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from kohya_plan.plan import Plan


def manifest(files: list[LoraFile], copy: str | None, epochs: int | None) -> dict[str, object]:
    """manifest.json: epoch → file (the final file's epoch copy included), step → file."""
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
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
    running: bool = False,
    interrupted: Interruption | None = None,
    write: bool = True,
    machine_rank: int | None = None,
) -> RunSummary:
    """Collect files and TensorBoard scalars; write summary.json and manifest.json (`write`).

    ``machine_rank`` is this machine's number in a run over several (None: the plan's, when it
    is a number); a machine other than 0 leaves the final file's epoch copy to machine 0.
    """
    run = rundir.RunDir(run_dir)
    if machine_rank is None and isinstance(plan.launch.machine_rank, int):
        machine_rank = plan.launch.machine_rank if plan.launch.num_machines > 1 else None
    files = lora_files(plan.output.dir, plan.output.name, plan.output.save_model_as, started_at)
    copy = None
    previous = run.read_json(rundir.MANIFEST, required=False)
    if not link_final and previous is not None:
        # Rebuilding: the epoch-numbered copy of the final file is not a file of its own.
        recorded = previous.get("final_copy")
        copy = recorded if isinstance(recorded, str) else None
        files = [f for f in files if f.path != copy]
    summary = summarize(
        state,
        exit_status=exit_status,
        wall_s=wall_s,
        stop_reason=stop_reason,
        escalation=escalation,
        files=files,
        tensorboard=read_scalars(run.logging_dir),
        final_copy=copy,
        running=running,
        interrupted=interrupted,
        processes=plan.launch.num_processes,
        machines=plan.launch.num_machines,
        machine_rank=machine_rank,
    )
    summary = replace(
        summary,
        warnings=(*summary.warnings, *warnings),
        notes=(*summary.notes, *notes),
    )
    resume = plan.launch.extra.get("resume")
    if isinstance(resume, str):
        by_step = "initial_epoch" not in plan.launch.extra
        summary = replace(summary, notes=(*summary.notes, resume_note(resume, by_step=by_step)))
    unsaved: list[str] = []
    if link_final and summary.outcome == "succeeded" and not machine_rank:
        try:
            copy = epoch_copy(files, plan, summary.epochs_done)
        except OSError as exc:
            why, fix = os_error_text(exc)
            unsaved.append(
                f"the final file was not also saved under its epoch's name (T29): {why} "
                f"({exc.filename or plan.output.dir}) — {fix}; the final file itself is complete"
            )
        summary = replace(summary, final_copy=copy)
    if not write:
        return replace(summary, warnings=(*unsaved, *summary.warnings))
    # A full or read-only disk at the very end must not hide what the run did: the summary is
    # still returned (and shown), with what could not be written and how to write it again.
    try:
        run.write_json(rundir.MANIFEST, manifest(files, copy, summary.epochs_done))
    except OSError as exc:
        unsaved.append(_not_written(run, rundir.MANIFEST, exc))
    summary = replace(summary, warnings=(*unsaved, *summary.warnings))
    try:
        run.write_json(rundir.SUMMARY, summary.to_json())
    except OSError as exc:
        unsaved.append(_not_written(run, rundir.SUMMARY, exc))
        summary = replace(summary, warnings=(unsaved[-1], *summary.warnings))
    return summary


def _not_written(run: rundir.RunDir, name: str, exc: OSError) -> str:
    why, fix = os_error_text(exc)
    return (
        f"{run / name} was not written: {why} — {fix}, then `kohya-plan summary {run.path}` "
        "writes it again (the LoRA files are not affected)"
    )


def summary_from_disk(run_dir: Path) -> RunSummary:
    """Rebuild a run's summary from train.log, the TensorBoard events and the files on disk.

    A run kohya-plan supervises now is "running" (its progress so far; nothing is written);
    one whose kohya-plan died before the trainer ended is "interrupted" (written once the
    trainer is gone too); a run that ended under kohya-plan is rebuilt as it was.
    """
    from kohya_plan.run.control import live_status

    run = rundir.RunDir(run_dir).require_made()
    live = live_status(run)
    if not run.log.is_file() and not live.launched:
        msg = (
            f"{run.path} has no {rundir.LOG}: it was never launched "
            f"(`kohya-plan launch {run.path}`)"
        )
        raise LaunchError(msg)
    plan = load_plan(run.plan)
    exit_info = run.read_json(rundir.EXIT, required=False) or {}
    status = exit_info.get("exit_status")
    wall = exit_info.get("wall_s")
    started = exit_info.get("started_at")
    reason = exit_info.get("stop_reason")
    escalation = exit_info.get("escalation")
    interrupted = None
    if live.interrupted:
        interrupted = Interruption(
            trainer_pid=live.trainer_pid,
            trainer_running=live.trainer_alive,
            trainer_exit_status=live.trainer_exit_status,
            stopped_by_guardian=live.stopped_by_guardian,
        )
    rank = exit_info.get("machine_rank")
    return finish_summary(
        run.path,
        plan,
        replay_file(run.log) if run.log.is_file() else RunState(),
        exit_status=status if isinstance(status, int) else None,
        wall_s=float(wall) if isinstance(wall, (int, float)) else None,
        stop_reason=reason if isinstance(reason, str) else None,
        escalation=escalation if isinstance(escalation, str) else None,
        started_at=float(started) if isinstance(started, (int, float)) else None,
        link_final=False,
        warnings=_strings(exit_info.get("warnings")),
        notes=_strings(exit_info.get("notes")),
        running=live.running,
        interrupted=interrupted,
        # Only a run that is over is written down: a running one writes its own at the end.
        write=not live.running and not live.trainer_alive and not live.locked,
        machine_rank=rank if isinstance(rank, int) else None,
    )


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
