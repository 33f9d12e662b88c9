"""`report.html`: one self-contained page per run, to pick the best epoch by looking (T24, T30).

`gather` reads a run folder (plan, command, dataset, train.log, TensorBoard scalars, sample
images, LoRA files, summary) into a `ReportData`; `render_report` turns it into HTML (pure:
stdlib only, charts as inline SVG, images as base64 data URIs, no network resources);
`write_report` does both and writes `RUN_DIR/report.html` atomically. Every part may be
missing (a run that failed early, is still running, or never logged): the page says so.
"""

from __future__ import annotations

import base64
import contextlib
import html
import math
import os
import re
import shlex
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kohya_plan import events as ev
from kohya_plan.checkpoint import read_json_object
from kohya_plan.summary import Cause, LoraFile, LossSummary, RunSummary
from kohya_plan.summary import format_clock as clock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kohya_plan.events import RunState
    from kohya_plan.plan import Plan

__all__ = [
    "REPORT_NAME",
    "AdviceItem",
    "FileRow",
    "ReportData",
    "SampleImage",
    "SubsetRow",
    "gather",
    "render_report",
    "write_report",
]

REPORT_NAME = "report.html"
# Sample images are embedded up to this many bytes in all; above it they are linked beside the
# report instead (the page would get too heavy for a browser to open quickly).
EMBED_LIMIT = 256 * 2**20
# Polylines with more points than this are thinned (min/max per bucket keeps the shape).
MAX_DRAWN_POINTS = 1600
# Markers on line charts up to this many points.
MAX_MARKERS = 40
LOG_TAIL_LINES = 40
_LOG_TAIL_BYTES = 64 * 1024

_SAMPLE_REST = re.compile(
    r"(?:e(?P<epoch>\d{6,})|(?P<step>\d{6,}))_(?P<index>\d{2,})_(?P<stamp>\d{14})"
    r"(?:_(?P<seed>\d+))?\.png"
)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_GROUP_TAG = re.compile(r"lr/group\d+")
_STEP_FACTS = (
    (ev.TRAIN_IMAGES, "images × repeats"),
    (ev.REG_IMAGES, "regularization images"),
    (ev.BATCHES_PER_EPOCH, "batches per epoch"),
    (ev.EPOCHS, "epochs"),
    (ev.TOTAL_STEPS, "optimization steps"),
)
_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#64748b")


# --- the data --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleImage:
    """One sample image: where in the grid it goes, and its bytes (or a link beside the page)."""

    name: str
    prompt_index: int
    epoch: int | None  # epoch-end samples (0 = before training)
    step: int | None  # step samples
    stamp: str  # YYYYmmddHHMMSS from the file name
    seed: int | None
    data: bytes | None = None
    href: str | None = None
    width: int | None = None
    height: int | None = None


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
class AdviceItem:
    """A finding of `kohya-plan check` on the run's plan."""

    id: str
    severity: str
    field: str
    message: str
    fix: str
    ref: str
    waived: bool = False


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
    advice: tuple[AdviceItem, ...] = ()
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


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _command(run_dir: Path) -> tuple[str | None, str | None]:
    """command.sh's exec line (and its cd), else launch.json's argv."""
    text = _read_text(run_dir / "command.sh")
    cwd = None
    if text is not None:
        for line in text.splitlines():
            if line.startswith("cd "):
                cwd = line[3:].strip()
            elif line.startswith("exec "):
                return line[5:].strip(), cwd
    launch = read_json_object(run_dir / "launch.json")
    if launch is not None and isinstance(launch.get("argv"), list):
        argv = [str(a) for a in launch["argv"]]
        return shlex.join(argv), str(launch.get("cwd") or "") or None
    return None, None


def read_prompts(text: str) -> tuple[str, ...]:
    """The sample prompts as sd-scripts numbers them (blank and '#' lines skipped)."""
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _png_size(data: bytes) -> tuple[int | None, int | None]:
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None, None


def parse_sample_name(name: str, output_name: str) -> SampleImage | None:
    """`<name>_e000001_00_<YYYYmmddHHMMSS>[_<seed>].png` (or a step number instead of e…)."""
    prefix = f"{output_name}_" if output_name else ""
    if not name.startswith(prefix):
        return None
    match = _SAMPLE_REST.fullmatch(name[len(prefix) :])
    if match is None:
        return None
    epoch, step, seed = match.group("epoch"), match.group("step"), match.group("seed")
    return SampleImage(
        name=name,
        prompt_index=int(match.group("index")),
        epoch=int(epoch) if epoch is not None else None,
        step=int(step) if step is not None else None,
        stamp=match.group("stamp"),
        seed=int(seed) if seed is not None else None,
    )


def _href(target: Path, base: Path) -> str:
    try:
        rel = os.path.relpath(target, base)
    except ValueError:  # another drive (Windows)
        return target.absolute().as_uri()
    return quote(Path(rel).as_posix())


