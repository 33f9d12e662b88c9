"""A summary that cannot be written at the end of a run: shown anyway, with the path, the cause
and how to write it again; never a traceback, never a changed exit status."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_plan

from kohya_plan import rundir

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


@pytest.fixture
def launched(tmp_path: Path, run_cli: Callable[..., Result]) -> Path:
    """A made run folder with a finished run's train.log in it."""
    make_images(tmp_path / "data" / "5_testchar", [(512, 512), (512, 768)])
    plan = write_plan(tmp_path, base_plan(rules={"allow": ["image-count", "steps-range"]}))
    run_dir = Path(json.loads(run_cli("make", plan, "--json").stdout)["run_dir"])
    (run_dir / rundir.LOG).write_bytes((LOGS / "run1_basic.stderr.txt").read_bytes())
    return run_dir


@pytest.mark.parametrize("name", [rundir.SUMMARY, rundir.MANIFEST])
def test_a_full_disk_for_the_summary_is_a_warning(
    launched: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    real = rundir.RunDir.write_json

    def write_json(self: rundir.RunDir, file_name: str, data: Any) -> Path:
        if file_name == name:
            raise OSError(errno.ENOSPC, "No space left on device", str(self / file_name))
        return real(self, file_name, data)

    monkeypatch.setattr(rundir.RunDir, "write_json", write_json)
    result = run_cli("summary", launched)
    assert result.exit_code == 0, result.output
    assert "steps 16/16" in result.output
    assert f"{launched / name} was not written: the disk is full" in result.output
    assert f"kohya-plan summary {launched}" in result.output
    assert not (launched / name).exists()
    monkeypatch.setattr(rundir.RunDir, "write_json", real)
    assert run_cli("summary", launched).exit_code == 0
    assert (launched / name).is_file()


def test_the_epoch_copy_failing_is_a_warning_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kohya_plan.loading import load_plan
    from kohya_plan.trainlog.replay import replay_file
    from kohya_plan.workflows import results

    make_images(tmp_path / "data" / "5_testchar", [(512, 512)])
    plan = load_plan(write_plan(tmp_path, base_plan()))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "testlora.safetensors").write_bytes(b"x" * 100)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))

    monkeypatch.setattr(results, "epoch_copy", refuse)
    summary = results.finish_summary(
        run_dir,
        plan,
        replay_file(LOGS / "run1_basic.stderr.txt"),
        exit_status=0,
        wall_s=1.0,
        stop_reason=None,
        escalation=None,
        started_at=None,
        link_final=True,
    )
    assert summary.outcome == "succeeded"
    assert summary.final_copy is None
    assert "not also saved under its epoch's name (T29): the disk is full" in summary.warnings[0]
    assert (run_dir / rundir.SUMMARY).is_file()
