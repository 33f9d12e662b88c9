"""A run's results on disk: summary.json and manifest.json, written at the end and rebuilt later.

The summary is folded from the parsed log (`RunState`), the process result recorded in
exit.json, the LoRA files in the output folder and the TensorBoard scalars; `summary RUN_DIR`
replays train.log to rebuild it, so the two always agree.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from kohya_plan import rundir
from kohya_plan.errors import LaunchError
from kohya_plan.loading import load_plan
from kohya_plan.outputs import epoch_copy, lora_files
from kohya_plan.summary import LoraFile, RunSummary, summarize
from kohya_plan.trainlog.replay import replay_file
from kohya_plan.trainlog.tensorboard import read_scalars

if TYPE_CHECKING:
    from pathlib import Path

    from kohya_plan.plan import Plan
    from kohya_plan.trainlog.events import RunState


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
    machine_rank: int | None = None,
) -> RunSummary:
    """Collect files and TensorBoard scalars, write summary.json and manifest.json.

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
        processes=plan.launch.num_processes,
        machines=plan.launch.num_machines,
        machine_rank=machine_rank,
    )
    if link_final and summary.outcome == "succeeded" and not machine_rank:
        copy = epoch_copy(files, plan, summary.epochs_done)
        summary = replace(summary, final_copy=copy)
    run.write_json(rundir.MANIFEST, manifest(files, copy, summary.epochs_done))
    run.write_json(rundir.SUMMARY, summary.to_json())
    return summary


def summary_from_disk(run_dir: Path) -> RunSummary:
    """Rebuild a run's summary from train.log, the TensorBoard events and the files on disk."""
    run = rundir.RunDir(run_dir).require_made()
    if not run.log.is_file():
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
    rank = exit_info.get("machine_rank")
    return finish_summary(
        run.path,
        plan,
        replay_file(run.log),
        exit_status=status if isinstance(status, int) else None,
        wall_s=float(wall) if isinstance(wall, (int, float)) else None,
        stop_reason=reason if isinstance(reason, str) else None,
        escalation=escalation if isinstance(escalation, str) else None,
        started_at=float(started) if isinstance(started, (int, float)) else None,
        link_final=False,
        machine_rank=rank if isinstance(rank, int) else None,
    )
