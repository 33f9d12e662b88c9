"""submit / status / summary / stop of a SLURM run, with the scheduler's answers made up (the
real cluster runs them in tests/labs/test_slurm_commands.py): pending, running with the progress
its log shows, done, failed with the cause (also when it is on another machine), cancelled."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from helpers import TESTS, base_plan, make_images, write_plan

from kohya_plan import rundir
from kohya_plan.errors import LaunchError
from kohya_plan.planning import check_plan, make_run
from kohya_plan.run import slurm as scheduler
from kohya_plan.run.slurm import AccountRow, QueueRow, parse_sacct, parse_squeue
from kohya_plan.workflows import slurm as workflow

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from click.testing import Result

LOGS = TESTS / "fixtures" / "logs" / "scale"


class FakeScheduler:
    """What sbatch, squeue, sacct and scancel would answer."""

    def __init__(self) -> None:
        self.queue: list[QueueRow] = []
        self.account: list[AccountRow] = []
        self.submitted: list[Path] = []
        self.cancelled: list[str] = []
        self.signals: list[str | None] = []

    def sbatch(self, script: Path, *, options: object = ()) -> str:
        self.submitted.append(script)
        return str(4000 + len(self.submitted))

    def squeue(self, job_ids: list[str]) -> list[QueueRow]:
        return [
            r for r in self.queue if r.job_id.split("_")[0] in {j.split("_")[0] for j in job_ids}
        ]

    def sacct(self, job_id: str) -> list[AccountRow]:
        return [r for r in self.account if r.job_id.startswith(job_id.split("_")[0])]

    def scancel(self, job_id: str, *, signal: str | None = None) -> None:
        self.cancelled.append(job_id)
        self.signals.append(signal)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeScheduler:
    cluster = FakeScheduler()
    for name in ("sbatch", "squeue", "sacct", "scancel"):
        monkeypatch.setattr(scheduler, name, getattr(cluster, name))
    return cluster


def _plan(root: Path, **launch: Any) -> Path:
    make_images(root / "data" / "2_testchar", [(64, 64)] * 4)
    sd = root / "sd-scripts"
    sd.mkdir(exist_ok=True)
    (sd / "train_network.py").write_text("# stand-in\n")
    py = root / "python"
    py.write_text("#!/bin/sh\n")
    py.chmod(0o755)
    data = base_plan(
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
        training={"epochs": 2},
        launch={"sd_scripts": str(sd), "python": str(py), **launch},
    )
    return write_plan(root, data)


def _submitted(tmp_path: Path, fake: FakeScheduler, **launch: Any) -> Path:
    done = workflow.submit(_plan(tmp_path, **launch))
    assert done.made
    assert done.job_id == "4001"
    return done.run_dir


def test_submit_makes_the_run_with_its_job_script_and_records_the_job(
    tmp_path: Path, fake: FakeScheduler, run_cli: Callable[..., Result]
) -> None:
    run_dir = _submitted(tmp_path, fake)
    assert fake.submitted == [run_dir / "job.sbatch"]
    script = (run_dir / "job.sbatch").read_text(encoding="utf-8")
    assert f"#SBATCH --output={run_dir}/slurm-%j.out" in script
    record = json.loads((run_dir / "slurm.json").read_text())
    assert (record["job_id"], record["log"]) == ("4001", "slurm-4001.out")
    with pytest.raises(LaunchError, match="was launched or submitted before"):
        workflow.submit(run_dir)
    # launching it here as well is refused: one run folder, one run
    refused = run_cli("launch", run_dir, "--plain")
    assert refused.exit_code == 2
    assert "was submitted to SLURM before (it has slurm.json)" in refused.output


def test_a_folder_made_for_a_local_launch_is_not_submitted(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    run_dir = make_run(check_plan(_plan(tmp_path))).run_dir
    with pytest.raises(LaunchError, match="was made for a local launch; make it for SLURM"):
        workflow.submit(run_dir)
    assert fake.submitted == []


def test_pending_then_running_with_the_progress_of_its_log(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    run_dir = _submitted(tmp_path, fake)
    fake.queue = [QueueRow("4001", "PENDING", "Priority", "0:00", "20:00", "")]
    status = workflow.run_status(run_dir)
    assert (status.state, status.detail) == ("pending", "job 4001 waits (Priority)")
    log = (LOGS / "two_processes.log").read_bytes()
    cut = log.index(b"steps:  62%")  # in epoch 2, after step 4
    (run_dir / "slurm-4001.out").write_bytes(log[:cut])
    fake.queue = [QueueRow("4001", "RUNNING", "None", "0:42", "20:00", "node07")]
    status = workflow.run_status(run_dir)
    assert status.state == "running"
    assert (
        status.detail == "job 4001 running on node07 for 0:42: step 4/8, epoch 2/2, avr_loss 1.05"
    )
    assert (status.step, status.steps_total, status.epoch) == (4, 8, 2)


def test_done_and_its_summary_from_the_log_and_sacct(
    tmp_path: Path, fake: FakeScheduler, run_cli: Callable[..., Result]
) -> None:
    run_dir = _submitted(tmp_path, fake)
    (run_dir / "slurm-4001.out").write_bytes((LOGS / "two_processes.log").read_bytes())
    fake.account = [AccountRow("4001", "COMPLETED", "0:0", "00:01:02", "", "", "node07")]
    status = workflow.run_status(run_dir)
    assert status.state == "succeeded"
    assert "job 4001 COMPLETED (exit code 0:0) after 00:01:02: step 8/8" in status.detail
    result = run_cli("summary", run_dir)
    assert result.exit_code == 0, result.output
    assert "Run succeeded (exit status 0)" in result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["steps_done"], summary["wall_s"]) == (8, 62.0)


def test_failed_with_the_dead_rank_named_also_from_another_machine(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    run_dir = _submitted(tmp_path, fake)
    # machine 0 only lost its peer; machine 1's own log says which rank died, and how
    (run_dir / "slurm-4001.out").write_bytes(
        (LOGS / "two_machines_node1_killed.machine0.log").read_bytes()
    )
    (run_dir / rundir.slurm_machine_log_name("slurm-4001.out", 1)).write_bytes(
        (LOGS / "two_machines_node1_killed.machine1.log").read_bytes()
    )
    fake.account = [AccountRow("4001", "FAILED", "1:0", "00:00:50", "", "", "node[07-08]")]
    status = workflow.run_status(run_dir)
    assert status.state == "failed"
    assert status.cause is not None
    assert (status.cause.kind, status.cause.rank) == ("rank_died", 1)
    assert "rank 1 (local rank 0 on localhost) was killed by SIGKILL" in status.detail
    assert status.machine_logs == (str(run_dir / "slurm-4001.machine1.out"),)


def test_out_of_memory_from_the_scheduler_when_the_log_has_no_cause(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    run_dir = _submitted(tmp_path, fake)
    (run_dir / "slurm-4001.out").write_text("kohya-plan: job 4001 (start 1) of run …\n")
    fake.account = [AccountRow("4001", "OUT_OF_MEMORY", "0:125", "00:03:00", "", "", "n1")]
    status = workflow.run_status(run_dir)
    assert status.state == "failed"
    assert status.cause is not None
    assert status.cause.kind == "out_of_memory"
    assert "raise slurm.mem" in status.cause.advice


def test_stop_cancels_the_job_and_status_says_who_stopped_it(
    tmp_path: Path, fake: FakeScheduler, run_cli: Callable[..., Result]
) -> None:
    run_dir = _submitted(tmp_path, fake)
    result = run_cli("stop", run_dir)
    assert result.exit_code == 0, result.output
    assert fake.cancelled == ["4001"]
    assert "cancelled SLURM job 4001 (scancel; the trainer gets SIGTERM" in result.output
    (run_dir / "slurm-4001.out").write_bytes((LOGS / "two_processes_ctrl_c.log").read_bytes())
    fake.account = [AccountRow("4001", "CANCELLED by 0", "0:15", "00:00:41", "", "", "n1")]
    status = workflow.run_status(run_dir)
    assert status.state == "stopped"
    assert "job 4001 CANCELLED (exit code 0:15) after 00:00:41 by `kohya-plan stop`" in (
        status.detail
    )
    local = make_run(check_plan(_plan(tmp_path / "local"))).run_dir
    refused = run_cli("stop", local)
    assert refused.exit_code == 2
    assert "nothing runs in" in refused.output
    assert "it was never launched" in refused.output


def test_stop_of_a_sweep_folder_cancels_its_job_array(
    tmp_path: Path, fake: FakeScheduler, run_cli: Callable[..., Result]
) -> None:
    """One `stop` for every way a run runs: a sweep folder's job array is cancelled whole."""
    from kohya_plan.workflows.sweep import make_sweep, submit_sweep

    plan = _plan(tmp_path)
    array = make_sweep(plan, ["network.dim=16,32"], slurm=True)
    job = submit_sweep(array)
    result = run_cli("stop", array.path)
    assert result.exit_code == 0, result.output
    assert fake.cancelled == [job]
    assert f"Cancelled job {job}: the trainer gets SIGTERM" in result.output
    now = run_cli("stop", array.path, "--now")
    assert now.exit_code == 0, now.output
    assert fake.signals == [None, "KILL"]
    assert "the trainer gets SIGKILL" in now.output
    # a sweep that runs here has no job to cancel: its own terminal stops it (Ctrl-C)
    local = make_sweep(plan, ["network.dim=64,128"])
    refused = run_cli("stop", local.path)
    assert refused.exit_code == 2
    assert "a local sweep stops with Ctrl-C in its terminal" in refused.output
    assert fake.cancelled == [job, job]


def test_a_local_run_folder_has_a_status_too(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    run_dir = make_run(check_plan(_plan(tmp_path))).run_dir
    result = run_cli("status", run_dir)
    assert result.exit_code == 0
    assert result.output.startswith("not launched: made, never launched")
    doc = json.loads(run_cli("status", run_dir, "--json").stdout)
    assert doc["state"] == "not launched"


def test_the_commands_output_formats() -> None:
    rows = parse_squeue(
        "4001_0|RUNNING|None|1:02|20:00|node07\n4001_1|PENDING|JobArrayTaskLimit|0:00|20:00|\n"
    )
    assert rows[1] == QueueRow("4001_1", "PENDING", "JobArrayTaskLimit", "0:00", "20:00", "")
    (row,) = parse_sacct("4001|CANCELLED by 0|0:15|00:00:41|2026-12-01T10:00:00|Unknown|n1\n")
    assert (row.final_state, row.exit_code) == ("CANCELLED", "0:15")
