"""`kohya-plan import`: other tools' configs and command lines → a new, commented plan.

One module per format (`kohya_ss`, `sd_scripts` for config/dataset TOML and command lines,
`sd_trainer`, `lets`), each pure: text in, plan data and a mapping `Record` per source key out.
They end in `mapping.build_plan`, which maps sd-scripts options onto plan keys. `disk` is the
only part that reads and writes files.
"""

from __future__ import annotations

from kohya_plan.workflows.importers.detect import FORMATS, detect_format
from kohya_plan.workflows.importers.disk import Imported, import_source, import_text
from kohya_plan.workflows.importers.report import Filled, ImportResult, Record

__all__ = [
    "FORMATS",
    "Filled",
    "ImportResult",
    "Imported",
    "Record",
    "detect_format",
    "import_source",
    "import_text",
]
