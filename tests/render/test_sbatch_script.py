"""The job script's own logic, run by bash with stand-ins for srun and scontrol (no Slurm).

What the trainer is started with on each machine (machine rank, head node, process count,
resume state), and what the script does on the signals Slurm sends it (USR1 before the time
limit: stop the trainer, requeue with save_state; SIGTERM from scancel: stop the trainer).
The same scripts run on a real cluster in test_sbatch_on_slurm.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from kohya_plan.plan.slurm import SlurmSection
from kohya_plan.render.sbatch import SbatchRun, render_sbatch, render_sbatch_array

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("bash") is None or sys.platform == "win32", reason="needs bash (POSIX)"
    ),
]

# srun: run the command once per task with SLURM_PROCID set, like one task per machine;
# a single task is exec'ed, so that signals to srun reach it as srun forwards them
FAKE_SRUN = """#!/bin/bash
echo "srun $*" >> "$FAKE_LOG/srun.txt"
while [ "${1#-}" != "$1" ]; do shift; done
n=${SLURM_NTASKS:-1}
if [ "$n" = 1 ]; then SLURM_PROCID=0 exec "$@"; fi
for ((i = 0; i < n; i++)); do SLURM_PROCID=$i "$@" & done
wait
"""
# scancel --signal=TERM JOB: signal the tasks of the job's steps (here: the fake launcher)
FAKE_SCANCEL = """#!/bin/bash
echo "scancel $*" >> "$FAKE_LOG/scancel.txt"
[ "$1" = --signal=TERM ] && kill -TERM "$(cat "$FAKE_LOG"/launcher.pid)"
"""
FAKE_SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$FAKE_LOG/scontrol.txt"
if [ "$1 $2" = "show hostnames" ]; then printf 'gpu-node-07\\ngpu-node-08\\n'; fi
"""
# the "accelerate launcher": writes its argv, one per line, then trains until told otherwise
FAKE_LAUNCHER = """#!/bin/bash
echo $$ > "$FAKE_LOG/launcher.pid"
printf '%s\\n' "$@" > "$FAKE_LOG/argv.$SLURM_PROCID"
echo "cwd=$PWD HF_HOME=$HF_HOME PYTHONUNBUFFERED=$PYTHONUNBUFFERED" > "$FAKE_LOG/env.$SLURM_PROCID"
trap 'echo TERM > "$FAKE_LOG/signal.$SLURM_PROCID"; exit 143' TERM
echo "trainer output of machine $SLURM_PROCID"
if [ -n "${FAKE_TRAIN_SECONDS:-}" ]; then
  touch "$FAKE_LOG/started.$SLURM_PROCID"
  for ((i = 0; i < FAKE_TRAIN_SECONDS * 10; i++)); do sleep 0.1; done
fi
exit "${FAKE_EXIT:-0}"
"""


