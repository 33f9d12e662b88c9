"""Everything the user sees in the terminal: the only package that imports rich.

`console` holds the two consoles and the basic verbs, `tables` what commands print, `live` the
view of a running trainer.
"""

from kohya_plan.display.console import ERR, OUT, error, plain, problems, raw, warning
from kohya_plan.display.decoding import decode_progress
from kohya_plan.display.live import LiveView, PlainView, run_view
from kohya_plan.display.scale import (
    queue_point,
    queue_result,
    run_status,
    statuses,
    stopped,
    submitted,
    sweep_made,
)
from kohya_plan.display.setup import (
    diagnoses,
    selftest_line,
    selftest_phase,
    selftest_result,
    setup_report,
    setup_view,
)
from kohya_plan.display.tables import (
    check_report,
    findings,
    import_report,
    lr_find_result,
    made,
    run_summary,
)

__all__ = [
    "ERR",
    "OUT",
    "LiveView",
    "PlainView",
    "check_report",
    "decode_progress",
    "diagnoses",
    "error",
    "findings",
    "import_report",
    "lr_find_result",
    "made",
    "plain",
    "problems",
    "queue_point",
    "queue_result",
    "raw",
    "run_status",
    "run_summary",
    "run_view",
    "selftest_line",
    "selftest_phase",
    "selftest_result",
    "setup_report",
    "setup_view",
    "statuses",
    "stopped",
    "submitted",
    "sweep_made",
    "warning",
]
