"""The view of a running trainer: a live rich progress bar, or plain lines every few seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from kohya_plan.display.console import OUT as _out
from kohya_plan.summary import format_clock as _clock

if TYPE_CHECKING:
    from kohya_plan.trainlog.events import Event, Progress, RunState

_PLAIN_EVERY_S = 5.0


def _speed(progress: Progress) -> str:
    if progress.rate is None:
        return "?"
    return f"{progress.rate:.2f} {progress.rate_unit}"


def loss_text(value: float | None) -> str:
    """avr_loss as shown (4 significant digits; '-' when unknown)."""
    return "-" if value is None else f"{value:.4g}"


def _notable(event: Event, state: RunState) -> str | None:
    """The log lines worth showing above the progress bar."""
    from kohya_plan.trainlog import events as ev

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

        from kohya_plan.trainlog import events as ev

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
                        f"avr_loss {loss_text(event.avr_loss)} {_speed(event)} "
                        f"elapsed {_clock(event.elapsed_s)} left {_clock(event.remaining_s)}"
                    )
                )

    def notice(self, text: str) -> None:
        if not self.quiet:
            _out.print(Text(f"[kohya-plan] {text}"))

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
        from kohya_plan.trainlog import events as ev

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
                loss=loss_text(event.avr_loss),
                speed=_speed(event),
                left=_clock(event.remaining_s),
            )
        if (note := _notable(event, state)) is not None:
            self._progress.console.print(Text(note))

    def notice(self, text: str) -> None:
        self._progress.console.print(Text(text, style="yellow" if "warning" in text else ""))

    def close(self) -> None:
        self._progress.stop()


def run_view(mode: str) -> PlainView | LiveView:
    """`rich` (a live bar), `plain` (lines every few seconds) or `quiet` (summary only)."""
    if mode == "rich":
        return LiveView()
    return PlainView(quiet=mode == "quiet")
