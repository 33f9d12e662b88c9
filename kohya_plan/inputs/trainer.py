"""Where the trainer is: the sd-scripts checkout and the Python that has its requirements."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kohya_plan.plan import Plan


def locate_sd_scripts(plan: Plan) -> Path:
    """launch.sd_scripts, else $KOHYA_SD_SCRIPTS, else this checkout's vendor/sd-scripts."""
    if plan.launch.sd_scripts is not None:
        return plan.launch.sd_scripts
    env = os.environ.get("KOHYA_SD_SCRIPTS")
    if env:
        return Path(env).expanduser().absolute()
    return checkout_root() / "vendor" / "sd-scripts"


def checkout_root() -> Path:
    """The folder holding the `kohya_plan` package: a source checkout's root (vendor/ beside it)."""
    import kohya_plan

    return Path(kohya_plan.__file__).resolve().parent.parent


def locate_python(plan: Plan, plan_dir: Path, sd_scripts: Path) -> str | None:
    """The interpreter with sd-scripts' requirements; None means `accelerate` from PATH."""
    chosen = plan.launch.python or os.environ.get("KOHYA_SD_PYTHON")
    if chosen:
        if os.sep in chosen or "/" in chosen:
            path = Path(chosen).expanduser()
            return str(path if path.is_absolute() else (plan_dir / path).absolute())
        return chosen
    # scripts/setup-sd-scripts puts a venv beside the checkout's vendor/ folder.
    checkout = sd_scripts.parent.parent
    for candidate in (
        checkout / ".venv-sd" / "bin" / "python",
        checkout / ".venv-sd" / "Scripts" / "python.exe",
    ):
        if candidate.is_file():
            return str(candidate)
    if importlib.util.find_spec("accelerate") is not None:
        return sys.executable
    return None
