"""What `check`, `make`, `launch` (at the end) and `lr-find` print: findings, tables, summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from kohya_plan.display.console import OUT as _out
from kohya_plan.display.console import problems
from kohya_plan.display.live import loss_text as _loss
from kohya_plan.summary import format_clock as _clock

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kohya_plan.checks.report import CheckReport
    from kohya_plan.findings import Finding
    from kohya_plan.summary import RunSummary
    from kohya_plan.workflows.importers import Imported
    from kohya_plan.workflows.lrfind.run import LrFindResult


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
        if steps.num_processes > 1:
            _processes(report)
        if steps.buckets:
            buckets = ", ".join(f"{w}x{h}: {n}" for w, h, n in steps.buckets)
            _out.print(f"  buckets (images × repeats): {buckets}")
        if steps.reg_samples:
            _out.print(f"  regularization samples (balanced to training): {steps.reg_samples}")
    _out.print(
        f"LoRA file: {report.lora_parameters:,} parameters, about "
        f"{report.lora_file_bytes / 2**20:.1f} MiB each ({plan.output.save_precision})"
        + ("" if report.lora_exact else f" — an estimate for {plan.network.module}")
    )
    memory = report.memory_json()
    parts = memory["phases"][memory["peak_phase"]]
    biggest = sorted(parts.items(), key=lambda item: -item[1])[:3]
    _out.print(
        f"GPU memory: ~{memory['peak_gib']:.1f} GiB at the peak ({memory['peak_phase']}: "
        + ", ".join(f"{name} {gib:.1f}" for name, gib in biggest)
        + f") + ~{memory['cuda_context_gib']:g} GiB CUDA context — an estimate, not yet "
        "checked on a GPU"
    )
    deep = facts.deep
    if deep is not None:
        cached = deep.images - deep.decoded
        rate = (
            f", {deep.decoded / deep.seconds:,.0f} images/s"
            if deep.seconds and deep.decoded
            else ""
        )
        _out.print(
            f"Deep check: {deep.images} images decoded with Pillow {deep.pillow} "
            f"({deep.decoded} now on {deep.workers} threads in {deep.seconds:.1f} s{rate}, "
            f"{cached} unchanged since the last check)"
        )
    findings(report.findings)
    if report.ok:
        _out.print(Text("✓ plan is ready for `kohya-plan make`", style="bold green"))
    else:
        _out.print(Text("✗ fix the errors above (or waive them in [rules])", style="bold red"))


def _processes(report: CheckReport) -> None:
    """The step maths for P processes: what each process does, and one GPU for comparison."""
    steps, la = report.facts.steps, report.plan.launch
    assert steps is not None
    p, ga = steps.num_processes, steps.gradient_accumulation_steps
    where = f"{p} processes" + (f" on {la.num_machines} machines" if la.num_machines > 1 else "")
    _out.print(
        f"  {where}: batch {steps.batch_size} per process × {p} processes × "
        f"{ga} accumulation = {steps.effective_batch} samples per optimizer step"
    )
    _out.print(
        f"  each process takes {steps.batches_per_epoch} of the {steps.dataset_batches} batches "
        f"per epoch ({steps.samples_per_epoch} samples per epoch); "
        f"{steps.batches_trained:,} batches in all"
    )
    if steps.one_process_epochs is not None:
        _out.print(
            f"  on one GPU the same plan runs {steps.one_process_steps} optimization steps "
            f"over {steps.one_process_epochs} epoch{'s' if steps.one_process_epochs != 1 else ''}"
        )
    from kohya_plan.checks.report import warmup_json

    warmup = warmup_json(report.plan, steps.total_optimization_steps)
    if warmup is not None and warmup["shortened"]:
        _out.print(
            f"  LR warm-up: {warmup['given']} scheduler steps = {warmup['optimizer_steps']:g} "
            f"optimizer steps with {p} processes (for a one-GPU warm-up: {warmup['corrected']})"
        )


def import_report(done: Imported) -> None:
    """`kohya-plan import`: what became of every source key, then the new plan's check."""
    from kohya_plan.workflows.importers.report import KIND_TITLES

    result = done.result
    _out.print(Text(f"Imported {result.format} ({result.script}) → {done.plan_path}", style="bold"))
    for kind, title in KIND_TITLES.items():
        records = [r for r in result.records if r.kind == kind]
        if not records:
            continue
        _out.print(Text(f"{title.capitalize()} ({len(records)}):", style="bold"))
        for record in records:
            line = Text("  " + record.source)
            if record.plan_key is not None:
                line.append(" → ")
                line.append(f"{record.plan_key} = {record.value!r}", style="cyan")
            if record.default:
                line.append("  (its tool's default)", style="dim")
            if record.reason:
                line.append(f"  {record.reason}", style="yellow" if kind == "cannot" else "dim")
            _out.print(line)
    placeholders = [f for f in result.filled if f.placeholder]
    implied = [f for f in result.filled if not f.placeholder]
    if implied:
        _out.print(
            Text(
                f"Given by no source key, written as sd-scripts does it ({len(implied)}):",
                style="bold",
            )
        )
        for item in implied:
            _out.print(Text(f"  {item.plan_key} = {item.value!r}  ") + Text(item.reason, "dim"))
    if placeholders:
        _out.print(Text(f"Change these in the plan ({len(placeholders)}):", style="bold red"))
        for item in placeholders:
            _out.print(Text(f"  {item.plan_key} = {item.value!r}  {item.reason}", style="red"))
    for note in result.notes:
        _out.print(Text(f"note: {note}", style="dim"))
    report = done.report
    steps = None if report is None else report.facts.steps
    if result.source_steps is not None and steps is not None:
        same = result.source_steps == steps.total_optimization_steps
        _out.print(
            Text(
                f"The source tool would have run {result.source_steps} steps; sd-scripts counts "
                f"{steps.total_optimization_steps} for {steps.epochs} epochs"
                + ("" if same else " (buckets, GPUs and rounding the tool ignores)"),
                style="bold" if same else "bold yellow",
            )
        )
    _out.print(Text(f"Check of {done.plan_path}:", style="bold"))
    if report is not None:
        check_report(report)
    else:
        problems(done.problems, title="The imported plan does not validate yet")
    _out.print(Text("Edit it, then: ", style="bold") + Text(f"kohya-plan check {done.plan_path}"))


