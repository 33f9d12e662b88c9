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
    """launch.sd_scripts, else $KOHYA_SD_SCRIPTS, else vendor/sd-scripts or `kohya-plan setup`'s."""
    return find_sd_scripts(plan.launch.sd_scripts)


def find_sd_scripts(explicit: Path | None) -> Path:
    """The checkout: explicit, $KOHYA_SD_SCRIPTS, this clone's vendor/sd-scripts when it is
    there, the managed installation (`kohya-plan setup`), else where setup would put it."""
    if explicit is not None:
        return explicit
    env = os.environ.get("KOHYA_SD_SCRIPTS")
    if env:
        return Path(env).expanduser().absolute()
    vendor = checkout_root() / "vendor" / "sd-scripts"
    if (vendor / "train_network.py").is_file():
        return vendor
    from kohya_plan.inputs.installation import layout, managed_installation

    installed = managed_installation()
    if installed is not None:
        return installed.sd_scripts
    # A clone of kohya-plan names its empty submodule; an installed package, setup's folder.
    return vendor if (vendor.parent.parent / ".gitmodules").is_file() else layout().sd_scripts


def checkout_root() -> Path:
    """The folder holding the `kohya_plan` package: a source checkout's root (vendor/ beside it)."""
    import kohya_plan

    return Path(kohya_plan.__file__).resolve().parent.parent


def locate_python(plan: Plan, plan_dir: Path, sd_scripts: Path) -> str | None:
    """The interpreter with sd-scripts' requirements; None means `accelerate` from PATH."""
    return find_python(plan.launch.python, plan_dir, sd_scripts)


def find_python(chosen: str | None, plan_dir: Path, sd_scripts: Path) -> str | None:
    """launch.python, $KOHYA_SD_PYTHON, .venv-sd beside the checkout, the managed
    installation's Python (for its checkout), this Python if it has accelerate, else None."""
    chosen = chosen or os.environ.get("KOHYA_SD_PYTHON")
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
    from kohya_plan.inputs.installation import managed_installation

    installed = managed_installation()
    if installed is not None and installed.sd_scripts == sd_scripts:
        return str(installed.python)
    if importlib.util.find_spec("accelerate") is not None:
        return sys.executable
    return None
