"""Everything `report.html` shows, gathered from a run folder into a `ReportData`.

Reads the plan, command, dataset, train.log, TensorBoard scalars, sample images, LoRA files and
summary. Every part may be missing (a run that failed early, is still running, or never
logged): the data says so, the page shows it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.findings import Finding
from kohya_plan.loading import loads_toml
from kohya_plan.report.samples import EMBED_LIMIT, SampleImage, find_samples, read_prompts
from kohya_plan.rundir import RunDir
from kohya_plan.summary import RunSummary, summary_from_json
from kohya_plan.trainlog import events as ev
from kohya_plan.trainlog.splitter import strip_ansi

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kohya_plan.plan import Plan
    from kohya_plan.trainlog.events import RunState

REPORT_NAME = rundir.REPORT
LOG_TAIL_LINES = 40
_LOG_TAIL_BYTES = 64 * 1024

_GROUP_TAG = re.compile(r"lr/group\d+")
_STEP_FACTS = (
    (ev.TRAIN_IMAGES, "images × repeats"),
    (ev.REG_IMAGES, "regularization images"),
    (ev.BATCHES_PER_EPOCH, "batches per epoch"),
    (ev.EPOCHS, "epochs"),
    (ev.TOTAL_STEPS, "optimization steps"),
)
# The start-up numbers sd-scripts prints, by the check.json `steps` key that predicted them.
_PLANNED_STEPS = (
    (ev.TRAIN_IMAGES, "train_samples"),
    (ev.REG_IMAGES, "reg_samples"),
    (ev.BATCHES_PER_EPOCH, "batches_per_epoch"),
    (ev.EPOCHS, "epochs"),
    (ev.TOTAL_STEPS, "total_optimization_steps"),
)

# --- the data --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubsetRow:
    """One dataset subset as the report shows it."""

    folder: str
    repeats: int | None
    images: int | None
    captions: int | None
    is_reg: bool
    found_by_trainer: int | None = None  # images sd-scripts reported for this folder


@dataclass(frozen=True, slots=True)
class FileRow:
    """A LoRA file of the run."""

    name: str
    path: str
    bytes: int
    label: str  # "epoch 3", "step 500", "final"
    epoch: int | None = None
    step: int | None = None
    exists: bool = True
    note: str = ""


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, gathered from a run folder (see `gather`)."""

    run_dir: str
    output_name: str
    outcome: str  # succeeded, failed, stopped, incomplete, not launched
    generated_at: str
    plan_text: str | None = None
    plan_note: str | None = None
    advice: tuple[Finding, ...] = ()
    advice_note: str | None = None
    command: str | None = None
    command_cwd: str | None = None
    subsets: tuple[SubsetRow, ...] = ()
    # (what, kohya-plan's count, sd-scripts' count from train.log)
    dataset_facts: tuple[tuple[str, int | None, int | None], ...] = ()
    dataset_note: str | None = None
    log_present: bool = False
    loss_points: tuple[tuple[int, float], ...] = ()
    epoch_losses: Mapping[int, float] = field(default_factory=dict)
    scalars: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)
    tensorboard_note: str | None = None
    steps_per_epoch: int | None = None
    epochs_total: int | None = None
    prompts: tuple[str, ...] = ()
    samples: tuple[SampleImage, ...] = ()
    samples_note: str | None = None
    files: tuple[FileRow, ...] = ()
    epoch_files: Mapping[int, str] = field(default_factory=dict)
    summary: RunSummary | None = None
    summary_note: str | None = None
    log_tail: tuple[str, ...] = ()


# --- gathering (I/O) -------------------------------------------------------------------------


def _json(run: RunDir, name: str) -> dict[str, Any] | None:
    """A JSON record of the run, or None when it is missing or damaged (the page says so)."""
    try:
        return run.read_json(name, required=False)
    except rundir.RunDirError:
        return None


