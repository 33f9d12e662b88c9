"""A sweep's local queue with a fake trainer: a failed point does not stop the others, a stopped
queue goes on where it stopped (the point that was running again, in a new run folder), Ctrl-C
stops the running point and the queue."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import TESTS, base_plan, make_images, write_plan

from kohya_plan.workflows.sweep import load_sweep, read_queue

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parent / "fake_trainer.py"
GOOD = TESTS / "fixtures" / "logs" / "run1_basic.stderr.txt"


def _project(tmp_path: Path, *, slow: bool = False) -> Path:
    """A plan whose trainer crashes for dim 8, sleeps for dim 64, succeeds otherwise."""
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("# stand-in; the fake trainer runs instead\n")
    fake = [sys.executable, str(FAKE)]
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *dim8*) exec {shlex.join([*fake, '--crash'])} ;;\n"
        f"  *dim64*) exec {shlex.join([*fake, '--ready', '--sleep', '60'])} ;;\n"
        f"  *) exec {shlex.join([*fake, '--replay', str(GOOD)])} ;;\n"
        "esac\n"
    )
    wrapper.chmod(0o755)
    data = base_plan(
        network={"dim": 32, "alpha": 4},
        launch={"sd_scripts": str(sd), "python": str(wrapper)},
    )
    return write_plan(tmp_path, data)


def _queue(folder: Path) -> list[tuple[str, str]]:
    items = read_queue(load_sweep(folder))
    return [(Path(i.run_dir).name.split("-2026")[0].rsplit("-", 1)[-1], i.state) for i in items]


def test_a_failed_point_does_not_stop_the_queue(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    plan = _project(tmp_path)
    result = run_cli("sweep", plan, "--grid", "network.dim=8,16", "--plain")
    assert result.exit_code == 3, result.output  # a point failed
    assert "Point 1 of 2" in result.output
    assert "Point 2 of 2" in result.output
    assert "Sweep done: 1 failed, 1 succeeded" in result.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert _queue(folder) == [("dim8", "failed"), ("dim16", "succeeded")]
    # resuming does not run a failed point again unless asked
    again = run_cli("sweep", folder, "--plain")
    assert again.exit_code == 3
    assert "Point" not in again.output
    retried = run_cli("sweep", folder, "--plain", "--retry-failed")
    assert "Point 1 of 2" in retried.output
    runs = read_queue(load_sweep(folder))[0].runs
    assert len(runs) == 2  # the retry ran in a new run folder from the point's plan
    assert runs[1].parent == folder


def test_a_point_cut_short_runs_again_where_the_queue_stopped(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    plan = _project(tmp_path)
    made = run_cli("sweep", plan, "--grid", "network.dim=16,32", "--no-run")
    assert made.exit_code == 0, made.output
    (folder,) = (tmp_path / "runs").iterdir()
    # as if kohya-plan had been killed while point 0 ran: its folder used, queue.json says so
    queue = json.loads((folder / "queue.json").read_text())
    first = Path(queue["points"][0]["run_dir"])
    (first / "train.log").write_text("killed half-way\n")
    queue["points"][0]["state"] = "running"
    (folder / "queue.json").write_text(json.dumps(queue))
    result = run_cli("sweep", folder, "--plain")
    assert result.exit_code == 0, result.output
    items = read_queue(load_sweep(folder))
    assert [i.state for i in items] == ["succeeded", "succeeded"]
    assert items[0].runs[0] == first
    assert items[0].run_dir != first  # a new folder for the point, the old one kept
    assert (items[0].run_dir / "summary.json").is_file()


def test_ctrl_c_stops_the_running_point_and_the_queue(tmp_path: Path) -> None:
    plan = _project(tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kohya_plan",
            "sweep",
            str(plan),
            "--grid",
            "network.dim=64,16",
            "--plain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    folder = None
    while time.monotonic() < deadline:
        runs = tmp_path / "runs"
        found = list(runs.iterdir()) if runs.is_dir() else []
        if found and (found[0] / "queue.json").is_file():
            folder = found[0]
            first = json.loads((folder / "queue.json").read_text())["points"][0]
            log = Path(first["run_dir"]) / "train.log"
            ready = log.is_file() and "ready" in log.read_text(errors="replace")
            if first["state"] == "running" and ready:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"point 0 never started: {proc.stdout.read() if proc.stdout else b''!r}")
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out.decode(errors="replace")
    assert folder is not None
    assert _queue(folder) == [("dim64", "stopped"), ("dim16", "pending")]
    assert b"go on where it stopped:  kohya-plan sweep" in out
