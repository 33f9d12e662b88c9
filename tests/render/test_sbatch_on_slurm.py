"""The rendered job script on a real Slurm cluster, training the tiny SD1.5 model for real.

Needs the SLURM lab (slurm_lab.py: Slurm packages, root) and sd-scripts with its Python
(sdlab.py); skipped with the reason where either is missing. A run folder is made from a plan
(`make_run`), its job script rendered by `render_sbatch` from the same argv a local launch
runs, submitted with sbatch, and followed until Slurm says COMPLETED; then a 2-point job array
with one task at a time, and scancel of a running job (the trainer must be gone within seconds).
About 4-6 minutes and 8 GB on a 2-core machine.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan
from slurm_lab import slurm_cluster_fixture  # noqa: F401 (the fixture slurm_cluster)

from kohya_plan.plan.slurm import SlurmSection
from kohya_plan.planning import check_plan, make_run
from kohya_plan.render.command import accelerate_prefix, launcher_flags
from kohya_plan.render.sbatch import (
    SbatchRun,
    render_sbatch,
    render_sbatch_array,
    without_machine_flags,
)

if TYPE_CHECKING:
    from slurm_lab import SlurmCluster

    from kohya_plan.plan import Plan

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.e2e,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]

# the lab node has 2 cores and ~20 GB for jobs; one tiny-SD1.5 trainer peaks at ~7.5 GB
# sd-scripts' progress bar after its first optimizer step: "steps:  2%|▏   | 1/80 ["
FIRST_STEP = re.compile(r"steps: +\d+%\|[^|]*\| *[1-9]\d*/\d+ ")
SHIM = Path(__file__).resolve().parent.parent / "labs" / "cpu_ddp"
SLURM = SlurmSection(gpus_per_node=0, cpus_per_task=2, mem="12G", time="20")


@pytest.fixture(scope="module")
def lab() -> dict[str, Path]:
    cache = sdlab.lab_cache_dir()
    return {"model": sdlab.tiny_sd15(cache), "tokenizer": sdlab.tokenizer_cache(cache)}


def _plan(root: Path, lab: dict[str, Path], **training: Any) -> Path:
    make_images(root / "data" / "1_testchar", [(64, 64), (64, 64)], caption="testchar, red")
    return write_plan(
        root,
        base_plan(
            model={"base": str(lab["model"]), "tokenizer_cache_dir": str(lab["tokenizer"])},
            dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
            network={"dim": 4, "alpha": 2},
            optimizer={"type": "AdamW", "scheduler": "constant"},
            training={
                "epochs": 1,
                "mixed_precision": "no",
                "save_every_n_epochs": 1,
                "max_data_loader_n_workers": 0,
                **training,
            },
            output={"save_precision": "float"},
            launch={"sd_scripts": str(sdlab.sd_scripts_dir()), "python": str(sdlab.sd_python())},
        ),
    )


def _made(plan_path: Path) -> tuple[Path, Plan, dict[str, Any]]:
    report = check_plan(plan_path)
    assert report.ok, [str(f) for f in report.findings]
    rendered = make_run(report)
    launch = rendered.launch
    return (
        rendered.run_dir,
        report.plan,
        {
            "argv": launch.argv,
            "cwd": launch.cwd,
            "env": launch.env,
            "prefix": launch.prefix,
            "flags": launch.flags,
        },
    )


def _parts(plan: Plan, launch: dict[str, Any]) -> dict[str, Any]:
    """render_sbatch's inputs, taken apart from the exact argv a local launch runs."""
    prefix, flags, argv = launch["prefix"], launch["flags"], launch["argv"]
    assert prefix == accelerate_prefix(plan.launch.python)
    assert flags[2:] == launcher_flags(plan)  # after the run's own --config_file pair
    assert argv[: len(prefix) + len(flags)] == prefix + flags
    return {
        "accelerate_prefix": prefix,
        "launcher_flags_without_machine_flags": without_machine_flags(flags),
        "script_args": argv[len(prefix) + len(flags) :],
        "cwd": Path(launch["cwd"]),
        "env": launch["env"],
    }


