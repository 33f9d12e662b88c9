"""The end-of-run summary: outcome, steps, loss trend, files per epoch, the cause of a failure.

Built from the parsed log (`RunState`), the process result and the files on disk; the loss per
epoch is also read from TensorBoard's `loss/epoch_average` when logging was on. `summarize` is
pure; `read_scalars` and `lora_files` are the I/O edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kohya_plan.trainlog.events import TOTAL_STEPS, Failure, RunState

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# What to do about each classified failure (shown under the cause).
ADVICE = {
    "cuda_oom": "the GPU ran out of memory: lower training.batch_size, set "
    "training.gradient_checkpointing = true, use mixed precision, or lower network.dim",
    "nan_loss": "the loss became NaN: lower the learning rates, check network.alpha "
    "(T12: at most the rank), and for SDXL keep the VAE in fp32 (launch.extra.no_half_vae)",
    "missing_model": "the base model was not found: check model.base (a file, a Diffusers "
    "folder or a Hub repo id) and your network or Hugging Face login",
    "argparse": "sd-scripts rejected an option: check launch.extra and the sd-scripts version "
    "(kohya-plan targets the pinned commit)",
    "dataset": "sd-scripts rejected the dataset: run `kohya-plan check` on the plan and fix "
    "what it reports",
    "precision": "fp16 does not work without a GPU (mixed fp16 fails at the first step, "
    'full_fp16 has no gradient scaler on the CPU): use training.mixed_precision = "bf16" '
    '(or "no" for SD1.5/SDXL), and full_bf16 instead of full_fp16',
    "optimizer_missing": "the optimizer's package is missing in sd-scripts' Python: install it "
    "there (bitsandbytes for *8bit, dadaptation for DAdapt*, prodigyopt for Prodigy, "
    "lion-pytorch for Lion)",
    "no_data": "sd-scripts found no images and exited without training: the dataset folder "
    "must be the PARENT of N_name folders (T3); run `kohya-plan check`",
    "missing_package": "the trainer's Python lacks a package sd-scripts needs (named above): "
    "run `kohya-plan setup` to install or repair sd-scripts and its Python (in a clone of "
    "kohya-plan: scripts/setup-sd-scripts), or set launch.python to an interpreter that has "
    "sd-scripts' requirements; `kohya-plan doctor` lists what is missing",
    "traceback": "sd-scripts stopped with an error: the log lines above show where (all of "
    "it is in train.log); `kohya-plan check` catches most plan mistakes before launch",
    "interrupted": "the run was stopped before the end; saved files are listed above",
    "stalled": "the trainer printed nothing for the stall timeout and was stopped: look at the "
    "end of train.log (a hung data loader, a deadlocked process, a full disk?)",
    "status_unknown": "kohya-plan could not learn how the trainer ended; see the end of "
    "train.log and kohya-plan.log",
    "rank_died": "one training process ended first and torchrun stopped the others: a killed "
    "process (SIGKILL) is most often the kernel's out-of-memory killer or a scheduler's limit — "
    "check the machine's memory (dmesg) and its other lines below; `kohya-plan launch` again "
    "once it is fixed",
    "peer_lost": "this process lost the connection to another process of the run, which ended "
    "first: the cause is in the log of the machine where that process ran",
    "rendezvous_timeout": "not every machine joined within launch.rdzv_timeout: start every "
    "machine (machine_rank 0 to num_machines-1) with the same main_process_ip and "
    "main_process_port, check that each can reach machine 0 on that port, or raise "
    "launch.rdzv_timeout",
    "port_in_use": "another program (or run) already listens on launch.main_process_port on "
    "machine 0: set another port, or wait for that run to end",
    "exit": "the trainer exited with an error status; see the end of train.log",
}


@dataclass(frozen=True, slots=True)
class LoraFile:
    """A LoRA file the run produced."""

    path: str
    bytes: int
    epoch: int | None = None
    step: int | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class LossSummary:
    """The loss as sd-scripts reports it (avr_loss: a moving average over one epoch)."""

    first: float | None
    last: float | None
    lowest: float | None
    lowest_step: int | None
    per_epoch_log: dict[int, float]
    per_epoch_tensorboard: dict[int, float]
    trend: str  # "falling", "flat", "rising" or "unknown"
    change: float | None  # relative change, first epoch to last (or first to last step)


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a run failed, the relevant log lines, and what to do."""

    kind: str
    message: str
    lines: tuple[str, ...]
    advice: str
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class Interruption:
    """What is known of a run whose kohya-plan stopped (died) before the trainer ended."""

    trainer_pid: int | None
    trainer_running: bool
    trainer_exit_status: int | None
    """As the guardian recorded it, when the trainer ended after kohya-plan was gone."""
    stopped_by_guardian: bool