def _command(run: RunDir) -> tuple[str | None, str | None]:
    """command.sh's exec line (and its cd), else launch.json's argv."""
    text = run.read_text(rundir.COMMAND_SH)
    cwd = None
    if text is not None:
        for line in text.splitlines():
            if line.startswith("cd "):
                cwd = line[3:].strip()
            elif line.startswith("exec "):
                return line[5:].strip(), cwd
    launch = _json(run, rundir.LAUNCH)
    if launch is not None and isinstance(launch.get("argv"), list):
        argv = [str(a) for a in launch["argv"]]
        return shlex.join(argv), str(launch.get("cwd") or "") or None
    return None, None


def _file_rows(summary: RunSummary | None, manifest: Mapping[str, Any] | None) -> list[FileRow]:
    rows: list[FileRow] = []
    epochs = manifest.get("epochs") if manifest else None
    by_path = {str(p): int(e) for e, p in epochs.items()} if isinstance(epochs, dict) else {}
    copy = summary.final_copy if summary is not None else None
    if copy is None and manifest is not None and isinstance(manifest.get("final_copy"), str):
        copy = manifest["final_copy"]
    for item in summary.files if summary is not None else ():
        path = Path(item.path)
        exists = path.is_file()
        size = path.stat().st_size if exists else item.bytes
        if item.final:
            epoch = by_path.get(item.path) or (by_path.get(copy) if copy else None)
            label = "final" + (f" (epoch {epoch})" if epoch else "")
            rows.append(FileRow(path.name, item.path, size, label, epoch=epoch, exists=exists))
        elif item.epoch is not None:
            rows.append(
                FileRow(
                    path.name,
                    item.path,
                    size,
                    f"epoch {item.epoch}",
                    epoch=item.epoch,
                    exists=exists,
                )
            )
        elif item.step is not None:
            rows.append(
                FileRow(
                    path.name, item.path, size, f"step {item.step}", step=item.step, exists=exists
                )
            )
    if copy:
        path = Path(copy)
        exists = path.is_file()
        epoch = by_path.get(copy)
        rows.append(
            FileRow(
                path.name,
                copy,
                path.stat().st_size if exists else 0,
                f"epoch {epoch}" if epoch else "final copy",
                epoch=epoch,
                exists=exists,
                note="the final file under its epoch's name (T29)",
            )
        )
    rows.sort(key=lambda r: (r.epoch is None, r.epoch or 0, r.step or 0, r.label))
    return rows


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> tuple[str, ...]:
    """The last lines of train.log as a terminal would show them (last frame of each line)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ()
    text = data.decode("utf-8", errors="replace")
    out = []
    for line in text.split("\n")[1 if size > _LOG_TAIL_BYTES else 0 :]:
        frames = [f for f in strip_ansi(line).split("\r") if f.strip()]
        if frames:
            out.append(frames[-1].rstrip())
    return tuple(out[-lines:])


def _dataset(
    run: RunDir, state: RunState | None
) -> tuple[
    list[SubsetRow],
    list[tuple[str, int | None, int | None]],
    list[Finding],
    str | None,
    str | None,
]:
    """Subsets, step facts and advice as `check` recorded them in check.json when the run was
    made (else the subsets of dataset.toml), and notes on what is missing."""
    rows: list[SubsetRow] = []
    facts: list[tuple[str, int | None, int | None]] = []
    planned: dict[str, int] = {}
    advice: list[Finding] = []
    dataset_note = advice_note = None
    found = {f.path: f.images for f in state.image_folders} if state is not None else {}

    def trainer_count(folder: str) -> int | None:
        if folder in found:
            return found[folder]
        name = Path(folder).name
        matches = [n for p, n in found.items() if Path(p).name == name]
        return matches[0] if len(matches) == 1 else None

    record: dict[str, Any] | None = None
    try:
        record = run.read_json(rundir.CHECK, required=False)
    except rundir.RunDirError as exc:
        advice_note = str(exc)
    if record is None and advice_note is None:
        advice_note = f"the run folder has no {rundir.CHECK} (made by an older kohya-plan)"
    if record is not None:
        for severity in ("error", "advice"):
            items = record.get("errors" if severity == "error" else "advice")
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    advice.append(Finding.from_json(item, severity))
        dataset = record.get("dataset")
        subsets = dataset.get("subsets") if isinstance(dataset, dict) else None
        for item in subsets if isinstance(subsets, list) else []:
            if not isinstance(item, dict):
                continue
            path = str(item.get("dir", "?"))
            rows.append(
                SubsetRow(
                    folder=path,
                    repeats=_opt_int(item.get("repeats")),
                    images=_opt_int(item.get("images")),
                    captions=_opt_int(item.get("captions")),
                    is_reg=bool(item.get("is_reg", False)),
                    found_by_trainer=trainer_count(path),
                )
            )
        steps = record.get("steps")
        if isinstance(steps, dict):
            planned = {
                key: value
                for key, name in _PLANNED_STEPS
                if (value := _opt_int(steps.get(name))) is not None
            }
        dataset_note = "images and captions as `kohya-plan check` counted them at `make`"
    else:
        text = run.read_text(rundir.DATASET)
        try:
            config = loads_toml(text) if text is not None else {}
        except ValueError:
            config = {}
        for dataset in config.get("datasets", []):
            for subset in dataset.get("subsets", []):
                path = str(subset.get("image_dir", "?"))
                rows.append(
                    SubsetRow(
                        folder=path,
                        repeats=subset.get("num_repeats"),
                        images=None,
                        captions=None,
                        is_reg=bool(subset.get("is_reg", False)),
                        found_by_trainer=trainer_count(path),
                    )
                )
        dataset_note = (
            f"from {rundir.DATASET}: the run folder holds no record of the folders' scan"
            if rows
            else f"no {rundir.DATASET} in the run folder"
        )
    logged = state.startup if state is not None else {}
    for key, label in _STEP_FACTS:
        if key in planned or key in logged:
            facts.append((label, planned.get(key), logged.get(key)))
    return rows, facts, advice, dataset_note, advice_note


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _outcome(
    summary: RunSummary | None, exit_info: Mapping[str, Any] | None, state: RunState | None
) -> str:
    if state is None:
        return "not launched"
    if summary is not None and (exit_info is None or exit_info.get("finished", True)):
        return summary.outcome
    if state.cause is not None:
        return "failed"
    return "incomplete"


def gather(run_dir: Path, *, embed_limit: int = EMBED_LIMIT) -> ReportData:
    """Read everything the report shows from a run folder (missing parts are noted, not fatal)."""
    from kohya_plan.loading import load_plan
    from kohya_plan.outputs import lora_files
    from kohya_plan.summary import summarize
    from kohya_plan.trainlog.replay import replay_file
    from kohya_plan.trainlog.tensorboard import EVENTS_GLOB, read_scalars

    run = RunDir(run_dir)
    run_dir = run.path
    plan: Plan | None = None
    plan_note = None
    try:
        plan = load_plan(run.plan)
    except Exception as exc:
        plan_note = f"{rundir.PLAN} could not be loaded: {exc}"
    plan_text = run.read_text(rundir.PLAN)
    if plan_text is None:
        plan_note = f"the run folder has no {rundir.PLAN}"
    output_name = plan.output.name if plan is not None else run_dir.name
    command, cwd = _command(run)

    log = run.trainer_log()
    state: RunState | None = None
    if log.is_file():
        try:
            state = replay_file(log)
        except OSError:
            state = None
    exit_info = _json(run, rundir.EXIT)
    started = exit_info.get("started_at") if exit_info else None
    since = float(started) if isinstance(started, (int, float)) else None

    scalars: dict[str, list[tuple[int, float]]] = {}
    tb_note = None
    logs = run.logging_dir
    try:
        scalars = read_scalars(logs)
    except Exception as exc:  # a torn or foreign event file
        tb_note = f"the TensorBoard logs could not be read: {exc}"
    if not scalars and tb_note is None:
        tb_note = (
            "no TensorBoard logs (training.tensorboard is off, or the run stopped before "
            "training began)"
            if not logs.is_dir() or not any(logs.rglob(EVENTS_GLOB))
            else "the TensorBoard logs hold no scalars yet"
        )

    summary = None
    summary_note = None
    data = _json(run, rundir.SUMMARY)
    if data is not None:
        try:
            summary = summary_from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            summary_note = f"{rundir.SUMMARY} could not be read; rebuilt from {rundir.LOG}"
    if summary is None and state is not None and plan is not None:
        finished = bool(exit_info and exit_info.get("finished"))
        status = exit_info.get("exit_status") if exit_info else None
        wall = exit_info.get("wall_s") if exit_info else None
        reason = exit_info.get("stop_reason") if exit_info else None
        summary = summarize(
            state,
            exit_status=status if isinstance(status, int) else None,
            wall_s=float(wall) if isinstance(wall, (int, float)) else None,
            stop_reason=reason if isinstance(reason, str) else None,
            escalation=None,
            files=lora_files(plan.output.dir, plan.output.name, plan.output.save_model_as, since),
            tensorboard=scalars,
        )
        if summary_note is None:
            summary_note = (
                f"no {rundir.SUMMARY}: rebuilt from {rundir.LOG}"
                if finished
                else "the run has not finished (or kohya-plan was stopped before writing "
                f"{rundir.SUMMARY}): figures so far, from {rundir.LOG}"
            )
    manifest = _json(run, rundir.MANIFEST)
    epoch_files: dict[int, str] = {}
    if manifest is not None and isinstance(manifest.get("epochs"), dict):
        for key, value in manifest["epochs"].items():
            with contextlib.suppress(ValueError):
                epoch_files[int(key)] = Path(str(value)).name
    elif summary is not None:
        epoch_files = {f.epoch: Path(f.path).name for f in summary.files if f.epoch is not None}

    prompts: tuple[str, ...] = ()
    prompts_text = run.read_text(rundir.PROMPTS)
    if prompts_text is not None:
        prompts = read_prompts(prompts_text)
    elif plan is not None:
        prompts = tuple(plan.sampling.prompts)
    samples: list[SampleImage] = []
    samples_note = None
    if plan is not None:
        sample_dir = plan.output.dir / "sample"
        samples, samples_note = find_samples(
            sample_dir, plan.output.name, since, run_dir, embed_limit
        )
        if not samples and samples_note is None:
            if not plan.sampling.enabled:
                samples_note = (
                    "sampling was off for this run: set [sampling] prompts and every_n_epochs "
                    "to see the epochs' images here (T24)"
                )
            else:
                samples_note = f"no sample images in {sample_dir} yet"

    subsets, dataset_facts, advice, dataset_note, advice_note = _dataset(run, state)
    steps_per_epoch = None
    epochs_total = summary.epochs_total if summary is not None else None
    if epochs_total is None and plan is not None:
        epochs_total = plan.training.epochs
    total = summary.steps_total if summary is not None else None
    if total and epochs_total and total % epochs_total == 0:
        steps_per_epoch = total // epochs_total

    return ReportData(
        run_dir=str(run_dir),
        output_name=output_name,
        outcome=_outcome(summary, exit_info, state),
        generated_at=time.strftime("%Y-%m-%d %H:%M:%S"),
        plan_text=plan_text,
        plan_note=plan_note,
        advice=tuple(advice),
        advice_note=advice_note,
        command=command,
        command_cwd=cwd,
        subsets=tuple(subsets),
        dataset_facts=tuple(dataset_facts),
        dataset_note=dataset_note,
        log_present=state is not None,
        loss_points=tuple(state.loss_points) if state is not None else (),
        epoch_losses=dict(sorted(state.epoch_losses.items())) if state is not None else {},
        scalars=scalars,
        tensorboard_note=tb_note,
        steps_per_epoch=steps_per_epoch,
        epochs_total=epochs_total,
        prompts=prompts,
        samples=tuple(samples),
        samples_note=samples_note,
        files=tuple(_file_rows(summary, manifest)),
        epoch_files=epoch_files,
        summary=summary,
        summary_note=summary_note,
        log_tail=_log_tail(log) if state is not None else (),
    )
