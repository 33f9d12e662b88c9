"""Everything the user sees in the terminal (the only module that imports rich)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kohya_plan.summary import format_clock as _clock

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from rich.status import Status

    from kohya_plan.checks import Finding
    from kohya_plan.errors import Problem
    from kohya_plan.events import Event, Progress, RunState
    from kohya_plan.launching import LrFindResult
    from kohya_plan.planning import CheckReport
    from kohya_plan.setup.doctor import Diagnosis
    from kohya_plan.setup.install import SetupReport, StepOutcome
    from kohya_plan.setup.selftest import SelftestResult
    from kohya_plan.summary import RunSummary

_out = Console(highlight=False, markup=False, emoji=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def error(message: str) -> None:
    """One error line on stderr."""
    _err.print(Text("error: ", style="bold red") + Text(message))


def problems(items: Sequence[Problem], title: str = "The plan has problems") -> None:
    """Every problem, one per line, on stderr."""
    _err.print(Text(f"{title} ({len(items)}):", style="bold red"))
    for item in items:
        _err.print(Text("  ✗ ", style="red") + Text(str(item)))


def plain(text: str = "") -> None:
    """A line on stdout, printed as is."""
    _out.print(Text(text))


def raw(text: str) -> None:
    """Text written to stdout byte for byte (JSON, rendered files)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _finding_line(finding: Finding) -> Text:
    if finding.waived:
        mark, style = "~ ", "dim"
    elif finding.severity == "error":
        mark, style = "✗ ", "red"
    else:
        mark, style = "! ", "yellow"
    line = Text("  " + mark, style=style) + Text(str(finding))
    line.append(f"  [{finding.id}, {finding.ref}]", style="dim")
    if finding.waived:
        line.append("  (waived)", style="dim")
    return line


def findings(items: Iterable[Finding]) -> None:
    """Errors first, then advice, then waived findings."""
    items = list(items)
    errors = [f for f in items if f.severity == "error" and not f.waived]
    advice = [f for f in items if f.severity == "advice" and not f.waived]
    waived = [f for f in items if f.waived]
    for title, group, style in (
        ("Errors", errors, "bold red"),
        ("Advice", advice, "bold yellow"),
        ("Waived", waived, "dim"),
    ):
        if group:
            _out.print(Text(f"{title} ({len(group)}):", style=style))
            for finding in group:
                _out.print(_finding_line(finding))


def check_report(report: CheckReport) -> None:
    """The full `check` output: dataset table, steps, file size, findings, verdict."""
    plan, facts = report.plan, report.facts
    if facts.folders:
        table = Table(title="Dataset", title_justify="left", show_edge=False, pad_edge=False)
        for column in ("folder", "repeats", "images", "captions", "sizes", "kind"):
            if column == "folder":
                table.add_column(column, overflow="fold", ratio=1)
            else:
                table.add_column(column, justify="right", no_wrap=True)
        for folder in facts.folders:
            sizes = sorted(set(folder.sizes))
            size_text = ", ".join(f"{w}x{h}" for w, h in sizes[:3])
            if len(sizes) > 3:
                size_text += f" (+{len(sizes) - 3})"
            try:
                where = str(folder.subset.image_dir.relative_to(report.plan_path.parent))
            except ValueError:
                where = str(folder.subset.image_dir)
            table.add_row(
                where,
                str(folder.subset.repeats),
                str(folder.images),
                str(folder.captions),
                size_text or "-",
                "reg" if folder.subset.is_reg else "train",
            )
        _out.print(table)
    steps = facts.steps
    if steps is not None:
        _out.print(Text("Steps", style="bold"))
        train = [f for f in facts.folders if not f.subset.is_reg]
        images = sum(f.images for f in train)
        repeats = {f.subset.repeats for f in train}
        repeat_text = f"{repeats.pop()} repeats" if len(repeats) == 1 else "repeats"
        _out.print(
            f"  tutorial formula (T6): {images} images × {repeat_text} × "
            f"{steps.epochs} epochs / batch {plan.training.batch_size} = "
            f"{steps.tutorial_formula:g}"
        )
        _out.print(
            f"  sd-scripts will run:   {steps.batches_per_epoch} batches per epoch, "
            f"{steps.steps_per_epoch} steps per epoch × {steps.epochs} epochs = "
            f"{steps.total_optimization_steps} optimization steps"
        )
        if steps.buckets:
            buckets = ", ".join(f"{w}x{h}: {n}" for w, h, n in steps.buckets)
            _out.print(f"  buckets (images × repeats): {buckets}")
        if steps.reg_samples:
            _out.print(f"  regularization samples (balanced to training): {steps.reg_samples}")
    _out.print(
        f"LoRA file: {report.lora_parameters:,} parameters, about "
        f"{report.lora_file_bytes / 2**20:.1f} MiB each ({plan.output.save_precision})"
    )
    findings(report.findings)
    if report.ok:
        _out.print(Text("✓ plan is ready for `kohya-plan make`", style="bold green"))
    else:
        _out.print(Text("✗ fix the errors above (or waive them in [rules])", style="bold red"))


