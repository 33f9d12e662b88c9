"""The run report: gathered from a run folder, rendered as one self-contained HTML page."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from kohya_plan.report.gather import REPORT_NAME, ReportData, gather
from kohya_plan.report.html import render_report
from kohya_plan.report.samples import EMBED_LIMIT

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["REPORT_NAME", "ReportData", "gather", "render_report", "write_report"]


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
