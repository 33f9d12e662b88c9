"""The folder `init` made stands for its plan; a run folder stays a run folder.

`check DIR`, `make DIR` and `launch DIR` take the plan folder (its plan.toml); `launch RUN_DIR`
still means a run folder; `board` in a plan folder finds its runs; `summary --json` always
prints JSON; relaunching a used run folder suggests a command that does not nest run folders.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from helpers import make_images

from kohya_plan import rundir
from kohya_plan.workflows.board import find_runs

if TYPE_CHECKING:
    from pathlib import Path


def _plan_folder(tmp_path: Path, run_cli: Any) -> Path:
    folder = tmp_path / "my-lora"
    result = run_cli("init", folder)
    assert result.exit_code == 0, result.output
    make_images(folder / "datasets" / "xunxian" / "5_xunxian", [(512, 512)] * 4)
    return folder


def test_check_and_make_take_the_folder_init_made(tmp_path: Path, run_cli: Any) -> None:
    folder = _plan_folder(tmp_path, run_cli)
    by_file = run_cli("check", folder / "plan.toml", "--no-hardware", "--json")
    by_folder = run_cli("check", folder, "--no-hardware", "--json")
    assert by_folder.exit_code == by_file.exit_code
    assert json.loads(by_folder.output)["plan"] == str(folder / "plan.toml")
    dry = run_cli("make", folder, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["run_dir"].startswith(str(folder / "runs"))


def test_check_of_a_run_folder_points_at_its_plan(tmp_path: Path, run_cli: Any) -> None:
    folder = _plan_folder(tmp_path, run_cli)
    made = run_cli("make", folder)
    assert made.exit_code == 0, made.output
    (run,) = (folder / "runs").iterdir()
    for command in ("check", "make"):
        result = run_cli(command, run)
        assert result.exit_code == 2, result.output
        assert "is a run folder" in result.output
        assert str(folder / "plan.toml") in result.output
    assert len(list((folder / "runs").iterdir())) == 1  # nothing nested, nothing new


def test_a_folder_without_a_plan_says_how_to_make_one(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("check", tmp_path / "empty")
    assert result.exit_code == 2
    assert f"kohya-plan init {tmp_path / 'empty'}" in result.output


def test_launch_of_a_used_run_folder_suggests_the_plan_not_a_nested_run(
    tmp_path: Path, run_cli: Any
) -> None:
    folder = _plan_folder(tmp_path, run_cli)
    run_cli("make", folder)
    (run,) = (folder / "runs").iterdir()
    (run / rundir.LOG).write_text("")  # as if launched
    result = run_cli("launch", run)
    assert result.exit_code == 2, result.output
    assert f"kohya-plan launch {folder / 'plan.toml'}" in result.output
    assert f"launch {run / 'plan.toml'}`" not in result.output


def test_without_its_source_plan_the_hint_keeps_runs_beside_the_run(
    tmp_path: Path, run_cli: Any
) -> None:
    folder = _plan_folder(tmp_path, run_cli)
    run_cli("make", folder)
    (run,) = (folder / "runs").iterdir()
    (run / rundir.LOG).write_text("")
    (folder / "plan.toml").unlink()
    result = run_cli("launch", run)
    assert result.exit_code == 2, result.output
    hint = result.output.split("`")[1]
    words = shlex.split(hint)
    assert words[:3] == ["kohya-plan", "launch", str(run / "plan.toml")]
    assert words[3:] == ["--set", f'output.runs_dir="{folder / "runs"}"']


def test_board_in_a_plan_folder_finds_its_runs(tmp_path: Path, run_cli: Any) -> None:
    folder = _plan_folder(tmp_path, run_cli)
    run_cli("make", folder)
    run_cli("make", folder)
    runs = sorted((folder / "runs").iterdir())
    assert len(runs) == 2
    assert find_runs([folder]) == runs


def test_board_in_a_plan_folder_without_runs_says_so(tmp_path: Path, run_cli: Any) -> None:
    folder = _plan_folder(tmp_path, run_cli)
    result = run_cli("board", folder)
    assert result.exit_code == 2
    assert "without runs yet" in result.output


def test_summary_json_prints_json_when_it_cannot(tmp_path: Path, run_cli: Any) -> None:
    folder = _plan_folder(tmp_path, run_cli)
    run_cli("make", folder)
    (run,) = (folder / "runs").iterdir()
    for target in (run, tmp_path / "nowhere", folder):
        result = run_cli("summary", target, "--json")
        assert result.exit_code == 2
        document = json.loads(result.output)
        assert document["ok"] is False
        assert document["error"]


def test_launch_takes_the_folder_init_made(tmp_path: Path, run_cli: Any) -> None:
    """`launch DIR` makes a run of DIR/plan.toml (the trainer itself is not started here)."""
    import sys

    from kohya_plan.workflows.launch import LaunchOptions, prepare

    folder = _plan_folder(tmp_path, run_cli)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("")
    overrides = [f'launch.sd_scripts="{sd}"', f'launch.python="{sys.executable}"']
    prepared = prepare(folder, overrides, LaunchOptions())
    assert prepared.run_dir.parent == folder / "runs"
    assert (prepared.run_dir / rundir.LAUNCH).is_file()