def made(run_dir: str, command: str, shell_name: str) -> None:
    """What `make` wrote and the command to run."""
    _out.print(Text("Run folder: ", style="bold") + Text(run_dir))
    _out.print(Text(f"Command ({shell_name}):", style="bold"))
    _out.print(Text(command))
    _out.print(Text("Start it with: ", style="bold") + Text(f"kohya-plan launch {run_dir}"))


# --- launch: live view and summary ----------------------------------------------------------

_PLAIN_EVERY_S = 5.0


def _speed(progress: Progress) -> str:
    if progress.rate is None:
        return "?"
    return f"{progress.rate:.2f} {progress.rate_unit}"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _notable(event: Event, state: RunState) -> str | None:
    """The log lines worth showing above the progress bar."""
    from kohya_plan import events as ev

    if isinstance(event, ev.EpochStart):
        return f"epoch {event.epoch}/{event.total}"
    if isinstance(event, ev.CheckpointSaved):
        return f"saved {event.path}"
    if isinstance(event, ev.StateSaved):
        return f"saved state {event.path}"
    if isinstance(event, ev.SampleImages):
        return f"sample images at step {event.step}"
    if isinstance(event, ev.ModelSaved):
        return "model saved"
    if isinstance(event, ev.Warning) and event.kind != "no_reg_images":
        return f"warning: {event.message}"
    if isinstance(event, ev.NoDataFound):
        return f"error: {event.message}"
    if isinstance(event, ev.Failure):
        return f"error ({event.kind}): {event.message}"
    if isinstance(event, ev.StartupInfo) and event.name == ev.TOTAL_STEPS:
        return f"training {event.value} optimization steps"
    return None


class PlainView:
    """Progress as plain lines, at most every few seconds (logs, CI, pipes)."""

    def __init__(self, quiet: bool = False, every_s: float = _PLAIN_EVERY_S) -> None:
        self.quiet = quiet
        self.every_s = every_s
        self._last = 0.0
        self._phase: str | None = None

    def event(self, event: Event, state: RunState) -> None:
        if self.quiet:
            return
        import time

        from kohya_plan import events as ev

        if isinstance(event, ev.Phase) and event.name != self._phase:
            self._phase = event.name
            _out.print(Text(f"[kohya-plan] {event.name}…"))
        elif (note := _notable(event, state)) is not None:
            _out.print(Text(f"[kohya-plan] {note}"))
        elif isinstance(event, ev.Progress):
            now = time.monotonic()
            if now - self._last >= self.every_s or event.step == event.total:
                self._last = now
                epoch = f" epoch {state.epoch}/{state.epochs}" if state.epoch else ""
                _out.print(
                    Text(
                        f"[kohya-plan] step {event.step}/{event.total}{epoch} "
                        f"avr_loss {_loss(event.avr_loss)} {_speed(event)} "
                        f"elapsed {_clock(event.elapsed_s)} left {_clock(event.remaining_s)}"
                    )
                )

    def close(self) -> None:
        return None


