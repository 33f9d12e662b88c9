"""What `setup`, `doctor` and `selftest` print: steps with progress, diagnoses, the measurements."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from kohya_plan.display.console import OUT as _out

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.status import Status

    from kohya_plan.setup.doctor import Diagnosis
    from kohya_plan.setup.install import SetupReport, StepOutcome
    from kohya_plan.setup.selftest import SelftestResult


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