def find_samples(
    sample_dir: Path,
    output_name: str,
    since: float | None,
    report_dir: Path,
    embed_limit: int = EMBED_LIMIT,
) -> tuple[list[SampleImage], str | None]:
    """The run's sample images (newest per grid cell), embedded or linked; and a note."""
    if not sample_dir.is_dir():
        return [], None
    found: dict[tuple[int, int | None, int | None], tuple[SampleImage, Path, int]] = {}
    older = 0
    for path in sample_dir.iterdir():
        item = parse_sample_name(path.name, output_name)
        if item is None:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if since is not None and stat.st_mtime < since - 1:
            older += 1
            continue
        key = (item.prompt_index, item.epoch, item.step)
        if key in found:
            older += 1
            if found[key][0].stamp >= item.stamp:
                continue
        found[key] = (item, path, stat.st_size)
    total = sum(size for _, _, size in found.values())
    embed = total <= embed_limit
    samples = []
    for item, path, _ in found.values():
        if embed:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            width, height = _png_size(data)
            samples.append(_with(item, data=data, width=width, height=height))
        else:
            width = height = None
            with contextlib.suppress(OSError), path.open("rb") as handle:
                width, height = _png_size(handle.read(24))
            samples.append(_with(item, href=_href(path, report_dir), width=width, height=height))
    notes = []
    if older:
        notes.append(
            f"{older} older sample image(s) in {sample_dir} (from earlier runs into the same "
            "folder, or replaced) are not shown"
        )
    if not embed:
        notes.append(
            f"the images ({total / 2**20:.0f} MiB) are linked, not embedded: keep the report "
            "beside the output folder to see them"
        )
    return samples, "; ".join(notes) or None


def _with(item: SampleImage, **changes: Any) -> SampleImage:
    values = {name: getattr(item, name) for name in SampleImage.__slots__}
    values.update(changes)
    return SampleImage(**values)


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
        ),
        warnings=tuple(str(w) for w in data.get("warnings") or ()),
    )


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
        frames = [f for f in _ANSI.sub("", line).split("\r") if f.strip()]
        if frames:
            out.append(frames[-1].rstrip())
    return tuple(out[-lines:])


def _dataset(
    run_dir: Path, plan: Plan | None, state: RunState | None
) -> tuple[
    list[SubsetRow],
    list[tuple[str, int | None, int | None]],
    list[AdviceItem],
    str | None,
    str | None,
]:
    """Subsets (from `check`'s scan, else dataset.toml), step facts, advice, and notes."""
    rows: list[SubsetRow] = []
    facts: list[tuple[str, int | None, int | None]] = []
    planned: dict[str, int] = {}
    advice: list[AdviceItem] = []
    dataset_note = advice_note = None
    found = {f.path: f.images for f in state.image_folders} if state is not None else {}

    def trainer_count(folder: str) -> int | None:
        if folder in found:
            return found[folder]
        name = Path(folder).name
        matches = [n for p, n in found.items() if Path(p).name == name]
        return matches[0] if len(matches) == 1 else None

    report = None
    if plan is not None:
        from kohya_plan.planning import check_plan

        try:
            report = check_plan(run_dir / "plan.toml")
        except Exception as exc:  # the data moved, the plan no longer validates, ...
            advice_note = f"the plan could not be checked again: {exc}".strip()
    if report is not None:
        for finding in report.findings:
            advice.append(
                AdviceItem(
                    finding.id,
                    finding.severity,
                    finding.field,
                    finding.message,
                    finding.fix,
                    finding.ref,
                    finding.waived,
                )
            )
        for folder in report.facts.folders:
            path = str(folder.subset.image_dir)
            rows.append(
                SubsetRow(
                    folder=path,
                    repeats=folder.subset.repeats,
                    images=folder.images if folder.exists else None,
                    captions=folder.captions if folder.exists else None,
                    is_reg=folder.subset.is_reg,
                    found_by_trainer=trainer_count(path),
                )
            )
        steps = report.facts.steps
        if steps is not None:
            planned = {
                ev.TRAIN_IMAGES: steps.train_samples,
                ev.REG_IMAGES: steps.reg_samples,
                ev.BATCHES_PER_EPOCH: steps.batches_per_epoch,
                ev.EPOCHS: steps.epochs,
                ev.TOTAL_STEPS: steps.total_optimization_steps,
            }
        dataset_note = "images and captions counted now (kohya-plan check's scan of the folders)"
    else:
        text = _read_text(run_dir / "dataset.toml")
        try:
            config = tomllib.loads(text) if text is not None else {}
        except tomllib.TOMLDecodeError:
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
            "from dataset.toml; the folders could not be scanned"
            if rows
            else "no dataset.toml in the run folder"
        )
    logged = state.startup if state is not None else {}
    for key, label in _STEP_FACTS:
        if key in planned or key in logged:
            facts.append((label, planned.get(key), logged.get(key)))
    return rows, facts, advice, dataset_note, advice_note


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
    from kohya_plan.launching import replay_log
    from kohya_plan.loading import load_plan
    from kohya_plan.summary import lora_files, read_scalars, summarize

    run_dir = run_dir.expanduser().absolute()
    plan: Plan | None = None
    plan_note = None
    try:
        plan = load_plan(run_dir / "plan.toml")
    except Exception as exc:
        plan_note = f"plan.toml could not be loaded: {exc}"
    plan_text = _read_text(run_dir / "plan.toml")
    if plan_text is None:
        plan_note = "the run folder has no plan.toml"
    output_name = plan.output.name if plan is not None else run_dir.name
    command, cwd = _command(run_dir)

    log = run_dir / "train.log"
    state: RunState | None = None
    if log.is_file():
        try:
            state = replay_log(log)
        except OSError:
            state = None
    exit_info = read_json_object(run_dir / "exit.json")
    started = exit_info.get("started_at") if exit_info else None
    since = float(started) if isinstance(started, (int, float)) else None

    scalars: dict[str, list[tuple[int, float]]] = {}
    tb_note = None
    logs = run_dir / "logs"
    try:
        scalars = read_scalars(logs)
    except Exception as exc:  # a torn or foreign event file
        tb_note = f"the TensorBoard logs could not be read: {exc}"
    if not scalars and tb_note is None:
        tb_note = (
            "no TensorBoard logs (training.tensorboard is off, or the run stopped before "
            "training began)"
            if not logs.is_dir() or not any(logs.rglob("events.out.tfevents.*"))
            else "the TensorBoard logs hold no scalars yet"
        )

    summary = None
    summary_note = None
    data = read_json_object(run_dir / "summary.json")
    if data is not None:
        try:
            summary = summary_from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            summary_note = "summary.json could not be read; rebuilt from train.log"
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
                "no summary.json: rebuilt from train.log"
                if finished
                else "the run has not finished (or kohya-plan was stopped before writing "
                "summary.json): figures so far, from train.log"
            )
    manifest = read_json_object(run_dir / "manifest.json")
    epoch_files: dict[int, str] = {}
    if manifest is not None and isinstance(manifest.get("epochs"), dict):
        for key, value in manifest["epochs"].items():
            with contextlib.suppress(ValueError):
                epoch_files[int(key)] = Path(str(value)).name
    elif summary is not None:
        epoch_files = {f.epoch: Path(f.path).name for f in summary.files if f.epoch is not None}

    prompts: tuple[str, ...] = ()
    prompts_text = _read_text(run_dir / "prompts.txt")
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

    subsets, dataset_facts, advice, dataset_note, advice_note = _dataset(run_dir, plan, state)
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


