"""Plans use the managed installation when nothing else names sd-scripts or its Python."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from helpers import base_plan, make_images, write_plan

from kohya_plan.inputs import trainer as planning
from kohya_plan.inputs.installation import MADE_BY, RECORD_NAME

if TYPE_CHECKING:
    from pathlib import Path


def _install(home: Path) -> tuple[Path, Path]:
    """What a finished `kohya-plan setup` leaves in the home (files only)."""
    sd = home / "sd-scripts"
    sd.mkdir(parents=True)
    (sd / "train_network.py").write_text("")
    python = home / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    record = {"made_by": MADE_BY, "sd_scripts": str(sd), "python": str(python), "complete": True}
    (home / "venv" / RECORD_NAME).write_text(json.dumps(record))
    return sd, python


@pytest.fixture
def installed(
    no_managed_installation: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory
) -> tuple[Path, Path]:
    # An installed package: no vendor/sd-scripts beside it (a clone's would come first).
    site = tmp_path_factory.mktemp("site-packages")
    monkeypatch.setattr(planning, "checkout_root", lambda: site)
    for name in ("KOHYA_SD_SCRIPTS", "KOHYA_SD_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    return _install(no_managed_installation)


def test_sd_scripts_and_python_default_to_the_managed_installation(
    installed: tuple[Path, Path], tmp_path: Path, run_cli
) -> None:
    sd, python = installed
    assert planning.find_sd_scripts(None) == sd
    assert planning.find_python(None, tmp_path, sd) == str(python)
    # a checkout named by the plan is not paired with the managed Python
    assert planning.find_python(None, tmp_path, tmp_path / "elsewhere") != str(python)

    make_images(tmp_path / "data" / "5_x", [(512, 512)] * 2)
    data = base_plan()
    del data["launch"]
    result = run_cli("make", write_plan(tmp_path, data), "--dry-run", "--json")
    argv = json.loads(result.output)["argv"]
    assert argv[0] == str(python)
    assert str(sd / "train_network.py") in argv


def test_the_plan_and_the_environment_still_come_first(
    installed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "my-sd-scripts"
    assert planning.find_sd_scripts(mine) == mine
    monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(tmp_path / "env-sd"))
    assert planning.find_sd_scripts(None) == tmp_path / "env-sd"
    monkeypatch.setenv("KOHYA_SD_PYTHON", "/opt/py/bin/python")
    assert planning.find_python(None, tmp_path, installed[0]) == "/opt/py/bin/python"
