"""One writer per output: two launches into one output (or of one run folder) at the same time
→ exactly one runs; the other is refused at once, naming the first's run folder and pid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integration.project import BASIC_LOG, fake_project, kohya, only_run_dir, read_json

pytestmark = pytest.mark.integration

SLOW = ("--replay", str(BASIC_LOG), "--chunk", "2048", "--delay", "0.1")  # ~2 s of output


def _outcomes(*procs):  # type: ignore[no-untyped-def]
    """(pid, exit status, output) of each kohya-plan process, once all have ended."""
    done = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        done.append((proc.pid, proc.returncode, out.decode()))
    return done


def test_two_launches_into_one_output_at_once_exactly_one_runs(tmp_path: Path) -> None:
    plan = fake_project(tmp_path, *SLOW)
    first, second = kohya("launch", plan, "--plain"), kohya("launch", plan, "--plain")
    outcomes = _outcomes(first, second)
    ran = [o for o in outcomes if o[1] != 2]
    refused = [o for o in outcomes if o[1] == 2]
    assert len(ran) == 1, outcomes
    assert len(refused) == 1, outcomes
    (winner_pid, status, _), (_, _, message) = ran[0], refused[0]
    assert status == 0
    run_dir = only_run_dir(tmp_path)  # the refused launch made no run folder
    assert "another launch is writing this output" in message
    assert f"pid {winner_pid}" in message
    assert str(run_dir) in message
    assert read_json(run_dir / "summary.json")["outcome"] == "succeeded"


def test_a_run_folder_launched_twice_at_once_runs_once(tmp_path: Path, run_cli) -> None:
    plan = fake_project(tmp_path, *SLOW)
    run_dir = Path(json.loads(run_cli("make", plan, "--json").stdout)["run_dir"])
    outcomes = _outcomes(kohya("launch", run_dir, "--plain"), kohya("launch", run_dir, "--plain"))
    assert sorted(o[1] for o in outcomes) == [0, 2], outcomes
    (winner_pid,) = [o[0] for o in outcomes if o[1] == 0]
    (message,) = [o[2] for o in outcomes if o[1] == 2]
    assert f"pid {winner_pid}" in message
    assert "being launched already" in message or "launched before" in message


def test_another_output_of_the_same_folder_is_not_blocked(tmp_path: Path) -> None:
    plan = fake_project(tmp_path, *SLOW)
    other = fake_project(tmp_path / "b", *SLOW, output={"dir": str(tmp_path / "out"),
                                                        "name": "testlora-v2"})  # fmt: skip
    outcomes = _outcomes(kohya("launch", plan, "--plain"), kohya("launch", other, "--plain"))
    assert [o[1] for o in outcomes] == [0, 0], outcomes


def test_the_lock_is_free_again_after_a_run(tmp_path: Path, run_cli) -> None:
    plan = fake_project(tmp_path, "--replay", str(BASIC_LOG))
    assert run_cli("launch", plan, "--quiet").exit_code == 0
    again = run_cli("launch", plan, "--quiet", "--overwrite")
    assert again.exit_code == 0, again.output


def test_overwrite_never_changes_another_runs_epoch_copy(tmp_path: Path, run_cli) -> None:
    final = tmp_path / "out" / "testlora.safetensors"
    # Run one: 2 epochs (stdout has the epoch lines, stderr the rest, as merged in a real run),
    # its final file, and kohya-plan's T29 copy testlora-000002.
    merged = tmp_path / "merged.log"
    merged.write_bytes(
        BASIC_LOG.with_name("run1_basic.stdout.txt").read_bytes() + BASIC_LOG.read_bytes()
    )
    fake_project(tmp_path, "--replay", str(merged), "--write", f"{final}=run one")
    assert run_cli("launch", tmp_path / "plan.toml", "--quiet").exit_code == 0
    copy = tmp_path / "out" / "testlora-000002.safetensors"
    assert copy.read_bytes() == b"run one"
    # Run two, allowed to overwrite: sd-scripts rewrites testlora.safetensors in place, then
    # the run fails (no epoch copy of its own). Run one's epoch-2 file must stay run one's.
    fake_project(tmp_path, "--write", f"{final}=run two", "--exit-code", "1")
    assert run_cli("launch", tmp_path / "plan.toml", "--quiet", "--overwrite").exit_code == 3
    assert final.read_bytes() == b"run two"
    assert copy.read_bytes() == b"run one"
