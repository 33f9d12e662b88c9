"""The progress bar of `check --deep` (and of the deep check `launch` runs first)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from kohya_plan.display.console import ERR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@contextlib.contextmanager
def decode_progress(enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a bar on stderr while images are decoded.

    Only on a terminal (a pipe or a CI log gets nothing), and gone when done (transient).
    """
    if not enabled or not ERR.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("decoding images"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=ERR,
        transient=True,
        refresh_per_second=5,
    ) as bar:
        task = bar.add_task("decode", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