@dataclass(frozen=True)
class RunSummary:
    """Everything `launch` prints at the end and writes to summary.json."""

    outcome: str  # "succeeded", "failed", "stopped", "running", "interrupted"
    exit_status: int | None
    trainer_exit_status: int | None
    steps_done: int
    steps_total: int | None
    epochs_done: int | None
    epochs_total: int | None
    wall_s: float | None
    seconds_per_step: float | None
    loss: LossSummary
    files: tuple[LoraFile, ...]
    final_copy: str | None
    stop_reason: str | None
    escalation: str | None
    cause: Cause | None
    warnings: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())
    """Facts about how the run went that are not problems (a resume, a detached display)."""
    trainer_running: bool | None = None
    """For a running or interrupted run: whether the trainer process runs now."""
    trainer_pid: int | None = None
    processes: int = 1
    machines: int = 1
    machine_rank: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (summary.json, `summary --json`)."""
        data = asdict(self)
        loss = data["loss"]
        for key in ("per_epoch_log", "per_epoch_tensorboard"):
            loss[key] = {str(k): v for k, v in loss[key].items()}
        return data


def format_clock(seconds: float | None) -> str:
    """Seconds as h:mm:ss or mm:ss ("?" when unknown)."""
    if seconds is None:
        return "?"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def loss_trend(values: Sequence[float]) -> tuple[str, float | None]:
    """Falling/flat/rising from the first to the last value (±2 % counts as flat)."""
    if len(values) < 2 or values[0] == 0:
        return "unknown", None
    change = (values[-1] - values[0]) / abs(values[0])
    if change <= -0.02:
        return "falling", change
    if change >= 0.02:
        return "rising", change
    return "flat", change


def loss_summary(state: RunState, tensorboard: Mapping[int, float]) -> LossSummary:
    """First/last/lowest avr_loss and the per-epoch values from the log and TensorBoard."""
    points = [(s, v) for s, v in state.loss_points if v == v]  # NaN is not a value to rank
    per_epoch = dict(sorted(state.epoch_losses.items()))
    series = list(tensorboard.values()) if len(tensorboard) >= 2 else list(per_epoch.values())
    if len(series) < 2:
        series = [v for _, v in points]
    trend, change = loss_trend(series)
    lowest = min(points, key=lambda p: p[1]) if points else None
    return LossSummary(
        first=points[0][1] if points else None,
        last=points[-1][1] if points else None,
        lowest=lowest[1] if lowest else None,
        lowest_step=lowest[0] if lowest else None,
        per_epoch_log=per_epoch,
        per_epoch_tensorboard=dict(sorted(tensorboard.items())),
        trend=trend,
        change=change,
    )


def interruption_cause(info: Interruption) -> Cause:
    """Why an interrupted run is not a result, and what to do about it."""
    if info.trainer_running:
        advice = (
            f"the trainer still runs (pid {info.trainer_pid}) without kohya-plan watching it: "
            "`kohya-plan stop` on this run folder stops it"
        )
    elif info.trainer_exit_status is not None:
        by = ""
        if info.stopped_by_guardian:
            by = "kohya-plan's guardian stopped it the graceful way; "
        advice = (
            f"the trainer is no longer running: {by}it ended with exit status "
            f"{info.trainer_exit_status}; what it saved is listed above "
            "(`kohya-plan launch PLAN --resume` continues from the newest saved state)"
        )
    else:
        advice = (
            "the trainer is no longer running, and its end was not recorded (a power loss or a "
            "reboot?); what it saved is listed above"
        )
    return Cause("kohya_plan_gone", "kohya-plan stopped before the trainer ended", (), advice)


def failure_cause(
    state: RunState,
    exit_status: int | None,
    stop_reason: str | None,
    *,
    machine_rank: int | None = None,
) -> Cause | None:
    """The classified cause of a failed or stopped run (None when it succeeded).

    A machine other than 0 of a multi-machine run never prints "model saved." (machine 0
    saves): for it a clean exit is a success.
    """
    if stop_reason == "stall":
        return Cause("stalled", "stopped: no output for the stall timeout", (), ADVICE["stalled"])
    if stop_reason is not None and stop_reason != "nan":
        # The trainer's own KeyboardInterrupt traceback is a consequence, not the cause.
        return Cause("interrupted", f"stopped ({stop_reason})", (), ADVICE["interrupted"])
    cause: Failure | None = state.cause
    if cause is not None:
        return Cause(
            cause.kind,
            cause.message,
            tuple(cause.detail_lines),
            ADVICE.get(cause.kind, ""),
            cause.rank,
        )
    if state.saw_no_data:
        return Cause("no_data", "No data found", (), ADVICE["no_data"])
    if exit_status is None:
        # Never "succeeded" without a recorded, successful exit status.
        return Cause(
            "status_unknown", "the trainer's exit status is unknown", (), ADVICE["status_unknown"]
        )
    if exit_status != 0:
        return Cause("exit", f"exit status {exit_status}", (), ADVICE["exit"])
    if exit_status == 0 and not state.saw_model_saved and not machine_rank:
        return Cause("exit", "the trainer exited without saving a model", (), ADVICE["exit"])
    return None


def distributed_notes(
    state: RunState, *, processes: int, machines: int, machine_rank: int | None
) -> tuple[str, ...]:
    """What a run of several processes does differently with its files (scale-lab §1-2)."""
    if processes < 2:
        return ()
    per_machine = max(1, processes // machines)
    if machine_rank:
        return (
            f"this is machine {machine_rank} of {machines} ({per_machine} process(es), ranks "
            f"{machine_rank * per_machine}-{(machine_rank + 1) * per_machine - 1}): the LoRA "
            "files, states, TensorBoard logs and rank 0's samples are written by machine 0",
        )
    where = f"{processes} processes" + (f" on {machines} machines" if machines > 1 else "")
    notes = [
        f"{where}: only rank 0 writes the LoRA files, the state folders and the TensorBoard "
        "logs (its losses are the ones shown)"
    ]
    if state.sample_steps:
        notes.append(
            f"sample images: the prompts are shared out among the {processes} processes "
            f"(prompt k by rank k mod {processes}), all into the same sample folder"
        )
    return tuple(notes)


def summarize(
    state: RunState,
    *,
    exit_status: int | None,
    wall_s: float | None,
    stop_reason: str | None,
    escalation: str | None,
    files: Sequence[LoraFile],
    tensorboard: Mapping[str, Sequence[tuple[int, float]]],
    final_copy: str | None = None,
    running: bool = False,
    interrupted: Interruption | None = None,
    processes: int = 1,
    machines: int = 1,
    machine_rank: int | None = None,
) -> RunSummary:
    """Fold what is known after (or during) a run into its summary (pure).

    `running`: kohya-plan supervises it now (progress so far); `interrupted`: kohya-plan
    stopped before the trainer ended. Otherwise the run ended under kohya-plan's eyes, and it
    succeeded only with a recorded exit status of 0 and a saved model (a machine other than 0
    of a run over several saves nothing: a clean exit is its success).
    """
    trainer_running: bool | None = None
    trainer_pid: int | None = None
    cause: Cause | None = None
    if running:
        outcome, trainer_running = "running", True
    elif interrupted is not None:
        cause, outcome = interruption_cause(interrupted), "interrupted"
        trainer_running, trainer_pid = interrupted.trainer_running, interrupted.trainer_pid
    else:
        cause = failure_cause(state, exit_status, stop_reason, machine_rank=machine_rank)
        if cause is None:
            outcome = "succeeded"
        elif cause.kind == "interrupted" or (stop_reason is not None and cause.kind != "nan_loss"):
            outcome = "stopped"
        else:
            outcome = "failed"
    epoch_tb = {int(s): v for s, v in tensorboard.get("loss/epoch_average", [])}
    progress = state.last_progress
    steps_done = state.step
    seconds_per_step = None
    if progress is not None and progress.step:
        seconds_per_step = progress.elapsed_s / progress.step
    return RunSummary(
        outcome=outcome,
        exit_status=exit_status,
        trainer_exit_status=state.child_returncode,
        steps_done=steps_done,
        steps_total=state.total if state.total is not None else state.startup.get(TOTAL_STEPS),
        epochs_done=_epochs_done(state, outcome),
        epochs_total=state.epochs,
        wall_s=wall_s,
        seconds_per_step=seconds_per_step,
        loss=loss_summary(state, epoch_tb),
        files=tuple(files),
        final_copy=final_copy,
        stop_reason=stop_reason,
        escalation=escalation,
        cause=cause,
        warnings=tuple(w.message for w in state.warnings if w.kind != "no_reg_images"),
        trainer_running=trainer_running,
        trainer_pid=trainer_pid,
        processes=processes,
        machines=machines,
        machine_rank=machine_rank,
        notes=distributed_notes(
            state, processes=processes, machines=machines, machine_rank=machine_rank
        ),
    )


def resume_note(state: str, *, by_step: bool) -> str:
    """What sd-scripts (48d368fa) does when it resumes from `state`: said in the summary."""
    if by_step:
        return (
            f"resumed from the step state {state}: sd-scripts skipped the batches it had "
            "trained and went on in the same epoch, but it counts steps from the start of that "
            "epoch (the steps of the whole epochs before it are left out), so step numbers in "
            "the log, TensorBoard and step-numbered file names are lower than the true ones"
        )
    return (
        f"resumed from the epoch state {state} (--initial_epoch: the next epoch): sd-scripts "
        "counts steps from the resume, so step numbers in the log, TensorBoard and "
        "step-numbered file names start again at 1"
    )


def _epochs_done(state: RunState, outcome: str) -> int | None:
    if state.epoch is None:
        return None
    if outcome == "succeeded":
        return state.epoch
    return max(state.epoch - 1, 0)


def summary_from_json(data: Mapping[str, Any]) -> RunSummary:
    """summary.json back into a RunSummary (KeyError/TypeError/ValueError if it is not one)."""
    loss = data["loss"]
    cause = data.get("cause")

    def opt_int(value: Any) -> int | None:
        return None if value is None else int(value)

    def opt_float(value: Any) -> float | None:
        return None if value is None else float(value)

    return RunSummary(
        outcome=str(data["outcome"]),
        exit_status=opt_int(data.get("exit_status")),
        trainer_exit_status=opt_int(data.get("trainer_exit_status")),
        steps_done=int(data.get("steps_done") or 0),
        steps_total=opt_int(data.get("steps_total")),
        epochs_done=opt_int(data.get("epochs_done")),
        epochs_total=opt_int(data.get("epochs_total")),
        wall_s=opt_float(data.get("wall_s")),
        seconds_per_step=opt_float(data.get("seconds_per_step")),
        loss=LossSummary(
            first=opt_float(loss.get("first")),
            last=opt_float(loss.get("last")),
            lowest=opt_float(loss.get("lowest")),
            lowest_step=opt_int(loss.get("lowest_step")),
            per_epoch_log={int(k): float(v) for k, v in loss["per_epoch_log"].items()},
            per_epoch_tensorboard={
                int(k): float(v) for k, v in loss["per_epoch_tensorboard"].items()
            },
            trend=str(loss.get("trend") or "unknown"),
            change=opt_float(loss.get("change")),
        ),
        files=tuple(
            LoraFile(
                path=str(f["path"]),
                bytes=int(f["bytes"]),
                epoch=opt_int(f.get("epoch")),
                step=opt_int(f.get("step")),
                final=bool(f.get("final")),
            )
            for f in data.get("files") or []
        ),
        final_copy=data.get("final_copy"),
        stop_reason=data.get("stop_reason"),
        escalation=data.get("escalation"),
        cause=None
        if not cause
        else Cause(
            kind=str(cause["kind"]),
            message=str(cause["message"]),
            lines=tuple(str(x) for x in cause.get("lines") or ()),
            advice=str(cause.get("advice") or ""),
            rank=opt_int(cause.get("rank")),
        ),
        warnings=tuple(str(w) for w in data.get("warnings") or ()),
        processes=int(data.get("processes") or 1),
        machines=int(data.get("machines") or 1),
        machine_rank=opt_int(data.get("machine_rank")),
        notes=tuple(str(n) for n in data.get("notes") or ()),
    )