def _trainers(marker: str) -> list[int]:
    """PIDs of processes whose command line mentions `marker` (the run's config path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline and b"train_network.py" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_job_script_trains_and_completes(
    slurm_cluster: SlurmCluster,
    lab: dict[str, Path],
    tmp_path: Path,
) -> None:
    run_dir, plan, launch = _made(_plan(tmp_path, lab))
    script = run_dir / "job.sbatch"
    script.write_text(
        render_sbatch(
            SLURM, run_dir=run_dir, save_state=False, job_name="testlora", **_parts(plan, launch)
        ),
        encoding="utf-8",
    )
    t0 = time.monotonic()
    job = slurm_cluster.sbatch(script)
    states = slurm_cluster.wait_final(job, timeout=600)
    took = time.monotonic() - t0
    log = (run_dir / f"slurm-{job}.out").read_text(encoding="utf-8", errors="replace")
    print(f"job {job}: {states} after {took:.1f} s")
    assert states == {job: "COMPLETED"}, log[-3000:]
    rows = slurm_cluster.wait_accounted(job)
    assert [r["State"] for r in rows if r["JobID"] == job] == ["COMPLETED"]
    # the log is sd-scripts' whole output: progress, its own end, and the script's lines
    assert "kohya-plan: job" in log
    assert "1 machine(s) x 1 process(es)" in log
    assert "steps: 100%" in log
    assert "model saved." in log
    assert "the trainer ended with exit status 0" in log
    assert (tmp_path / "out" / "testlora.safetensors").stat().st_size > 0


def test_job_array_runs_one_point_at_a_time(
    slurm_cluster: SlurmCluster,
    lab: dict[str, Path],
    tmp_path: Path,
) -> None:
    made = []
    for lr in ("1e-4", "2e-4"):
        root = tmp_path / f"lr{lr}"
        plan_path = _plan(root, lab)
        text = plan_path.read_text(encoding="utf-8").replace("unet_lr = 0.0001", f"unet_lr = {lr}")
        plan_path.write_text(text, encoding="utf-8")
        made.append((root, *_made(plan_path)))
    parts = _parts(made[0][2], made[0][3])
    runs = [
        SbatchRun(run_dir, _parts(plan, launch)["script_args"]) for _, run_dir, plan, launch in made
    ]
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    script = sweep / "job.sbatch"
    del parts["script_args"]
    script.write_text(
        render_sbatch_array(
            SLURM, sweep_dir=sweep, runs=runs, max_parallel=1, save_state=False, **parts
        ),
        encoding="utf-8",
    )
    t0 = time.monotonic()
    job = slurm_cluster.sbatch(script)
    waited_for_limit = False
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        out = slurm_cluster.run("squeue", "-h", "-r", "-j", job, "-o", "%i %T %r")
        waited_for_limit |= "JobArrayTaskLimit" in out
        if not out.strip():
            break
        time.sleep(1)
    took = time.monotonic() - t0
    states = slurm_cluster.wait_final(job, timeout=60, tasks=2)
    print(f"array {job}: {states} after {took:.1f} s; JobArrayTaskLimit seen: {waited_for_limit}")
    assert states == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    assert waited_for_limit, "the second point should wait for the first (%1)"
    for index, (root, run_dir, _, _) in enumerate(made):
        log = (run_dir / f"slurm-{job}_{index}.out").read_text(encoding="utf-8", errors="replace")
        assert "model saved." in log
        assert (root / "out" / "testlora.safetensors").is_file()
    # each point trained with its own learning rate
    configs = [(run_dir / "config.toml").read_text(encoding="utf-8") for _, run_dir, _, _ in made]
    assert "unet_lr = 0.0001" in configs[0]
    assert "unet_lr = 0.0002" in configs[1]


def test_scancel_stops_the_trainer_at_once(
    slurm_cluster: SlurmCluster,
    lab: dict[str, Path],
    tmp_path: Path,
) -> None:
    run_dir, plan, launch = _made(_plan(tmp_path, lab, epochs=40))
    script = run_dir / "job.sbatch"
    script.write_text(
        render_sbatch(SLURM, run_dir=run_dir, save_state=False, **_parts(plan, launch)),
        encoding="utf-8",
    )
    job = slurm_cluster.sbatch(script)
    log_path = run_dir / f"slurm-{job}.out"
    deadline = time.monotonic() + 300
    while not FIRST_STEP.search(log_path.read_text(errors="replace") if log_path.exists() else ""):
        assert time.monotonic() < deadline, "the trainer never finished a step"
        assert slurm_cluster.scontrol_states(job).get(job) in ("PENDING", "RUNNING")
        time.sleep(0.5)
    marker = str(run_dir / "config.toml")
    assert _trainers(marker), "no trainer process found"
    t0 = time.monotonic()
    slurm_cluster.run("scancel", job)
    while _trainers(marker):
        assert time.monotonic() - t0 < 30, "the trainer outlived scancel by 30 s"
        time.sleep(0.1)
    gone = time.monotonic() - t0
    states = slurm_cluster.wait_final(job, timeout=60)
    rows = slurm_cluster.wait_accounted(job)
    print(f"scancel {job}: trainer gone after {gone:.1f} s; {states}; sacct {rows}")
    assert states == {job: "CANCELLED"}
    assert gone < 10
    assert [r["State"].split()[0] for r in rows if r["JobID"] == job] == ["CANCELLED"]
    assert not (tmp_path / "out" / "testlora.safetensors").exists()


def test_two_machines_as_two_tasks_on_the_node(
    slurm_cluster: SlurmCluster,
    lab: dict[str, Path],
    tmp_path: Path,
) -> None:
    # Two Slurm tasks on the one node stand for two machines: machine ranks from SLURM_PROCID,
    # rank 0's address from the node list, one process each (the CPU shim: see labs/cpu_ddp).
    run_dir, plan, launch = _made(_plan(tmp_path, lab))
    parts = _parts(plan, launch)
    parts["env"] = {**parts["env"], "PYTHONPATH": str(SHIM)}
    slurm = SLURM.model_copy(update={"cpus_per_task": 1})
    script = run_dir / "job.sbatch"
    script.write_text(
        render_sbatch(slurm, run_dir=run_dir, save_state=False, **parts), encoding="utf-8"
    )
    t0 = time.monotonic()
    job = slurm_cluster.sbatch(script, "--ntasks-per-node=2")
    states = slurm_cluster.wait_final(job, timeout=600)
    took = time.monotonic() - t0
    log = (run_dir / f"slurm-{job}.out").read_text(encoding="utf-8", errors="replace")
    print(f"two machines {job}: {states} after {took:.1f} s")
    assert states == {job: "COMPLETED"}, log[-3000:]
    assert "2 machine(s) x 1 process(es), head localhost" in log
    assert "cpu-ddp-shim: rank 0: not wrapping" in log
    # machine 1's trainer writes beside the job's log: one progress bar per log
    other = (run_dir / f"slurm-{job}.machine1.out").read_text(encoding="utf-8", errors="replace")
    assert "cpu-ddp-shim: rank 1: not wrapping" in other
    assert "cpu-ddp-shim: rank 1" not in log
    # 2 images × 1 repeat = 2 batches; each of the 2 processes sees 1 batch per epoch
    assert "num batches per epoch / 1epochのバッチ数: 1" in log
    assert (tmp_path / "out" / "testlora.safetensors").is_file()


def _job_fields(cluster: SlurmCluster, job: str) -> dict[str, str]:
    out = cluster.run("scontrol", "show", "job", "-o", job)
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def test_time_limit_warning_requeues_and_resumes(
    slurm_cluster: SlurmCluster,
    lab: dict[str, Path],
    tmp_path: Path,
) -> None:
    # Slurm's warning before the time limit (--signal=B:USR1@N) is sent here at once with
    # `scancel --batch --signal=USR1`; the requeued job's wait (BeginTime, ~140 s) is cut short.
    run_dir, plan, launch = _made(_plan(tmp_path, lab, epochs=6, save_state=True))
    script = run_dir / "job.sbatch"
    script.write_text(
        render_sbatch(
            SLURM,
            run_dir=run_dir,
            save_state=True,
            output_dir=plan.output.dir,
            output_name=plan.output.name,
            **_parts(plan, launch),
        ),
        encoding="utf-8",
    )
    job = slurm_cluster.sbatch(script)
    state = plan.output.dir / "testlora-000002-state"
    deadline = time.monotonic() + 300
    while not (state / "random_states_0.pkl").is_file():
        assert time.monotonic() < deadline, "no state of epoch 2"
        assert slurm_cluster.scontrol_states(job).get(job) in ("PENDING", "RUNNING")
        time.sleep(0.5)
    t0 = time.monotonic()
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job)
    while _job_fields(slurm_cluster, job).get("Restarts") != "1":
        assert time.monotonic() - t0 < 60, "the job was not requeued"
        time.sleep(0.5)
    requeued = time.monotonic() - t0
    slurm_cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    states = slurm_cluster.wait_final(job, timeout=600)
    log = (run_dir / f"slurm-{job}.out").read_text(encoding="utf-8", errors="replace")
    print(f"requeue {job}: requeued {requeued:.1f} s after USR1; {states}")
    assert states == {job: "COMPLETED"}, log[-3000:]
    first, _, second = log.partition("(start 2)")
    assert "the time limit is 120 s away: stopping the trainer" in first
    assert f"requeueing job {job}; it resumes from the newest state" in first
    resumed = re.search(r"resuming from (\S+)", second)
    assert resumed is not None, second[:2000]
    epoch = int(resumed.group(1).rsplit("-", 2)[-2])
    assert epoch >= 2
    # it went on with the epoch after the state's and ended at the planned last epoch
    assert f"epoch {epoch + 1}/6" in second
    assert f"epoch {epoch}/6" not in second
    assert "epoch 6/6" in second
    assert "model saved." in second
    rows = slurm_cluster.run("sacct", "-D", "-X", "-j", job, "-n", "-P", "-o", "State").split()
    assert rows == ["REQUEUED", "COMPLETED"]
