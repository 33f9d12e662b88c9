"""Where the managed sd-scripts installation lives, and whether it is there and complete.

`kohya-plan setup` makes, under one folder (the *home*):

    <home>/sd-scripts/    a checkout of kohya-ss/sd-scripts at the snapshot's commit
    <home>/venv/          its virtual environment (torch, sd-scripts' requirements)
    <home>/venv/kohya-plan-installation.json   what was installed, step by step

The home is `--dir`, else `$KOHYA_PLAN_HOME`, else the user's data folder (platformdirs:
`~/.local/share/kohya-plan` on Linux). The record lives in the venv because the venv is
what the install makes. A checkout or venv put elsewhere (`--sd-scripts`, `--venv`, as
scripts/setup-sd-scripts does for vendor/sd-scripts and .venv-sd) is not the managed
installation: plans name it with launch.sd_scripts / launch.python.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOME_ENV = "KOHYA_PLAN_HOME"
APP_NAME = "kohya-plan"
RECORD_NAME = "kohya-plan-installation.json"
MADE_BY = "kohya-plan setup"


def default_home() -> Path:
    """The user's data folder for kohya-plan (platformdirs), ignoring the environment."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def home(explicit: Path | None = None) -> Path:
    """`--dir`, else $KOHYA_PLAN_HOME, else the user's data folder; absolute."""
    if explicit is not None:
        return explicit.expanduser().absolute()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return default_home()


def venv_python(venv: Path, *, windows: bool | None = None) -> Path:
    """The interpreter inside a virtual environment."""
    if windows is None:
        windows = sys.platform == "win32"
    return venv / "Scripts" / "python.exe" if windows else venv / "bin" / "python"


@dataclass(frozen=True, slots=True)
class Layout:
    """The folders one installation uses."""

    home: Path
    sd_scripts: Path
    venv: Path

    @property
    def python(self) -> Path:
        return venv_python(self.venv)

    @property
    def record(self) -> Path:
        """The venv's record of what setup installed."""
        return self.venv / RECORD_NAME


def layout(
    home_dir: Path | None = None, *, sd_scripts: Path | None = None, venv: Path | None = None
) -> Layout:
    """The layout for `setup`'s options: everything under the home unless given."""
    root = home(home_dir)
    return Layout(
        home=root,
        sd_scripts=(sd_scripts.expanduser().absolute() if sd_scripts else root / "sd-scripts"),
        venv=(venv.expanduser().absolute() if venv else root / "venv"),
    )


@dataclass(frozen=True, slots=True)
class Installation:
    """A complete managed installation: the checkout and the Python that runs it."""

    sd_scripts: Path
    python: Path
    commit: str
    torch: str
    record: Path


def read_record(path: Path) -> dict[str, Any] | None:
    """A record written by setup, or None when it is missing, unreadable, or someone else's."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("made_by") != MADE_BY:
        return None
    return data


def installation_from_record(data: dict[str, Any], record: Path) -> Installation | None:
    """The installation a record describes, if it says complete and its files are there."""
    if not data.get("complete"):
        return None
    try:
        sd_scripts = Path(str(data["sd_scripts"]))
        python = Path(str(data["python"]))
    except KeyError:
        return None
    if not (sd_scripts / "train_network.py").is_file() or not python.is_file():
        return None
    return Installation(
        sd_scripts=sd_scripts,
        python=python,
        commit=str(data.get("commit", "")),
        torch=str(data.get("torch", "")),
        record=record,
    )


def managed_installation(home_dir: Path | None = None) -> Installation | None:
    """The installation `kohya-plan setup` made in the home, when it is there and complete."""
    record = home(home_dir) / "venv" / RECORD_NAME
    data = read_record(record)
    return None if data is None else installation_from_record(data, record)
