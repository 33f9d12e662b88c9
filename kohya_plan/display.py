"""Everything the user sees in the terminal (the only module that imports rich)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kohya_plan.checks import Finding
    from kohya_plan.errors import Problem
    from kohya_plan.planning import CheckReport

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