def write_report(run_dir: Path, *, embed_limit: int = EMBED_LIMIT) -> Path:
    """Gather and render the run's report and write RUN_DIR/report.html atomically."""
    run_dir = run_dir.expanduser().absolute()
    text = render_report(gather(run_dir, embed_limit=embed_limit))
    target = run_dir / REPORT_NAME
    tmp = run_dir / f".{REPORT_NAME}.{os.getpid()}.tmp"
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        tmp.replace(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


# --- charts (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str
    width: float = 2.0
    dash: str | None = None
    opacity: float = 1.0
    markers: bool | None = None  # None: when few points
    labels: bool = False  # value labels above the markers


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[float, float, list[float]]:
    """A rounded axis range covering lo..hi and its ticks (steps of 1, 2, 2.5 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = round((end - start) / step)
    ticks = [start + i * step for i in range(n + 1)]
    return start, end, ticks


def _decimals(step: float) -> int:
    for digits in range(12):
        if abs(round(step, digits) - step) <= abs(step) * 1e-6:
            return digits
    return 12


def tick_label(value: float, step: float) -> str:
    """A tick's text, with just enough digits for the ticks' spacing."""
    if abs(value) < abs(step) * 1e-6:
        return "0"
    if abs(step) < 1e-3 or abs(value) >= 1e5:
        exponent = math.floor(math.log10(abs(value)))
        mantissa = value / 10**exponent
        digits = min(_decimals(step / 10**exponent), 6)
        text = f"{mantissa:.{digits}f}"
        if abs(float(text)) >= 10:  # 9.9999…e-5 is 1e-4
            exponent += 1
            text = f"{value / 10**exponent:.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return f"{text}e{exponent}"
    return f"{value:.{min(_decimals(step), 8)}f}"


def value_label(value: float) -> str:
    """A data value as the report prints it (4 significant digits)."""
    return f"{value:.4g}"


def thin(
    points: Sequence[tuple[float, float]], limit: int = MAX_DRAWN_POINTS
) -> list[tuple[float, float]]:
    """At most about `limit` points, keeping each bucket's first, lowest, highest and last."""
    if len(points) <= limit:
        return list(points)
    buckets = max(limit // 4, 1)
    size = len(points) / buckets
    out: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        keep = {0, len(chunk) - 1}
        keep.add(min(range(len(chunk)), key=lambda i: chunk[i][1]))
        keep.add(max(range(len(chunk)), key=lambda i: chunk[i][1]))
        out += [chunk[i] for i in sorted(keep)]
    return out


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    integer_x: bool = False,
    y_from_zero: bool = False,
    marks: Sequence[tuple[float, str]] = (),
    width: int = 960,
    height: int = 320,
) -> str:
    """An SVG line chart with axes, ticks, axis labels, a legend and optional value labels."""
    drawn = [(s, _finite(s.points)) for s in series]
    drawn = [(s, pts) for s, pts in drawn if pts]
    if not drawn:
        return ""
    xs = [x for _, pts in drawn for x, _ in pts]
    ys = [y for _, pts in drawn for _, y in pts]
    left, right, top, bottom = 78, 24, 44, 52
    pw, ph = width - left - right, height - top - bottom
    if integer_x:
        x_lo, x_hi = min(xs) - 0.5, max(xs) + 0.5
        span = max(xs) - min(xs)
        if span <= 24:
            x_ticks = [float(v) for v in range(int(min(xs)), int(max(xs)) + 1)]
        else:
            _, _, candidates = nice_ticks(min(xs), max(xs), 8)
            x_ticks = [t for t in candidates if min(xs) <= t <= max(xs) and t == int(t)]
        x_step = 1.0
    else:
        x_lo, x_hi = min(xs), max(xs)
        if x_hi == x_lo:
            x_lo, x_hi = x_lo - 1, x_hi + 1
        _, _, x_ticks = nice_ticks(x_lo, x_hi, 8)
        x_ticks = [t for t in x_ticks if x_lo - 1e-9 <= t <= x_hi + 1e-9]
        x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
        if x_step < 1 and all(x == int(x) for x in xs):  # steps: no ticks between them
            x_ticks = [float(v) for v in range(math.ceil(x_lo), math.floor(x_hi) + 1)]
            x_step = 1.0
    low = min(0.0, min(ys)) if y_from_zero else min(ys)
    y_lo, y_hi, y_ticks = nice_ticks(low, max(ys), 5)
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    has_labels = any(s.labels for s, _ in drawn)
    if has_labels:  # room above the highest point for its label
        y_hi += (y_hi - y_lo) * 0.12

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * ph

    out = [
        f'<svg class="chart" id="{_esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}" '
        f'data-title="{_esc(title)}">',
        f"<title>{_esc(title)}</title>",
        f'<rect class="plot" x="{left}" y="{top}" width="{pw}" height="{ph}"/>',
    ]
    for t in y_ticks:
        y = py(t)
        out.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_esc(tick_label(t, y_step))}</text>"
        )
    for t in x_ticks:
        x = px(t)
        text = str(int(t)) if integer_x or x_step >= 1 else tick_label(t, x_step)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}"/>'
            f'<text class="tick" x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">'
            f"{_esc(text)}</text>"
        )
    for x_value, text in marks:
        if x_lo < x_value < x_hi:
            x = px(x_value)
            out.append(
                f'<line class="mark" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}"/>'
                f'<text class="mark-label" x="{x - 3:.1f}" y="{top + 12}" text-anchor="end">'
                f"{_esc(text)}</text>"
            )
    out.append(
        f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>'
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>'
        f'<text class="axis-label" x="{left + pw / 2:.1f}" y="{height - 10}" '
        f'text-anchor="middle">{_esc(x_label)}</text>'
        f'<text class="axis-label" transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{_esc(y_label)}</text>'
    )
    for s, pts in drawn:
        shown = thin(pts)
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in shown)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<polyline class="series" data-series="{_esc(s.name)}" data-points="{len(pts)}" '
            f'data-drawn="{len(shown)}" fill="none" stroke="{s.color}" '
            f'stroke-width="{s.width}" stroke-opacity="{s.opacity}" stroke-linejoin="round"'
            f'{dash} points="{coords}"/>'
        )
        markers = s.markers if s.markers is not None else len(pts) <= MAX_MARKERS
        if markers:
            out.append(f'<g class="markers" data-series="{_esc(s.name)}">')
            for x, y in pts:
                label = value_label(y)
                xt = str(int(x)) if integer_x or x == int(x) else f"{x:g}"
                out.append(
                    f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" '
                    f'fill="{s.color}" data-x="{xt}" data-y="{y!r}">'
                    f"<title>{_esc(s.name)}: {x_label} {xt}: {label}</title></circle>"
                )
                if s.labels:
                    out.append(
                        f'<text class="value" x="{px(x):.1f}" y="{py(y) - 9:.1f}" '
                        f'text-anchor="middle" fill="{s.color}">{_esc(label)}</text>'
                    )
            out.append("</g>")
    # legend, left to right above the plot
    x = float(left)
    for s, _ in drawn:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<g class="legend"><line x1="{x:.0f}" y1="{top - 18}" x2="{x + 22:.0f}" '
            f'y2="{top - 18}" stroke="{s.color}" stroke-width="3"{dash}/>'
            f'<text x="{x + 28:.0f}" y="{top - 14}">{_esc(s.name)}</text></g>'
        )
        x += 44 + 7.0 * len(s.name)
    out.append("</svg>")
    return "".join(out)


