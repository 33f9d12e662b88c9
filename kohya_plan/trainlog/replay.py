"""The one log replayer: a whole train.log (bytes or file) → events → the run's state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan.trainlog.events import Event, RunState
from kohya_plan.trainlog.records import LogParser

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["parse_log", "replay", "replay_events", "replay_file"]

_CHUNK = 1 << 20


def parse_log(data: bytes, *, records: bool = False) -> list[Event]:
    """All events of a complete log."""
    parser = LogParser(records=records)
    events = parser.feed(data)
    events.extend(parser.finish())
    return events


def replay_events(events: Iterable[Event]) -> RunState:
    """The run state after these events."""
    state = RunState()
    for event in events:
        state.apply(event)
    return state


def replay(data: bytes) -> RunState:
    """The run state a complete log describes."""
    return replay_events(parse_log(data))


def replay_file(path: Path) -> RunState:
    """The run state a log file describes, read in bounded chunks (for `summary RUN_DIR`)."""
    parser = LogParser()
    state = RunState()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            for event in parser.feed(chunk):
                state.apply(event)
    for event in parser.finish():
        state.apply(event)
    return state
