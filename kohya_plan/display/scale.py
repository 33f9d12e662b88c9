"""What `submit`, `status`, `stop`, `sweep` and `compare` print."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from kohya_plan.display.console import OUT as _out

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kohya_plan.workflows.slurm import RunStatus, Submitted
    from kohya_plan.workflows.sweep import QueueItem, QueueResult, Sweep

_STYLE = {
    "succeeded": "bold green",
    "running": "bold cyan",
    "pending": "bold",
    "stopped": "bold yellow",
    "failed": "bold red",
}


def submitted(done: Submitted) -> None:
    """The job that `submit` started and how to follow it."""
    if done.made:
        _out.print(Text("Run folder: ", style="bold") + Text(str(done.run_dir)))
    _out.print(
        Text(f"Submitted job {done.job_id}", style="bold green") + Text(f" (log: {done.log})")
    )
    _out.print(f"  follow it:  kohya-plan status {done.run_dir}")
    _out.print(f"  cancel it:  kohya-plan stop {done.run_dir}")


def run_status(status: RunStatus) -> None:
    """One run's state, the scheduler's word on it, its progress and, when it failed, why."""
    style = _STYLE.get(status.state, "bold")
    _out.print(Text(status.state, style=style) + Text(f": {status.detail}"))
    if status.log:
        _out.print(Text(f"  log: {status.log}", style="dim"))
    for log in status.machine_logs:
        _out.print(Text(f"  log of another machine: {log}", style="dim"))
    cause = status.cause
    if cause is not None and status.state in ("failed", "stopped"):
        for line in cause.lines[-6:]:
            _out.print(Text(f"  | {line}", style="dim"))
        if cause.advice:
            _out.print(Text("What to do: ", style="bold") + Text(cause.advice))


def statuses(rows: Sequence[tuple[str, RunStatus]]) -> None:
    """A sweep's points, one line each."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("point", "state", "progress", "detail"):
        table.add_column(column, overflow="fold")
    for label, status in rows:
        progress = f"{status.step}/{status.steps_total}" if status.steps_total is not None else "—"
        table.add_row(
            label,
            Text(status.state, style=_STYLE.get(status.state, "")),
            progress,
            status.detail,
        )
    _out.print(table)
    counts: dict[str, int] = {}
    for _, status in rows:
        counts[status.state] = counts.get(status.state, 0) + 1
    _out.print("  " + ", ".join(f"{n} {state}" for state, n in counts.items()))


def stopped(job_id: str, run_dir: str, *, now: bool = False) -> None:
    """`stop` asked the scheduler to cancel a job."""
    signal = "SIGKILL" if now else "SIGTERM"
    _out.print(
        Text(f"Cancelled job {job_id}", style="bold yellow")
        + Text(
            f": the trainer gets {signal} now; `kohya-plan status {run_dir}` says when it is gone"
        )
    )


def sweep_made(sweep: Sweep) -> None:
    """The sweep's folder and its points."""
    _out.print(Text("Sweep folder: ", style="bold") + Text(str(sweep.path)))
    axes = ", ".join(f"{a.key} = {', '.join(a.texts)}" for a in sweep.axes)
    _out.print(f"  {len(sweep.points)} points: {axes}")
    for point, run_dir in zip(sweep.points, sweep.run_dirs, strict=True):
        _out.print(
            Text(f"  {point.index:>3} {point.label}", style="bold") + Text(f"  {run_dir.name}")
        )


def queue_point(item: QueueItem, total: int) -> None:
    """The queue starts a point."""
    _out.print(Text(f"Point {item.index + 1} of {total}", style="bold") + Text(f": {item.run_dir}"))


def queue_result(result: QueueResult, sweep_dir: str) -> None:
    """How the local queue ended, and how to go on."""
    counts: dict[str, int] = {}
    for item in result.items:
        counts[item.state] = counts.get(item.state, 0) + 1
    line = ", ".join(f"{n} {state}" for state, n in counts.items())
    style = (
        "bold yellow" if result.stopped else "bold green" if result.exit_code == 0 else "bold red"
    )
    _out.print(
        Text("Sweep " + ("stopped" if result.stopped else "done"), style=style) + Text(f": {line}")
    )
    if result.stopped or counts.get("pending"):
        _out.print(f"  go on where it stopped:  kohya-plan sweep {sweep_dir}")
    _out.print(f"  compare the points:      kohya-plan compare {sweep_dir}")
