"""The TensorBoard scalars sd-scripts wrote, read by tensorboard's own reader (a lazy import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

EVENTS_GLOB = "events.out.tfevents.*"


def read_scalars(logging_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in the TensorBoard event files under logging_dir (tensorboard's reader)."""
    files = sorted(logging_dir.rglob(EVENTS_GLOB)) if logging_dir.is_dir() else []
    if not files:
        return {}
    from tensorboard.backend.event_processing.event_accumulator import (  # heavy: only here
        EventAccumulator,
    )

    scalars: dict[str, list[tuple[int, float]]] = {}
    for folder in sorted({f.parent for f in files}):
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            points = [(e.step, float(e.value)) for e in accumulator.Scalars(tag)]
            scalars.setdefault(tag, []).extend(points)
    return scalars