@pytest.fixture
def fake_slurm(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (
        ("srun", FAKE_SRUN),
        ("scontrol", FAKE_SCONTROL),
        ("scancel", FAKE_SCANCEL),
        ("launcher", FAKE_LAUNCHER),
    ):
        (bin_dir / name).write_text(text, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.mkdir()
    return {"bin": bin_dir, "log": log, "sd": _mkdir(tmp_path / "sd scripts")}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _env(fake: dict[str, Path], **slurm: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(
        PATH=f"{fake['bin']}{os.pathsep}{env['PATH']}",
        FAKE_LOG=str(fake["log"]),
        SLURM_JOB_ID="4321",
        SLURM_JOB_NODELIST="gpu-node-[07-08]",
        SLURM_NNODES="1",
    )
    env.update(slurm)
    return env


def _script(fake: dict[str, Path], tmp_path: Path, slurm: SlurmSection, **kw: object) -> Path:
    run = tmp_path / "run dir"
    run.mkdir(exist_ok=True)
    text = render_sbatch(
        slurm,
        run_dir=run,
        accelerate_prefix=[str(fake["bin"] / "launcher")],
        launcher_flags_without_machine_flags=["--mixed_precision", "bf16"],
        script_args=["/sd/train_network.py", "--config_file", str(run / "config.toml")],
        cwd=fake["sd"],
        env={"HF_HOME": "/hf home"},
        **kw,  # type: ignore[arg-type]
    )
    path = run / "job.sbatch"
    path.write_text(text, encoding="utf-8")
    return path


def _argv(fake: dict[str, Path], rank: int) -> list[str]:
    return (fake["log"] / f"argv.{rank}").read_text(encoding="utf-8").splitlines()


def test_two_machines_get_their_rank_and_the_head_node(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    script = _script(fake_slurm, tmp_path, SlurmSection(nodes=2, gpus_per_node=4), save_state=False)
    env = _env(fake_slurm, SLURM_NNODES="2", SLURM_NTASKS="2", SLURM_CPUS_PER_TASK="16")
    res = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    tail = ["--mixed_precision", "bf16", "/sd/train_network.py", "--config_file"]
    for rank in (0, 1):
        argv = _argv(fake_slurm, rank)
        assert argv[:13] == [
            "--machine_rank",
            str(rank),
            "--num_machines",
            "2",
            "--num_processes",
            "8",
            "--multi_gpu",
            "--main_process_ip",
            "gpu-node-07",
            "--main_process_port",
            str(20000 + 4321 % 10000),
            *tail[:2],
        ]
        assert argv[13:] == [*tail[2:], str(tmp_path / "run dir" / "config.toml")]
    env_line = (fake_slurm["log"] / "env.0").read_text(encoding="utf-8")
    assert f"cwd={fake_slurm['sd']}" in env_line
    assert "HF_HOME=/hf home PYTHONUNBUFFERED=1" in env_line
    srun = (fake_slurm["log"] / "srun.txt").read_text(encoding="utf-8")
    assert srun.startswith("srun --kill-on-bad-exit=1 --cpus-per-task=16 bash -c")
    assert "machine(s) x 4 process(es), head gpu-node-07" in res.stdout
    assert "the trainer ended with exit status 0" in res.stdout


def test_machines_other_than_0_write_their_output_beside_the_jobs_log(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    # one progress bar and one machine's failure per log: machine 0 in the job's own log
    script = _script(fake_slurm, tmp_path, SlurmSection(nodes=3, gpus_per_node=1), save_state=False)
    env = _env(fake_slurm, SLURM_NNODES="3", SLURM_NTASKS="3")
    res = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "trainer output of machine 0" in res.stdout
    assert "machine 1" not in res.stdout
    run = tmp_path / "run dir"
    for machine in (1, 2):
        text = (run / f"slurm-4321.machine{machine}.out").read_text(encoding="utf-8")
        assert text == f"trainer output of machine {machine}\n"


def test_one_process_has_no_multi_gpu_and_the_batch_shell_without_ntasks(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    # SLURM_NTASKS is unset in a batch shell without a task count: SLURM_NNODES counts
    script = _script(fake_slurm, tmp_path, SlurmSection(), save_state=False)
    res = subprocess.run(
        ["bash", script], env=_env(fake_slurm), capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    argv = _argv(fake_slurm, 0)
    assert argv[:8] == [
        "--machine_rank",
        "0",
        "--num_machines",
        "1",
        "--num_processes",
        "1",
        "--mixed_precision",
        "bf16",
    ]
    assert "--multi_gpu" not in argv
    srun = (fake_slurm["log"] / "srun.txt").read_text(encoding="utf-8")
    assert "--cpus-per-task" not in srun


def test_trainer_failure_is_the_jobs_exit_status(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    script = _script(fake_slurm, tmp_path, SlurmSection(), save_state=False)
    env = _env(fake_slurm, FAKE_EXIT="3")
    res = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 3
    assert "the trainer ended with exit status 3" in res.stdout


def _state(
    out: Path, name: str, age: float, epoch: int = 1, step: int = 4, *, complete: bool = True
) -> Path:
    state = out / name
    state.mkdir(parents=True)
    (state / "train_state.json").write_text(f'{{"current_epoch": {epoch}, "current_step": {step}}}')
    if complete:
        (state / "random_states_0.pkl").write_bytes(b"rng")
    stamp = time.time() - age
    os.utime(state, (stamp, stamp))
    return state


def _resume_argv(fake: dict[str, Path], tmp_path: Path, out: Path) -> list[str]:
    script = _script(
        fake, tmp_path, SlurmSection(), save_state=True, output_dir=out, output_name="testlora"
    )
    res = subprocess.run(
        ["bash", script], env=_env(fake), capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return _argv(fake, 0)


def test_resumes_from_the_newest_epoch_state_at_the_next_epoch(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "lora out"
    _state(out, "testlora-000001-state", age=300, epoch=1, step=2)
    # a state saved by a resumed run: sd-scripts wrote the steps since the resume (18 of 50)
    newest = _state(out, "testlora-000025-state", age=100, epoch=25, step=18)
    _state(out, "testlora2-000030-state", age=10, epoch=30)  # another output name: not ours
    _state(out, "testlora-state", age=5, epoch=40)  # the final state: the run had ended
    (out / "testlora-000026-state").mkdir()  # no train_state.json: not a state
    # saving cut short by the time limit: train_state.json is there, random_states_0.pkl not
    _state(out, "testlora-000027-state", age=1, epoch=27, complete=False)
    argv = _resume_argv(fake_slurm, tmp_path, out)
    assert argv[-5:] == [
        "--resume",
        str(newest),
        "--skip_until_initial_step",
        "--initial_epoch",
        "26",
    ]


def test_a_step_state_resumes_by_its_own_step_count(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "lora out"
    _state(out, "testlora-000001-state", age=300)
    newest = _state(out, "testlora-step00000008-state", age=100, epoch=2, step=8)
    argv = _resume_argv(fake_slurm, tmp_path, out)
    assert argv[-3:] == ["--resume", str(newest), "--skip_until_initial_step"]


def test_no_state_yet_starts_fresh(fake_slurm: dict[str, Path], tmp_path: Path) -> None:
    script = _script(
        fake_slurm,
        tmp_path,
        SlurmSection(),
        save_state=True,
        output_dir=tmp_path / "missing",
        output_name="testlora",
    )
    res = subprocess.run(
        ["bash", script], env=_env(fake_slurm), capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "--resume" not in _argv(fake_slurm, 0)


def _signal_while_training(
    fake: dict[str, Path], script: Path, sig: signal.Signals
) -> subprocess.CompletedProcess[str]:
    env = _env(fake, FAKE_TRAIN_SECONDS="30")
    proc = subprocess.Popen(
        ["bash", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 20
    while not (fake["log"] / "started.0").exists():
        assert time.monotonic() < deadline, "the fake trainer never started"
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 5, "the trainer was not stopped at once"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


def test_time_limit_signal_stops_the_trainer(fake_slurm: dict[str, Path], tmp_path: Path) -> None:
    script = _script(fake_slurm, tmp_path, SlurmSection(time="10"), save_state=False)
    res = _signal_while_training(fake_slurm, script, signal.SIGUSR1)
    assert (fake_slurm["log"] / "signal.0").read_text().strip() == "TERM"
    assert "the time limit is 120 s away: stopping the trainer" in res.stdout
    scancel = (fake_slurm["log"] / "scancel.txt").read_text()
    assert scancel == "scancel --signal=TERM 4321\n"
    assert res.returncode == 143
    assert not (fake_slurm["log"] / "scontrol.txt").read_text().count("requeue")


def test_time_limit_signal_with_save_state_requeues(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    script = _script(
        fake_slurm,
        tmp_path,
        SlurmSection(time="10"),
        save_state=True,
        output_dir=tmp_path / "out",
        output_name="testlora",
    )
    res = _signal_while_training(fake_slurm, script, signal.SIGUSR1)
    assert (fake_slurm["log"] / "signal.0").read_text().strip() == "TERM"
    assert "requeueing job 4321" in res.stdout
    scontrol = (fake_slurm["log"] / "scontrol.txt").read_text().splitlines()
    assert scontrol[-1] == "scontrol requeue 4321"


def test_scancel_sigterm_stops_the_trainer(fake_slurm: dict[str, Path], tmp_path: Path) -> None:
    script = _script(
        fake_slurm,
        tmp_path,
        SlurmSection(),
        save_state=True,
        output_dir=tmp_path / "out",
        output_name="testlora",
    )
    res = _signal_while_training(fake_slurm, script, signal.SIGTERM)
    assert (fake_slurm["log"] / "signal.0").read_text().strip() == "TERM"
    assert "SIGTERM (scancel or the time limit): stopping the trainer" in res.stdout
    assert "requeue" not in (fake_slurm["log"] / "scontrol.txt").read_text()


def test_array_task_picks_its_run_and_logs_into_it(
    fake_slurm: dict[str, Path], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    runs = [SbatchRun(_mkdir(sweep / f"run{i}"), ["/sd/t.py", f"--point={i}"]) for i in range(3)]
    text = render_sbatch_array(
        SlurmSection(),
        sweep_dir=sweep,
        runs=runs,
        max_parallel=2,
        accelerate_prefix=[str(fake_slurm["bin"] / "launcher")],
        launcher_flags_without_machine_flags=[],
        cwd=fake_slurm["sd"],
        env={},
        save_state=False,
    )
    assert "#SBATCH --array=0-2%2\n" in text
    script = sweep / "job.sbatch"
    script.write_text(text, encoding="utf-8")
    env = _env(fake_slurm, SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="1")
    res = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _argv(fake_slurm, 0)[-2:] == ["/sd/t.py", "--point=1"]
    log = (sweep / "run1" / "slurm-77_1.out").read_text(encoding="utf-8")
    assert f"of run {sweep / 'run1'}" in log
    assert "exit status 0" in log
    env["SLURM_ARRAY_TASK_ID"] = "5"
    bad = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "has the runs 0-2, not array task '5'" in bad.stderr
