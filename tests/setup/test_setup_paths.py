"""Where the managed installation lives, and when it counts as there."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kohya_plan.inputs import installation as paths

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_dir_beats_environment_beats_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    assert paths.home() == paths.default_home()
    assert paths.default_home().name == "kohya-plan"
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "env-home"))
    assert paths.home() == tmp_path / "env-home"
    assert paths.home(tmp_path / "flag") == tmp_path / "flag"


def test_layout_puts_everything_under_the_home_unless_given(tmp_path: Path) -> None:
    where = paths.layout(tmp_path)
    assert where.sd_scripts == tmp_path / "sd-scripts"
    assert where.venv == tmp_path / "venv"
    assert where.record == tmp_path / "venv" / paths.RECORD_NAME
    other = paths.layout(tmp_path, sd_scripts=tmp_path / "x", venv=tmp_path / "y")
    assert (other.sd_scripts, other.venv) == (tmp_path / "x", tmp_path / "y")


def test_windows_venv_python() -> None:
    from pathlib import Path

    assert paths.venv_python(Path("v"), windows=True) == Path("v/Scripts/python.exe")
    assert paths.venv_python(Path("v"), windows=False) == Path("v/bin/python")


def _record(home: Path, **fields: object) -> Path:
    sd = home / "sd-scripts"
    sd.mkdir(parents=True)
    (sd / "train_network.py").write_text("")
    python = home / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    data = {
        "made_by": paths.MADE_BY,
        "sd_scripts": str(sd),
        "python": str(python),
        "commit": "abc",
        "torch": "torch==2.14.1",
        "complete": True,
        **fields,
    }
    record = home / "venv" / paths.RECORD_NAME
    record.write_text(json.dumps(data))
    return record


def test_managed_installation_when_complete(tmp_path: Path) -> None:
    record = _record(tmp_path)
    found = paths.managed_installation(tmp_path)
    assert found is not None
    assert found.sd_scripts == tmp_path / "sd-scripts"
    assert found.python == tmp_path / "venv" / "bin" / "python"
    assert (found.commit, found.record) == ("abc", record)


def test_no_installation_when_missing_incomplete_foreign_or_files_gone(tmp_path: Path) -> None:
    assert paths.managed_installation(tmp_path / "nothing") is None
    _record(tmp_path / "a", complete=False)
    assert paths.managed_installation(tmp_path / "a") is None
    _record(tmp_path / "b", made_by="someone else")
    assert paths.managed_installation(tmp_path / "b") is None
    _record(tmp_path / "c")
    (tmp_path / "c" / "sd-scripts" / "train_network.py").unlink()
    assert paths.managed_installation(tmp_path / "c") is None
    (tmp_path / "d" / "venv").mkdir(parents=True)
    (tmp_path / "d" / "venv" / paths.RECORD_NAME).write_text("{not json")
    assert paths.managed_installation(tmp_path / "d") is None
