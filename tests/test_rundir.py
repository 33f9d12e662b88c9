"""The run folder's owner: launch.json is checked against the digest `make` recorded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from kohya_plan import rundir

if TYPE_CHECKING:
    from pathlib import Path


def _made(tmp_path: Path) -> rundir.RunDir:
    with rundir.creating(tmp_path / "runs", "x") as run:
        rundir.fill(
            run,
            {rundir.PLAN: "# plan\n"},
            source=b"# plan\n",
            check={},
            launch={"argv": ["python", "train.py"], "cwd": str(tmp_path), "env": {"A": "1"}},
        )
    return run


def test_launch_json_as_made_is_read_back(tmp_path: Path) -> None:
    record = _made(tmp_path).read_launch()
    assert (record.argv, record.cwd, record.env, record.edited) == (
        ["python", "train.py"],
        tmp_path,
        {"A": "1"},
        False,
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["argv"].__setitem__(0, "/bin/sh"),
        lambda d: d.__setitem__("cwd", "/"),
        lambda d: d["env"].__setitem__("LD_PRELOAD", "/tmp/evil.so"),
        lambda d: d.pop("digest"),
    ],
    ids=["argv", "cwd", "env", "no-digest"],
)
def test_an_edited_launch_json_is_refused_with_the_way_out(tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    run = _made(tmp_path)
    path = run / rundir.LAUNCH
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(rundir.RunDirError) as caught:
        run.read_launch()
    message = str(caught.value)
    assert "changed after `make`" in message
    assert "--trust-edited" in message
    assert f"kohya-plan launch {run.plan}" in message
    assert caught.value.exit_code == 2
    trusted = run.read_launch(trust_edited=True)
    assert trusted.edited


def test_a_launch_json_without_a_command_is_refused(tmp_path: Path) -> None:
    run = _made(tmp_path)
    (run / rundir.LAUNCH).write_text(json.dumps({"argv": "python train.py", "cwd": "."}))
    with pytest.raises(rundir.RunDirError, match="does not hold a command"):
        run.read_launch(trust_edited=True)
