"""`submit`, `status`, `summary`, `sweep --slurm` and `stop` on a real Slurm cluster, training the
tiny SD1.5 model for real.

Needs the SLURM lab (tests/slurm_lab.py: Slurm packages, root) and sd-scripts with its Python
(sdlab.py); skipped with the reason where either is missing. The commands run as a user runs
them (the CLI, in-process; `SLURM_CONF` points at the lab). About 3-5 minutes, 8 GB.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan
from slurm_lab import slurm_cluster_fixture  # noqa: F401 (the fixture slurm_cluster)

from kohya_plan.workflows.slurm import run_status
from kohya_plan.workflows.sweep import sweep_status

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result
    from slurm_lab import SlurmCluster

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.e2e,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]

# the lab node: 2 cores, ~20 GB for jobs; a tiny-SD1.5 trainer peaks at ~7.5 GB
SLURM = {"gpus_per_node": 0, "cpus_per_task": 2, "mem": "12G", "time": "20"}


def _plan(root: Path, *, epochs: int = 1, **sections: dict[str, Any]) -> Path:
    cache = sdlab.lab_cache_dir()
    model, tokenizer = sdlab.tiny_sd15(cache), sdlab.tokenizer_cache(cache)
    make_images(root / "data" / "1_testchar", [(64, 64), (64, 64)], caption="testchar, red")
    return write_plan(
        root,
        base_plan(
            model={"base": str(model), "tokenizer_cache_dir": str(tokenizer)},
            dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
            network={"dim": 4, "alpha": 2},
            optimizer={"type": "AdamW", "scheduler": "constant"},
            training={
                "epochs": epochs,
                "mixed_precision": "no",
                "save_every_n_epochs": 1,
                "max_data_loader_n_workers": 0,
            },
            output={"save_precision": "float"},
            launch={"sd_scripts": str(sdlab.sd_scripts_dir()), "python": str(sdlab.sd_python())},
            slurm=SLURM,
            **sections,
        ),
    )


def _follow(run_dir: Path, timeout: float = 600) -> tuple[str, list[str]]:
    """Ask `status` every half second until the run ended; its end state and what was seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run_status(run_dir)
        text = f"{status.state}: {status.detail}"
        if not seen or seen[-1] != text:
            seen.append(text)
        if status.state in ("succeeded", "failed", "stopped"):
            return status.state, seen
        time.sleep(0.5)
    pytest.fail(f"{run_dir} did not end: {seen[-5:]}")


def test_submit_follow_with_status_and_summarise(
    slurm_cluster: SlurmCluster, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    t0 = time.monotonic()
    result = run_cli("submit", _plan(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    run_dir, job = Path(done["run_dir"]), done["job_id"]
    state, seen = _follow(run_dir)
    took = time.monotonic() - t0
    print(f"job {job}: {state} after {took:.1f} s; status said:", *seen, sep="\n  ")
    assert state == "succeeded", seen[-3:]
    assert any(s.startswith("running: ") for s in seen)
    assert seen[-1].startswith(f"succeeded: job {job} COMPLETED (exit code 0:0)")
    shown = run_cli("status", run_dir).output
    assert shown.startswith("succeeded: ")
    summary = run_cli("summary", run_dir)
    assert summary.exit_code == 0, summary.output
    assert "Run succeeded (exit status 0)" in summary.output
    data = json.loads((run_dir / "summary.json").read_text())
    assert (data["steps_done"], data["steps_total"]) == (2, 2)
    assert data["wall_s"] is not None
    assert (tmp_path / "out" / "testlora.safetensors").stat().st_size > 0
    report = run_cli("report", run_dir)
    assert report.exit_code == 0, report.output
    assert 'data-outcome="succeeded"' in (run_dir / "report.html").read_text(encoding="utf-8")


def test_a_sweep_as_a_job_array_one_point_at_a_time(
    slurm_cluster: SlurmCluster, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    plan = _plan(tmp_path)
    t0 = time.monotonic()
    result = run_cli("sweep", plan, "--grid", "network.dim=4,8", "--slurm", "--max-parallel", "1")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert "#SBATCH --array=0-1%1" in (folder / "job.sbatch").read_text(encoding="utf-8")
    waited = False
    deadline = time.monotonic() + 900
    rows: list[tuple[str, Any]] = []
    while time.monotonic() < deadline:
        rows = sweep_status(folder)
        waited |= any(s.reason == "JobArrayTaskLimit" for _, s in rows)
        if all(s.state in ("succeeded", "failed", "stopped") for _, s in rows):
            break
        time.sleep(1)
    took = time.monotonic() - t0
    print(f"sweep {folder.name}: {[(p, s.state) for p, s in rows]} after {took:.1f} s")
    assert [(p, s.state) for p, s in rows] == [("0 dim4", "succeeded"), ("1 dim8", "succeeded")]
    assert waited, "the second point should wait for the first (%1)"
    shown = run_cli("status", folder).output
    assert "2 succeeded" in shown
    for dim in (4, 8):
        assert (tmp_path / "out" / f"testlora-dim{dim}.safetensors").is_file()
    compare = run_cli("compare", folder)
    assert compare.exit_code == 0, compare.output
    assert "dim 4" in (folder / "compare.html").read_text(encoding="utf-8")


def test_stop_cancels_a_running_job(
    slurm_cluster: SlurmCluster, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    result = run_cli("submit", _plan(tmp_path, epochs=40), "--json")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    deadline = time.monotonic() + 300
    while True:
        status = run_status(run_dir)
        if status.state == "running" and status.step >= 1:
            break
        assert status.state in ("pending", "running"), status
        assert time.monotonic() < deadline, "the trainer never finished a step"
        time.sleep(0.5)
    t0 = time.monotonic()
    stopped = run_cli("stop", run_dir)
    assert stopped.exit_code == 0, stopped.output
    state, seen = _follow(run_dir, timeout=120)
    took = time.monotonic() - t0
    print(f"stop: {state} {took:.1f} s after `kohya-plan stop`:", *seen, sep="\n  ")
    assert state == "stopped"
    assert "CANCELLED" in seen[-1]
    assert "by `kohya-plan stop`" in seen[-1]
    assert took < 60
    assert not (tmp_path / "out" / "testlora.safetensors").exists()