# --- rendering (pure) ------------------------------------------------------------------------


def human_bytes(size: int) -> str:
    """1536 → '1.5 KiB' (binary units, as the summary prints sizes)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def _note(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{_esc(text)}</p>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def _stat(label: str, value: str, detail: str = "") -> str:
    extra = f'<div class="detail">{_esc(detail)}</div>' if detail else ""
    return (
        f'<div class="stat"><div class="label">{_esc(label)}</div>'
        f'<div class="value">{_esc(value)}</div>{extra}</div>'
    )


def _summary_section(data: ReportData) -> str:
    summary = data.summary
    parts = []
    if data.summary_note:
        parts.append(_note(data.summary_note))
    if summary is None:
        why = (
            "not available: the run was never launched (no train.log)"
            if not data.log_present
            else "not available"
        )
        parts.append(_note(f"Summary {why}.", "missing"))
        return _section("summary", "Summary", "".join(parts))
    total = summary.steps_total if summary.steps_total is not None else "?"
    epochs = f"{summary.epochs_done or 0} / {summary.epochs_total}" if summary.epochs_total else "—"
    speed = f"{summary.seconds_per_step:.2f} s/step" if summary.seconds_per_step is not None else ""
    loss = summary.loss
    stats = [
        _stat("steps", f"{summary.steps_done} / {total}"),
        _stat("epochs", epochs),
        _stat("wall time", clock(summary.wall_s), speed),
    ]
    if loss.first is not None:
        change = "" if loss.change is None else f" ({loss.change * 100:+.1f} %)"
        stats.append(_stat("loss trend", f"{loss.trend}{change}", "first epoch → last epoch"))
        stats.append(
            _stat(
                "avr_loss",
                f"{value_label(loss.last or 0)}",
                f"first {value_label(loss.first)}, lowest "
                f"{value_label(loss.lowest or 0)} at step {loss.lowest_step}",
            )
        )
    parts.append(f'<div class="stats">{"".join(stats)}</div>')
    if loss.first is not None:
        parts.append(
            _note(
                "Loss alone says little about quality: compare the epochs' sample images "
                "and pick the epoch that looks best (T24, T30)."
            )
        )
    if summary.warnings:
        items = "".join(f"<li>{_esc(w)}</li>" for w in summary.warnings[:10])
        parts.append(f'<div class="warnings"><h3>Warnings</h3><ul>{items}</ul></div>')
    cause = summary.cause
    if cause is not None and summary.outcome != "succeeded":
        lines = ""
        if cause.lines:
            lines = f'<pre class="log">{_esc(chr(10).join(cause.lines[-12:]))}</pre>'
        advice = f'<p class="advice"><b>What to do:</b> {_esc(cause.advice)}</p>'
        tail = (
            '<p class="note"><a href="#log">the end of train.log</a></p>' if data.log_tail else ""
        )
        parts.append(
            f'<div class="cause" id="cause"><h3>Cause: {_esc(cause.kind)}</h3>'
            f"<p>{_esc(cause.message)}</p>{lines}{advice if cause.advice else ''}"
            f"{tail}</div>"
        )
    if summary.stop_reason:
        ended = f"; the trainer ended {summary.escalation}" if summary.escalation else ""
        parts.append(_note(f"Stopped by {summary.stop_reason}{ended}."))
    return _section("summary", "Summary", "".join(parts))


def _row_key(item: SampleImage) -> tuple[int, int]:
    if item.epoch is not None:
        return (0, item.epoch)
    return (1, item.step or 0)


def _prompt_header(index: int, prompts: Sequence[str]) -> str:
    if index >= len(prompts):
        return f'<th class="prompt" scope="col">prompt {index + 1}</th>'
    text = prompts[index]
    main, _, options = text.partition(" --")
    opts = f'<div class="opts">--{_esc(options)}</div>' if options else ""
    return (
        f'<th class="prompt" scope="col" data-prompt="{index}" title="{_esc(text)}">'
        f'<div class="num">prompt {index + 1}</div><div class="text">{_esc(main)}</div>'
        f"{opts}</th>"
    )


def _img_src(item: SampleImage) -> str:
    if item.data is not None:
        return "data:image/png;base64," + base64.b64encode(item.data).decode("ascii")
    return item.href or ""


def _samples_section(data: ReportData) -> str:
    parts = []
    if data.samples_note:
        parts.append(_note(data.samples_note, "missing" if not data.samples else "note"))
    if not data.samples:
        if not data.samples_note:
            parts.append(_note("No sample images.", "missing"))
        return _section("samples", "Sample images", "".join(parts))
    columns = max(
        max(s.prompt_index for s in data.samples) + 1, len(data.prompts) if data.prompts else 0
    )
    rows: dict[tuple[int, int], dict[int, SampleImage]] = {}
    for item in data.samples:
        rows.setdefault(_row_key(item), {})[item.prompt_index] = item
    losses = _epoch_loss_map(data)
    head = "".join(_prompt_header(i, data.prompts) for i in range(columns))
    body = []
    for (kind, number), cells in sorted(rows.items()):
        if kind == 0:
            title = "before training" if number == 0 else f"epoch {number}"
            info = []
            if number in losses:
                info.append(f"loss {value_label(losses[number])}")
            if number in data.epoch_files:
                info.append(data.epoch_files[number])
            attrs = f'data-epoch="{number}"'
        else:
            title = f"step {number}"
            info = []
            if data.steps_per_epoch:
                info.append(f"epoch {math.ceil(number / data.steps_per_epoch) or 0}")
            attrs = f'data-step="{number}"'
        detail = "".join(f'<div class="detail">{_esc(i)}</div>' for i in info)
        row = [f'<tr {attrs}><th class="row" scope="row"><div>{_esc(title)}</div>{detail}</th>']
        for index in range(columns):
            shown = cells.get(index)
            if shown is None:
                row.append('<td class="empty">—</td>')
                continue
            size = f"{shown.width}×{shown.height}, " if shown.width else ""
            tip = f"{title}, prompt {index + 1}: {size}{shown.name}"
            row.append(
                f'<td data-prompt="{index}"><img class="sample" src="{_img_src(shown)}" '
                f'alt="{_esc(tip)}" title="{_esc(tip)}" data-name="{_esc(shown.name)}" '
                f'data-prompt="{index}"></td>'
            )
        row.append("</tr>")
        body.append("".join(row))
    controls = (
        '<div class="controls"><label>image size <input type="range" id="thumb" min="96" '
        'max="512" step="16" value="224"></label> <span class="hint">click an image to see '
        "it at full size</span></div>"
    )
    parts.append(
        f'{controls}<div class="grid-wrap"><table class="samples"><thead><tr>'
        f'<th class="corner"></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )
    return _section("samples", "Sample images", "".join(parts))


def _epoch_loss_map(data: ReportData) -> dict[int, float]:
    tb = {int(x): y for x, y in data.scalars.get("loss/epoch_average", ())}
    return tb or dict(data.epoch_losses)


def _loss_section(data: ReportData) -> str:
    parts = []
    if data.tensorboard_note:
        parts.append(_note(data.tensorboard_note, "missing"))
    if not data.log_present:
        parts.append(_note("No train.log: the run was never launched.", "missing"))
    sc = data.scalars
    series = []
    if sc.get("loss/current"):
        series.append(
            Series("loss/current (TensorBoard)", sc["loss/current"], "#93c5fd", 1.2, markers=False)
        )
    if sc.get("loss/average"):
        series.append(Series("loss/average (TensorBoard)", sc["loss/average"], _PALETTE[0], 2.4))
    if data.loss_points:
        series.append(
            Series("avr_loss (train.log)", data.loss_points, _PALETTE[3], 1.6, dash="6 4")
        )
    if sc.get("loss/validation/step_average"):
        series.append(
            Series("validation loss", sc["loss/validation/step_average"], _PALETTE[4], 2.0)
        )
    marks = []
    if data.steps_per_epoch and data.epochs_total and data.epochs_total <= 40:
        marks = [(float(e * data.steps_per_epoch), f"e{e}") for e in range(1, data.epochs_total)]
    chart = line_chart(
        "chart-loss-step",
        "Loss per step",
        series,
        x_label="step",
        y_label="loss",
        marks=marks,
    )
    parts.append("<h3>Per step</h3>")
    parts.append(
        f"<figure>{chart}</figure>" if chart else _note("Loss per step: not available.", "missing")
    )
    epoch_series = []
    tb = sc.get("loss/epoch_average") or ()
    if tb:
        epoch_series.append(
            Series(
                "loss/epoch_average (TensorBoard)", tb, _PALETTE[0], 2.4, markers=True, labels=True
            )
        )
    if data.epoch_losses:
        epoch_series.append(
            Series(
                "avr_loss at epoch end (train.log)",
                sorted(data.epoch_losses.items()),
                _PALETTE[3],
                1.6,
                dash="6 4",
                markers=True,
                labels=not tb,
            )
        )
    if sc.get("loss/validation/epoch_average"):
        epoch_series.append(
            Series(
                "validation loss",
                sc["loss/validation/epoch_average"],
                _PALETTE[4],
                2.0,
                markers=True,
            )
        )
    chart = line_chart(
        "chart-loss-epoch",
        "Loss per epoch",
        epoch_series,
        x_label="epoch",
        y_label="loss",
        integer_x=True,
        height=300,
    )
    parts.append("<h3>Per epoch</h3>")
    parts.append(
        f"<figure>{chart}</figure>"
        if chart
        else _note("Loss per epoch: not available (no epoch finished).", "missing")
    )
    parts.append(_epoch_table(data))
    return _section("loss", "Loss", "".join(parts))


def _epoch_table(data: ReportData) -> str:
    tb = {int(x): y for x, y in data.scalars.get("loss/epoch_average", ())}
    log = dict(data.epoch_losses)
    epochs = sorted(set(tb) | set(log) | set(data.epoch_files))
    if not epochs:
        return ""
    sizes = {f.epoch: f for f in data.files if f.epoch is not None}
    rows = []
    for epoch in epochs:
        file = sizes.get(epoch)
        rows.append(
            f'<tr data-epoch="{epoch}"><td class="num">{epoch}</td>'
            f'<td class="num">{_esc(value_label(tb[epoch])) if epoch in tb else "—"}</td>'
            f'<td class="num">{_esc(value_label(log[epoch])) if epoch in log else "—"}</td>'
            f"<td>{_esc(data.epoch_files.get(epoch, '—'))}</td>"
            f'<td class="num">{_esc(human_bytes(file.bytes)) if file else "—"}</td></tr>'
        )
    return (
        '<table class="data epochs"><thead><tr><th>epoch</th>'
        "<th>loss/epoch_average (TensorBoard)</th><th>avr_loss (train.log)</th>"
        f"<th>LoRA file</th><th>size</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _lr_section(data: ReportData) -> str:
    sc = data.scalars
    tags = [t for t in sc if t.startswith("lr/") and not t.startswith("lr/d*lr")]
    named = [t for t in tags if not _GROUP_TAG.fullmatch(t)]
    tags = named or tags
    dlr = [t for t in sc if t.startswith("lr/d*lr")]
    named_d = [t for t in dlr if not re.fullmatch(r"lr/d\*lr/group\d+", t)]
    dlr = named_d or dlr
    parts = []
    colors = iter(_PALETTE * 3)
    chart = line_chart(
        "chart-lr",
        "Learning rate",
        [Series(t, sc[t], next(colors), 2.0) for t in sorted(tags)],
        x_label="step",
        y_label="learning rate" if not dlr else "lr (multiplier for D-Adaptation/Prodigy)",
        y_from_zero=True,
    )
    parts.append(
        f"<figure>{chart}</figure>"
        if chart
        else _note(
            "Learning rate: not available"
            + (" (no TensorBoard logs)." if not sc else " (no lr/ tags)."),
            "missing",
        )
    )
    if dlr:
        colors = iter(_PALETTE * 3)
        chart = line_chart(
            "chart-dlr",
            "Effective learning rate (d·lr)",
            [Series(t, sc[t], next(colors), 2.0) for t in sorted(dlr)],
            x_label="step",
            y_label="d × lr",
            y_from_zero=True,
        )
        parts.append(f"<h3>Effective learning rate (d·lr)</h3><figure>{chart}</figure>")
    return _section("lr", "Learning rate", "".join(parts))


def _files_section(data: ReportData) -> str:
    if not data.files:
        text = (
            "No LoRA file was saved."
            if data.summary is not None
            else "LoRA files: not available (no summary yet)."
        )
        return _section("files", "LoRA files", _note(text, "missing"))
    rows = []
    for f in data.files:
        missing = "" if f.exists else ' <span class="bad">(missing now)</span>'
        note = f'<div class="detail">{_esc(f.note)}</div>' if f.note else ""
        rows.append(
            f'<tr data-epoch="{"" if f.epoch is None else f.epoch}"><td>{_esc(f.label)}</td>'
            f'<td><span class="path" title="{_esc(f.path)}">{_esc(f.name)}</span>{missing}'
            f'{note}</td><td class="num">{_esc(human_bytes(f.bytes))}</td>'
            f'<td class="num">{f.bytes:,} bytes</td></tr>'
        )
    folder = str(Path(data.files[0].path).parent)
    return _section(
        "files",
        "LoRA files",
        f'<p class="note">in {_esc(folder)}</p><table class="data"><thead><tr><th>what</th>'
        f"<th>file</th><th>size</th><th>bytes</th></tr></thead><tbody>{''.join(rows)}"
        "</tbody></table>",
    )


def _cell(value: int | None) -> str:
    return "?" if value is None else str(value)


def _dataset_section(data: ReportData) -> str:
    parts = []
    if data.dataset_note:
        parts.append(_note(data.dataset_note))
    if data.subsets:
        rows = []
        for s in data.subsets:
            kind = "regularization" if s.is_reg else "training"
            rows.append(
                f'<tr><td class="path">{_esc(s.folder)}</td><td>{kind}</td>'
                f'<td class="num">{_cell(s.repeats)}</td><td class="num">{_cell(s.images)}</td>'
                f'<td class="num">{_cell(s.captions)}</td>'
                f'<td class="num">{_cell(s.found_by_trainer)}</td></tr>'
            )
        parts.append(
            '<table class="data"><thead><tr><th>folder</th><th>kind</th><th>repeats</th>'
            "<th>images</th><th>captions</th><th>images sd-scripts found</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        parts.append(_note("Dataset: not available.", "missing"))
    if data.dataset_facts:
        rows = []
        for label, planned, logged in data.dataset_facts:
            differs = planned is not None and logged is not None and planned != logged
            cls = ' class="bad"' if differs else ""
            rows.append(
                f"<tr{cls}><th>{_esc(label)}</th><td class='num'>{_cell(planned)}</td>"
                f"<td class='num'>{_cell(logged)}</td></tr>"
            )
        parts.append(
            '<h3>Steps</h3><table class="data facts"><thead><tr><th></th>'
            "<th>kohya-plan (check)</th><th>sd-scripts (train.log)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return _section("dataset", "Dataset", "".join(parts))


def _plan_section(data: ReportData) -> str:
    parts = []
    if data.command:
        cwd = f'<p class="note">run from {_esc(data.command_cwd)}</p>' if data.command_cwd else ""
        parts.append(f'<h3>Command</h3>{cwd}<pre class="command">{_esc(data.command)}</pre>')
    else:
        parts.append(_note("Command: not available (no command.sh or launch.json).", "missing"))
    if data.advice_note:
        parts.append(_note(data.advice_note, "missing"))
    if data.advice:
        items = []
        for a in data.advice:
            waived = " (waived)" if a.waived else ""
            where = f"<code>{_esc(a.field)}</code>: " if a.field else ""
            fix = f" — {_esc(a.fix)}" if a.fix else ""
            items.append(
                f'<li class="{_esc(a.severity)}"><span class="rule">{_esc(a.id)}'
                f"{_esc(waived)}</span> {where}{_esc(a.message)}{fix}</li>"
            )
        parts.append(f'<h3>Advice (kohya-plan check)</h3><ul class="advice">{"".join(items)}</ul>')
    elif data.advice_note is None and data.plan_text is not None:
        parts.append(_note("kohya-plan check has no advice for this plan."))
    if data.plan_note:
        parts.append(_note(data.plan_note, "missing"))
    if data.plan_text is not None:
        parts.append(
            "<details><summary>plan.toml (the validated plan)</summary>"
            f'<pre class="plan">{_esc(data.plan_text)}</pre></details>'
        )
    return _section("plan", "Plan and command", "".join(parts))


def _log_section(data: ReportData) -> str:
    if not data.log_tail:
        return ""
    open_ = " open" if data.outcome not in ("succeeded",) else ""
    return _section(
        "log",
        "End of train.log",
        f"<details{open_}><summary>last {len(data.log_tail)} lines</summary>"
        f'<pre class="log">{_esc(chr(10).join(data.log_tail))}</pre></details>',
    )


_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--thumb:224px;
--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
color:var(--fg);background:var(--bg)}
header{background:#0f172a;color:#f8fafc;padding:20px 32px 14px}
header h1{margin:0;font-size:24px;font-weight:650;display:flex;gap:14px;align-items:center;
flex-wrap:wrap}
header .sub{color:#cbd5e1;font-size:13px;margin-top:4px;word-break:break-all}
nav{margin-top:12px;display:flex;gap:16px;flex-wrap:wrap;font-size:14px}
nav a{color:#93c5fd;text-decoration:none}nav a:hover{text-decoration:underline}
.badge{font-size:13px;font-weight:700;padding:3px 10px;border-radius:999px;
text-transform:uppercase;letter-spacing:.04em}
.badge.succeeded{background:#16a34a;color:#fff}.badge.failed{background:#dc2626;color:#fff}
.badge.stopped{background:#d97706;color:#fff}.badge.incomplete,.badge.not-launched{
background:#64748b;color:#fff}
main{padding:8px 32px 48px;max-width:1800px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 22px 20px;margin:18px 0;box-shadow:0 1px 2px rgba(0,0,0,.04)}
h2{margin:0 0 10px;font-size:19px}h3{margin:16px 0 8px;font-size:15px;color:#374151}
.note{color:var(--muted);font-size:13.5px;margin:6px 0}
.missing{color:#92400e;background:#fffbeb;border:1px solid #fde68a;border-radius:6px;
padding:8px 12px;font-size:14px;margin:8px 0}
.stats{display:flex;gap:12px;flex-wrap:wrap;margin:6px 0 10px}
.stat{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:150px;
background:#f9fafb}
.stat .label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.stat .value{font-size:20px;font-weight:650}.stat .detail{font-size:12.5px;color:var(--muted)}
.cause{border:1px solid #fecaca;background:#fef2f2;border-radius:8px;padding:4px 16px 10px;
margin-top:12px}.cause h3{color:#b91c1c}
.warnings{border:1px solid #fde68a;background:#fffbeb;border-radius:8px;padding:2px 16px;
margin-top:10px}
pre{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;overflow:auto;
font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;max-height:520px}
pre.command,pre.log{white-space:pre-wrap;word-break:break-all}
figure{margin:4px 0 8px}
svg.chart{width:100%;max-width:1100px;height:auto;display:block;
font-family:system-ui,sans-serif}
svg.chart .plot{fill:#fff;stroke:none}svg.chart .grid{stroke:#eef0f3}
svg.chart .axis{stroke:#9ca3af}svg.chart .tick{font-size:12px;fill:#4b5563}
svg.chart .axis-label{font-size:13px;fill:#374151;font-weight:600}
svg.chart .legend text{font-size:12.5px;fill:#374151}
svg.chart .value{font-size:11.5px;font-weight:600}
svg.chart .mark{stroke:#cbd5e1;stroke-dasharray:3 4}
svg.chart .mark-label{font-size:10.5px;fill:#94a3b8}
table.data{border-collapse:collapse;font-size:14px;margin:8px 0}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:6px 12px;
text-align:left;vertical-align:top}
table.data th{font-size:12.5px;color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.path,span.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;
word-break:break-all}
table.facts{border-collapse:collapse;font-size:13.5px;margin-top:8px}
table.facts th{text-align:left;font-weight:500;color:var(--muted);padding:2px 16px 2px 0}
.detail{font-size:12px;color:var(--muted);font-weight:400}
.bad{color:#b91c1c}
.controls{margin:4px 0 10px;font-size:13.5px;color:var(--muted)}
.controls input{vertical-align:middle}
.grid-wrap{overflow-x:auto}
table.samples{border-collapse:separate;border-spacing:6px}
table.samples th.prompt{width:var(--thumb);min-width:var(--thumb);max-width:var(--thumb);
vertical-align:bottom;text-align:left;font-weight:500;font-size:13px;padding:4px}
th.prompt .num{font-size:11px;text-transform:uppercase;color:var(--muted);letter-spacing:.04em}
th.prompt .text{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;
overflow:hidden}
th.prompt .opts{font-size:11px;color:var(--muted);overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
table.samples th.row{text-align:right;vertical-align:middle;padding-right:8px;
white-space:nowrap;font-size:14px;position:sticky;left:0;background:var(--card);z-index:1}
table.samples td{padding:0;vertical-align:top}
table.samples td.empty{width:var(--thumb);height:var(--thumb);text-align:center;
vertical-align:middle;color:#9ca3af;background:#f3f4f6;border-radius:6px}
img.sample{width:var(--thumb);height:auto;display:block;border-radius:6px;cursor:zoom-in;
background:#f3f4f6;image-rendering:auto}
img.sample:hover{outline:3px solid var(--accent)}
ul.advice{padding-left:20px}ul.advice li{margin:4px 0}
ul.advice .rule{font-family:ui-monospace,Menlo,monospace;font-size:12px;background:#eef2ff;
color:#3730a3;border-radius:4px;padding:1px 6px}
ul.advice li.error .rule{background:#fee2e2;color:#991b1b}
details summary{cursor:pointer;color:var(--accent);margin:6px 0}
main a{color:var(--accent)}
#lightbox{position:fixed;inset:0;background:rgba(15,23,42,.88);display:none;
align-items:center;justify-content:center;flex-direction:column;z-index:10;cursor:zoom-out}
#lightbox.open{display:flex}#lightbox img{max-width:94vw;max-height:86vh;
image-rendering:auto;border-radius:6px}
#lightbox div{color:#e2e8f0;margin-top:10px;font-size:14px}
footer{color:var(--muted);font-size:12px;padding:0 32px 24px}
"""