class LiveView:
    """One rich progress bar (step/total, epoch, avr_loss, speed, remaining) with notes above."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[epoch]}"),
            TextColumn("avr_loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("left {task.fields[left]}"),
            console=_out,
            transient=False,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task(
            "starting sd-scripts", total=None, count="", epoch="", loss="-", speed="", left="?"
        )
        self._progress.start()

    def event(self, event: Event, state: RunState) -> None:
        from kohya_plan import events as ev

        if isinstance(event, ev.Phase) and state.last_progress is None:
            self._progress.update(self._task, description=event.name)
        elif isinstance(event, ev.Progress):
            epoch = f"epoch {state.epoch}/{state.epochs}" if state.epoch else ""
            self._progress.update(
                self._task,
                description="training",
                total=event.total,
                completed=event.step,
                count=f"{event.step}/{event.total}",
                epoch=epoch,
                loss=_loss(event.avr_loss),
                speed=_speed(event),
                left=_clock(event.remaining_s),
            )
        if (note := _notable(event, state)) is not None:
            self._progress.console.print(Text(note))

    def close(self) -> None:
        self._progress.stop()


def run_view(mode: str) -> PlainView | LiveView:
    """`rich` (a live bar), `plain` (lines every few seconds) or `quiet` (summary only)."""
    if mode == "rich":
        return LiveView()
    return PlainView(quiet=mode == "quiet")


def run_summary(summary: RunSummary, run_dir: str) -> None:
    """The end-of-run summary: outcome, steps, loss, files, and a failure's cause."""
    style = {"succeeded": "bold green", "stopped": "bold yellow"}.get(summary.outcome, "bold red")
    status = "" if summary.exit_status is None else f" (exit status {summary.exit_status})"
    _out.print(Text(f"Run {summary.outcome}{status}", style=style) + Text(f": {run_dir}"))
    total = summary.steps_total if summary.steps_total is not None else "?"
    speed = (
        f", {summary.seconds_per_step:.2f} s/step" if summary.seconds_per_step is not None else ""
    )
    epochs = ""
    if summary.epochs_total:
        epochs = f", epoch {summary.epochs_done or 0} of {summary.epochs_total}"
    _out.print(
        f"  steps {summary.steps_done}/{total}{epochs}, wall time {_clock(summary.wall_s)}{speed}"
    )
    loss = summary.loss
    if loss.first is not None:
        change = "" if loss.change is None else f" ({loss.change * 100:+.1f} %)"
        _out.print(
            f"  avr_loss first {_loss(loss.first)}, last {_loss(loss.last)}, lowest "
            f"{_loss(loss.lowest)} at step {loss.lowest_step}; trend {loss.trend}{change}"
        )
    epochs_seen = sorted(set(loss.per_epoch_log) | set(loss.per_epoch_tensorboard))
    if epochs_seen:
        table = Table(show_edge=False, pad_edge=False, title_justify="left")
        table.add_column("epoch", justify="right")
        table.add_column("avr_loss (log)", justify="right")
        table.add_column("loss/epoch_average (TensorBoard)", justify="right")
        for epoch in epochs_seen:
            table.add_row(
                str(epoch),
                _loss(loss.per_epoch_log.get(epoch)),
                _loss(loss.per_epoch_tensorboard.get(epoch)),
            )
        _out.print(table)
    _out.print(
        Text(
            "  (loss alone says little about quality: compare the epochs' samples, T24/T30)",
            style="dim",
        )
    )
    if summary.files:
        _out.print(Text("LoRA files:", style="bold"))
        for item in summary.files:
            label = (
                "final"
                if item.final
                else f"epoch {item.epoch}"
                if item.epoch is not None
                else f"step {item.step}"
            )
            _out.print(f"  {label:>10}  {item.bytes / 2**20:8.1f} MiB  {item.path}")
        if summary.final_copy:
            _out.print(f"  final file also saved as {summary.final_copy} (T29)")
    elif summary.outcome != "succeeded":
        _out.print("  no LoRA file was saved")
    for warning in summary.warnings[:5]:
        _out.print(Text(f"  warning: {warning}", style="yellow"))
    cause = summary.cause
    if cause is not None and summary.outcome != "succeeded":
        _out.print(Text(f"Cause: {cause.kind}: {cause.message}", style="bold red"))
        for line in cause.lines[-8:]:
            _out.print(Text(f"  | {line}", style="dim"))
        if cause.advice:
            _out.print(Text(f"What to do: {cause.advice}"))
    if summary.stop_reason and summary.escalation:
        _out.print(f"  stopped by {summary.stop_reason}; trainer ended {summary.escalation}")


def lr_find_result(result: LrFindResult) -> None:
    """The learning-rate chart, what it means, and the new plan."""
    from kohya_plan.lrfind import describe, text_chart

    _out.print(Text("lr/d*lr/unet (the learning rate the optimizer chose)", style="bold"))
    for line in text_chart(result.points):
        _out.print(Text(line))
    plateau = result.plateau
    style = "bold green" if plateau.settled else "bold yellow"
    _out.print(Text(describe(plateau), style=style))
    if result.text_encoder is not None:
        _out.print(Text("  text encoder: " + describe(result.text_encoder, "lr/d*lr/textencoder")))
    _out.print(Text("New plan: ", style="bold") + Text(str(result.new_plan)))
    _out.print(Text(f"Chart: {result.chart}"))
    if not plateau.settled:
        _out.print(
            Text(
                "The value is the last one seen, not a settled one: treat it with care.",
                style="yellow",
            )
        )


# --- setup, doctor, selftest ----------------------------------------------------------------

_STATUS_MARK = {
    "ok": ("✓ ", "green"),
    "done": ("✓ ", "green"),
    "info": ("i ", "cyan"),
    "needed": ("… ", "yellow"),
    "warn": ("! ", "yellow"),
    "error": ("✗ ", "red"),
    "failed": ("✗ ", "red"),
}
# Tool lines worth a line of their own in plain mode (the rest go by in the live status).
_TOOL_NOTABLE = (
    "Cloning",
    "Collecting",
    "Downloading",
    "Installing",
    "Successfully",
    "Obtaining",
    "ERROR",
    "error",
    "fatal",
)


