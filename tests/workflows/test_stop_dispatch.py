"""`stop` is a dispatch: a stopper added for another way of running (a batch system's job) is
asked, and used when it says the run is active; otherwise the local one answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kohya_plan import rundir
from kohya_plan.run.control import NotRunning
from kohya_plan.workflows import stop

if TYPE_CHECKING:
    from pathlib import Path


def _made(tmp_path: Path) -> rundir.RunDir:
    with rundir.creating(tmp_path / "runs", "x") as run:
        rundir.fill(
            run,
            {rundir.PLAN: "# plan\n"},
            source=b"# plan\n",
            check={},
            launch={"argv": ["python"], "cwd": str(tmp_path), "env": {}},
        )
    return run


def test_an_added_stopper_is_used_for_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _made(tmp_path)
    (run / "job.id").write_text("4242")
    asked: list[tuple[str, bool]] = []
    batch = stop.Stopper(
        name="batch",
        active=lambda r: (r / "job.id").is_file(),
        stop=lambda r, now: asked.append(((r / "job.id").read_text(), now)) or "scancel 4242",
        wait=lambda r, timeout: True,
        default_wait_s=lambda r: 60.0,
    )
    monkeypatch.setattr(stop, "STOPPERS", [batch, stop.LOCAL])
    done = stop.stop_run(run.path, now=True)
    assert (done.stopper, done.action, done.ended) == ("batch", "scancel 4242", True)
    assert asked == [("4242", True)]


def test_nothing_running_is_refused_clearly(tmp_path: Path) -> None:
    run = _made(tmp_path)
    with pytest.raises(NotRunning, match="never launched") as caught:
        stop.stop_run(run.path)
    assert caught.value.exit_code == 2
