"""Stall detection: a trainer that prints nothing for --stall-timeout gets a warning (display,
kohya-plan.log, summary), and with --stop-on-stall the graceful stop, named in the summary."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from integration.project import BASIC_LOG, fake_project, only_run_dir, read_json

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def test_a_silent_trainer_is_warned_about_and_the_run_goes_on(tmp_path: Path, run_cli) -> None:
    # The whole training, then 2.5 s of silence before the trainer exits (a slow final save).
    plan = fake_project(tmp_path, "--ready", "--replay", str(BASIC_LOG), "--sleep", "2.5")
    result = run_cli("launch", plan, "--plain", "--stall-timeout", "1")
    assert result.exit_code == 0, result.output
    assert "warning: the trainer printed nothing for 00:01 (at step 16" in result.output
    run_dir = only_run_dir(tmp_path)
    summary = read_json(run_dir / "summary.json")
    assert summary["outcome"] == "succeeded"
    assert any("printed nothing for 00:01" in w for w in summary["warnings"])
    assert "printed nothing" in (run_dir / "kohya-plan.log").read_text()
    rebuilt = run_cli("summary", run_dir, "--json")
    assert "printed nothing for 00:01" in rebuilt.stdout  # kept in exit.json for a rebuild


def test_stop_on_stall_stops_the_run_gracefully(tmp_path: Path, run_cli) -> None:
    plan = fake_project(tmp_path, "--ready", "--sleep", "60")
    result = run_cli("launch", plan, "--plain", "--stall-timeout", "1", "--stop-on-stall")
    assert result.exit_code == 130, result.output
    summary = read_json(only_run_dir(tmp_path) / "summary.json")
    assert summary["outcome"] == "stopped"
    assert (summary["stop_reason"], summary["escalation"]) == ("stall", "graceful")
    assert summary["cause"]["kind"] == "stalled"
    assert summary["wall_s"] < 20


def test_no_stall_warning_with_the_timeout_off(tmp_path: Path, run_cli) -> None:
    plan = fake_project(tmp_path, "--ready", "--sleep", "1.5", "--replay", str(BASIC_LOG))
    result = run_cli("launch", plan, "--plain", "--stall-timeout", "0")
    assert result.exit_code == 0, result.output
    assert "printed nothing" not in result.output