class SetupView:
    """Setup's steps: one line each with its outcome; the tools' output as it goes by."""

    def __init__(self, plain: bool) -> None:
        self.plain = plain
        self._status: Status | None = None
        self._title = ""

    def step(self, index: int, total: int, title: str) -> None:
        self._title = f"[{index}/{total}] {title}"
        if self.plain:
            _out.print(Text(self._title, style="bold"))
            return
        self._status = _out.status(Text(self._title), spinner="dots")
        self._status.start()

    def line(self, text: str) -> None:
        if self.plain:
            if text.lstrip().startswith(_TOOL_NOTABLE):
                _out.print(Text("    " + text, style="dim"))
        elif self._status is not None:
            short = text if len(text) < 90 else text[:87] + "…"
            self._status.update(Text(f"{self._title}\n    {short}"))

    def done(self, outcome: StepOutcome) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        mark, style = _STATUS_MARK[outcome.status]
        took = f" ({outcome.seconds:.0f} s)" if outcome.seconds >= 1 else ""
        if not self.plain:
            _out.print(Text(self._title, style="bold"))
        _out.print(Text("    " + mark, style=style) + Text(outcome.detail + took))


def setup_view(plain: bool) -> SetupView:
    """The progress display for `setup`."""
    return SetupView(plain)


def setup_report(report: SetupReport, *, check_only: bool, notes: Sequence[str]) -> None:
    """Where the installation is and what to do next."""
    where = report.layout
    if report.complete:
        _out.print(Text("✓ sd-scripts is installed", style="bold green"))
    elif check_only:
        _out.print(
            Text("✗ not complete: `kohya-plan setup` makes the missing steps", style="bold yellow")
        )
    _out.print(f"  sd-scripts: {where.sd_scripts} (commit {report.commit[:10]})")
    _out.print(f"  python:     {where.python}")
    _out.print(f"  torch:      {report.torch.key} — {report.torch.why}")
    for note in notes:
        _out.print(Text("  " + note, style="yellow"))
    if report.complete and not check_only:
        _out.print(
            "Next: `kohya-plan doctor` (checks the environment), "
            "`kohya-plan selftest` (trains 4 steps)"
        )


def diagnoses(items: Sequence[Diagnosis]) -> None:
    """The doctor's findings, one per line, each problem with its fix below it."""
    for item in items:
        mark, style = _STATUS_MARK[item.status]
        line = Text("  " + mark, style=style) + Text(f"{item.subject}: ", style="bold")
        line.append(item.message)
        _out.print(line)
        if item.fix and item.status in ("warn", "error", "info"):
            _out.print(Text(f"      fix: {item.fix}", style="dim" if item.status == "info" else ""))
    errors = sum(1 for d in items if d.status == "error")
    warnings = sum(1 for d in items if d.status == "warn")
    if errors:
        _out.print(Text(f"✗ {errors} problem(s) to fix before training", style="bold red"))
    elif warnings:
        _out.print(Text(f"! ready, with {warnings} warning(s)", style="bold yellow"))
    else:
        _out.print(Text("✓ ready to train", style="bold green"))


def selftest_phase(text: str) -> None:
    """One phase of the selftest starting."""
    _out.print(Text("[selftest] ", style="bold") + Text(text))


def selftest_line(text: str) -> None:
    """A builder's output line (dim)."""
    _out.print(Text("    " + text, style="dim"))


def _bytes(value: int | None) -> str:
    if value is None:
        return "?"
    return f"{value / (1 << 30):.2f} GiB" if value >= 1 << 30 else f"{value / (1 << 20):.0f} MiB"


def selftest_result(result: SelftestResult) -> None:
    """What the selftest checked and measured."""
    for verdict in result.verdicts:
        mark, style = _STATUS_MARK["ok" if verdict.passed else "error"]
        _out.print(Text("  " + mark, style=style) + Text(f"{verdict.what}: {verdict.detail}"))
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.phases)
    speed = f"{result.seconds_per_step:.2f} s/step" if result.seconds_per_step else "? s/step"
    gpu = f", peak GPU memory {_bytes(result.peak_gpu_bytes)}" if result.peak_gpu_bytes else ""
    _out.print(
        f"  {result.device}: {speed}, peak RAM of the trainer {_bytes(result.peak_rss_bytes)}"
        f"{gpu}; {phases}"
    )
    if result.kept:
        _out.print(f"  run folder kept: {result.run_dir}")
    if result.ok:
        _out.print(Text("✓ selftest passed: this installation trains", style="bold green"))
    else:
        _out.print(Text("✗ selftest failed", style="bold red"))