_SCRIPT = """
(function(){
function mark(){var n=0,imgs=document.querySelectorAll('img');
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)n++;}
document.body.setAttribute('data-images-loaded',String(n));
document.body.setAttribute('data-images',String(imgs.length));
document.body.setAttribute('data-charts',String(document.querySelectorAll('svg.chart').length));}
window.addEventListener('load',mark);
var r=document.getElementById('thumb');
if(r){r.addEventListener('input',function(){
document.documentElement.style.setProperty('--thumb',r.value+'px');});}
var box=null;
document.addEventListener('click',function(e){var t=e.target;
if(t&&t.classList&&t.classList.contains('sample')){
if(!box){box=document.createElement('div');box.id='lightbox';
box.innerHTML='<span></span><div></div>';document.body.appendChild(box);
box.addEventListener('click',function(){box.className='';});}
var big=new Image();big.src=t.src;box.replaceChild(big,box.firstChild);
box.lastChild.textContent=t.title;box.className='open';}});
document.addEventListener('keydown',function(e){if(e.key==='Escape'&&box)box.className='';});
})();
"""


def render_report(data: ReportData) -> str:
    """The whole page (pure): everything inline, no network resources."""
    outcome = data.outcome
    badge = outcome.replace(" ", "-")
    title = f"{data.output_name} — {outcome}"
    sections: list[Callable[[ReportData], str]] = [
        _summary_section,
        _samples_section,
        _loss_section,
        _lr_section,
        _files_section,
        _dataset_section,
        _plan_section,
        _log_section,
    ]
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("summary", "Summary"),
            ("samples", "Samples"),
            ("loss", "Loss"),
            ("lr", "Learning rate"),
            ("files", "LoRA files"),
            ("dataset", "Dataset"),
            ("plan", "Plan"),
        )
    )
    if data.summary is not None and data.summary.cause is not None and outcome != "succeeded":
        nav = '<a href="#cause">Cause</a>' + nav
    if outcome not in ("succeeded", "not launched"):  # what went wrong comes first
        sections.remove(_log_section)
        sections.insert(1, _log_section)
    body = "".join(render(data) for render in sections)
    csp = (
        "default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n"
        f'<body data-outcome="{_esc(outcome)}"><header><h1>{_esc(data.output_name)} '
        f'<span class="badge {_esc(badge)}">{_esc(outcome)}</span></h1>'
        f'<div class="sub">run folder {_esc(data.run_dir)}</div><nav>{nav}</nav></header>\n'
        f"<main>{body}</main>\n"
        f"<footer>made by kohya-plan on {_esc(data.generated_at)}</footer>\n"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
