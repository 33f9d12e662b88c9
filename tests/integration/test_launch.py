"""`kohya-plan launch` end to end with a fake trainer in place of sd-scripts: what the user sees
and what is on disk after success, crash, NaN, "No data found", argparse errors and Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import base_plan, make_images, write_plan

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parent / "fake_trainer.py"
LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def _project(tmp_path: Path, *fake_args: str) -> Path:
    """A plan whose 'python' is a wrapper running the fake trainer with fake_args."""
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("# stand-in; the fake trainer runs instead\n")
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(
        "#!/bin/sh\nexec " + shlex.join([sys.executable, str(FAKE), *fake_args]) + "\n"
    )
    wrapper.chmod(0o755)
    return write_plan(tmp_path, base_plan(launch={"sd_scripts": str(sd), "python": str(wrapper)}))


def _summary(tmp_path: Path) -> dict:
    (run_dir,) = (tmp_path / "runs").iterdir()
    return json.loads((run_dir / "summary.json").read_text())


def test_replayed_real_log_gives_progress_and_success(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path, "--replay", str(LOGS / "run1_basic.stderr.txt"), "--chunk", "512")
    result = run_cli("launch", plan, "--plain")
    assert result.exit_code == 0, result.output
    assert "Run succeeded" in result.output
    assert "step 16/16" in result.output
    summary = _summary(tmp_path)
    assert summary["outcome"] == "succeeded"
    assert (summary["steps_done"], summary["steps_total"]) == (16, 16)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "train.log").read_bytes() == (LOGS / "run1_basic.stderr.txt").read_bytes()


def test_crash_reports_the_traceback(tmp_path: Path, run_cli) -> None:
    result = run_cli("launch", _project(tmp_path, "--crash"), "--plain")
    assert result.exit_code == 3  # the training failed
    summary = _summary(tmp_path)
    assert summary["outcome"] == "failed"
    assert summary["cause"]["kind"] == "traceback"
    assert "fake trainer crashed" in summary["cause"]["message"]
    assert "Cause: traceback" in result.output


def test_accelerate_exit_1_reports_the_trainers_argparse_error(tmp_path: Path, run_cli) -> None:
    plan = _project(
        tmp_path, "--replay", str(LOGS / "run8_fail_arg.stderr.txt"), "--exit-code", "1"
    )
    result = run_cli("launch", plan, "--plain")
    summary = _summary(tmp_path)
    assert summary["cause"]["kind"] == "argparse"
    assert "--network_dimm" in summary["cause"]["message"]
    assert summary["trainer_exit_status"] == 2  # accelerate itself exited 1
    assert result.exit_code == 3  # the training failed (its cause: argparse)


def test_no_data_found_is_a_failure_although_the_trainer_exits_0(tmp_path, run_cli) -> None:
    result = run_cli("launch", _project(tmp_path, "--no-data"), "--plain")
    summary = _summary(tmp_path)
    assert summary["exit_status"] == 0
    assert summary["outcome"] == "failed"
    assert summary["cause"]["kind"] == "no_data"
    assert result.exit_code == 3  # the training failed
    assert "PARENT" in result.output


def test_nan_stops_the_run(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path, "--nan", "--sleep", "20")
    started = time.monotonic()
    result = run_cli("launch", plan, "--plain", "--grace", "5")
    assert time.monotonic() - started < 15, "the run should stop at the first NaN"
    summary = _summary(tmp_path)
    assert summary["outcome"] == "failed"
    assert summary["cause"]["kind"] == "nan_loss"
    assert summary["stop_reason"] == "nan"
    assert result.exit_code != 0


def test_keep_going_on_nan(tmp_path: Path, run_cli) -> None:
    result = run_cli("launch", _project(tmp_path, "--nan"), "--plain", "--keep-going-on-nan")
    summary = _summary(tmp_path)
    assert summary["stop_reason"] is None
    assert summary["cause"]["kind"] == "nan_loss"
    assert result.exit_code == 3  # the training failed


def test_a_run_folder_is_launched_once(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path)
    made = run_cli("make", plan, "--json")
    run_dir = json.loads(made.stdout)["run_dir"]
    assert run_cli("launch", run_dir, "--quiet").exit_code == 3  # exits 0 without a model saved
    again = run_cli("launch", run_dir, "--quiet")
    assert again.exit_code == 2
    assert "launched before" in again.output


def test_missing_python_is_reported_before_anything_is_made(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path)
    text = plan.read_text().replace(str(tmp_path / "fake-python"), str(tmp_path / "nope"))
    plan.write_text(text)
    result = run_cli("launch", plan)
    assert result.exit_code == 2
    assert "scripts/setup-sd-scripts" in result.output
    assert not (tmp_path / "runs").exists()


def test_refuses_to_overwrite_lora_files(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "testlora.safetensors").write_bytes(b"old")
    result = run_cli("launch", plan)
    assert result.exit_code == 2
    assert "--overwrite" in result.output
    assert (tmp_path / "out" / "testlora.safetensors").read_bytes() == b"old"
    assert not (tmp_path / "runs").exists()


def _tree(pid: int) -> list[int]:
    try:
        proc = psutil.Process(pid)
        return [pid] + [c.pid for c in proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_ctrl_c_stops_cleanly_and_leaves_no_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    plan = _project(
        tmp_path,
        "--replay",
        str(LOGS / "run1_basic.stderr.txt"),
        "--grandchild",
        "--pid-file",
        str(pid_file),
        "--sleep",
        "60",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "kohya_plan", "launch", str(plan), "--plain", "--grace", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), "the fake trainer did not start"
    time.sleep(0.5)
    tree = _tree(proc.pid)
    grandchild = int(pid_file.read_text())
    assert grandchild in tree
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out.decode()
    for pid in tree[1:]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    summary = _summary(tmp_path)
    assert summary["outcome"] == "stopped"
    assert summary["stop_reason"] == "interrupt"
    assert summary["steps_done"] == 16
    assert b"Run stopped" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    log = (run_dir / "train.log").read_bytes()
    assert log.startswith((LOGS / "run1_basic.stderr.txt").read_bytes())
    assert b"interrupted, saving" in log


def test_launch_with_board_serves_the_run_and_stops_it(tmp_path: Path, run_cli) -> None:
    import re
    import urllib.request

    plan = _project(tmp_path, "--replay", str(LOGS / "run1_basic.stderr.txt"))
    result = run_cli("launch", plan, "--plain", "--board")
    assert result.exit_code == 0, result.output
    url = re.search(r"TensorBoard: (http://127\.0\.0\.1:\d+)", result.output)
    assert url, result.output
    with pytest.raises(OSError, match=r"refused|timed out|Connection"):  # stopped with the run
        urllib.request.urlopen(url.group(1), timeout=2)


def test_board_command_needs_run_folders(tmp_path: Path, run_cli) -> None:
    result = run_cli("board", tmp_path)
    assert result.exit_code == 2
    assert "not a run folder" in result.output


def test_resume_continues_from_the_newest_saved_state(tmp_path: Path, run_cli) -> None:
    from kohya_plan.loading import loads_toml

    plan = _project(tmp_path, "--replay", str(LOGS / "run1_basic.stderr.txt"))
    refused = run_cli("launch", plan, "--resume")
    assert refused.exit_code == 2
    assert "save_state = true" in refused.output
    out = tmp_path / "out"
    (out / "testlora-000001.safetensors").parent.mkdir(parents=True)
    (out / "testlora-000001.safetensors").write_bytes(b"epoch 1")
    for name in ("testlora-000001-state", "testlora-000002-state"):
        (out / name).mkdir()
        (out / name / "train_state.json").write_text('{"current_epoch": 1, "current_step": 8}')
        (out / name / "random_states_0.pkl").write_bytes(b"rng")  # accelerate's last file
        time.sleep(0.05)  # distinct modification times: the newest one is used
    # Newest of all, but cut short while saving: not a state to resume from.
    (out / "testlora-000003-state").mkdir()
    (out / "testlora-000003-state" / "train_state.json").write_text('{"current_epoch": 3}')
    result = run_cli("launch", plan, "--resume", "--plain")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    extra = loads_toml((run_dir / "config.toml").read_text())["extra"]
    # --initial_epoch: sd-scripts restarts global_step after a resume, so the saved step is
    # not to be trusted; the saved epoch is (as the SLURM job script does).
    assert extra == {
        "resume": str(out / "testlora-000002-state"),
        "skip_until_initial_step": True,
        "initial_epoch": 2,
    }
    assert (out / "testlora-000001.safetensors").read_bytes() == b"epoch 1"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert any("start again at 1" in note for note in summary["notes"])


def test_resume_from_a_cut_short_state_is_refused(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path)
    state = tmp_path / "out" / "testlora-000001-state"
    state.mkdir(parents=True)
    (state / "train_state.json").write_text('{"current_epoch": 1, "current_step": 8}')
    result = run_cli("launch", plan, "--resume-from", state)
    assert result.exit_code == 2
    assert "cut short" in result.output
    assert "random_states_0.pkl" in result.output
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_finished_run_needs_more_epochs(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path)
    state = tmp_path / "out" / "testlora-state"
    state.mkdir(parents=True)
    (state / "train_state.json").write_text('{"current_epoch": 10, "current_step": 80}')
    (state / "random_states_0.pkl").write_bytes(b"rng")
    result = run_cli("launch", plan, "--resume")
    assert result.exit_code == 2
    assert "training.epochs=11" in result.output


def test_an_edited_launch_json_is_not_run_without_saying_so(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path)
    run_dir = Path(json.loads(run_cli("make", plan, "--json").stdout)["run_dir"])
    marker = tmp_path / "ran"
    launch_json = run_dir / "launch.json"
    data = json.loads(launch_json.read_text())
    data["argv"] = ["/bin/sh", "-c", f"touch {marker}"]
    launch_json.write_text(json.dumps(data))
    refused = run_cli("launch", run_dir, "--quiet")
    assert refused.exit_code == 2
    assert "changed after `make`" in refused.output
    assert "--trust-edited" in refused.output
    assert not marker.exists()
    assert not (run_dir / "train.log").exists()
    trusted = run_cli("launch", run_dir, "--quiet", "--trust-edited")
    assert marker.exists()
    assert "running it AS EDITED" in trusted.output
    assert "touch" in trusted.output
    assert json.loads((run_dir / "exit.json").read_text())["edited_launch"] is True