def made(run_dir: str, command: str, shell_name: str) -> None:
    """What `make` wrote and the command to run."""
    _out.print(Text("Run folder: ", style="bold") + Text(run_dir))
    _out.print(Text(f"Command ({shell_name}):", style="bold"))
    _out.print(Text(command))
    _out.print(Text("Start it with: ", style="bold") + Text(f"kohya-plan launch {run_dir}"))


def run_summary(summary: RunSummary, run_dir: str) -> None:
    """The end-of-run summary: outcome, steps, loss, files, and a failure's cause."""
    style = {"succeeded": "bold green", "stopped": "bold yellow", "running": "bold cyan"}.get(
        summary.outcome, "bold red"
    )
    status = "" if summary.exit_status is None else f" (exit status {summary.exit_status})"
    if summary.outcome == "running":
        status = " (progress so far, from train.log)"
    elif summary.outcome == "interrupted":
        status = ": kohya-plan stopped before the trainer ended"
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
    trained = summary.steps_done > 0  # no loss remarks for a run that never took a step
    if trained and loss.first is not None:
        change = "" if loss.change is None else f" ({loss.change * 100:+.1f} %)"
        _out.print(
            f"  avr_loss first {_loss(loss.first)}, last {_loss(loss.last)}, lowest "
            f"{_loss(loss.lowest)} at step {loss.lowest_step}; trend {loss.trend}{change}"
        )
    epochs_seen = sorted(set(loss.per_epoch_log) | set(loss.per_epoch_tensorboard))
    if trained and epochs_seen:
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
    if trained:
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
    elif summary.outcome == "running":
        _out.print("  no LoRA file saved yet")
    elif summary.outcome != "succeeded":
        _out.print("  no LoRA file was saved")

    for note in summary.notes:
        _out.print(f"  {note}")
    for warning in summary.warnings[:5]:
        _out.print(Text(f"  warning: {warning}", style="yellow"))
    for note in summary.notes:
        _out.print(Text(f"  note: {note}"))
    cause = summary.cause
    if summary.outcome == "interrupted" and cause is not None:
        _out.print(Text(f"  {cause.advice}", style="bold"))
    elif cause is not None and summary.outcome != "succeeded":
        _out.print(Text(f"Cause: {cause.kind}: {cause.message}", style="bold red"))
        for line in cause.lines[-8:]:
            _out.print(Text(f"  | {line}", style="dim"))
        if cause.advice:
            _out.print(Text(f"What to do: {cause.advice}"))
    if summary.stop_reason and summary.escalation:
        _out.print(f"  stopped by {summary.stop_reason}; trainer ended {summary.escalation}")


def lr_find_result(result: LrFindResult) -> None:
    """The learning-rate chart, what it means, and the new plan."""
    from kohya_plan.workflows.lrfind.search import describe, text_chart

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
