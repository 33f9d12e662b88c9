"""`kohya-plan launch` past one process, for real on the tiny SD1.5 model (CPU): two machines on
localhost, a machine that never starts, a killed rank, Ctrl-C of the whole tree, DeepSpeed ZeRO-2.

As in test_cpu_ddp_launch.py, the test-only CPU DDP shim goes on PYTHONPATH (not for DeepSpeed,
which needs none). Two "machines" are two `launch` processes with machine_rank 0 and 1 (read from
$NODE_RANK at run time). Each test is one short run, 20-90 s and up to ~10 GB; skipped where
sd-scripts or its Python are missing (and DeepSpeed where it is not installed in that Python).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sdlab.skip_reason() is not None, reason=str(sdlab.skip_reason())),
]

SHIM = Path(__file__).resolve().parent / "cpu_ddp"
FIRST_STEPS = re.compile(r"steps: +\d+%\|[^|]*\| *[2-9]\d*/\d+ ")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plan(root: Path, out: Path, *, training: dict[str, Any], launch: dict[str, Any]) -> Path:
    cache = sdlab.lab_cache_dir()
    model, tokenizer = sdlab.tiny_sd15(cache), sdlab.tokenizer_cache(cache)
    make_images(root / "data" / "2_testchar", [(64, 64)] * 4, caption="testchar, red")
    data = base_plan(
        model={"base": str(model), "tokenizer_cache_dir": str(tokenizer)},
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128},
        network={"dim": 4, "alpha": 2},
        optimizer={"type": "AdamW", "scheduler": "constant"},
        training={
            "mixed_precision": "no",
            "save_every_n_epochs": 1,
            "max_data_loader_n_workers": 0,
            **training,
        },
        output={"save_precision": "float", "dir": str(out)},
        launch={
            "sd_scripts": str(sdlab.sd_scripts_dir()),
            "python": str(sdlab.sd_python()),
            "num_cpu_threads_per_process": 1,
            **launch,
        },
    )
    if "max_train_steps" in training:
        data["training"].pop("epochs")
    return write_plan(root, data)


def _launch(plan: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kohya_plan", "launch", str(plan), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SHIM), **env},
    )


def _run_dir(root: Path) -> Path:
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


def _summary(root: Path) -> dict[str, Any]:
    return dict(json.loads((_run_dir(root) / "summary.json").read_text(encoding="utf-8")))


def test_two_machines_on_localhost_train_together_and_machine_0_saves(tmp_path: Path) -> None:
    # 4 images × 2 repeats = 8 batches; 2 processes in all: 4 per process and epoch, 2 epochs
    # each machine its own output folder (as on two real machines): only machine 0's gets files
    launch = {
        "num_processes": 2,
        "num_machines": 2,
        "machine_rank": "$NODE_RANK",
        "main_process_ip": "127.0.0.1",
        "main_process_port": _port(),
        "rdzv_timeout": 120,
    }
    plans = [
        _plan(tmp_path / f"m{i}", tmp_path / f"out{i}", training={"epochs": 2}, launch=launch)
        for i in (0, 1)
    ]
    t0 = time.monotonic()
    procs = [_launch(p, NODE_RANK=str(i)) for i, p in enumerate(plans)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    took = time.monotonic() - t0
    print(f"two machines: exit {[p.returncode for p in procs]} after {took:.1f} s")
    for proc, text in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, text[-3000:]
    zero, one = _summary(tmp_path / "m0"), _summary(tmp_path / "m1")
    for summary in (zero, one):
        assert summary["outcome"] == "succeeded"
        assert (summary["steps_done"], summary["steps_total"]) == (8, 8)
        assert summary["epochs_total"] == 2
    assert one["machine_rank"] == 1
    assert "this is machine 1 of 2" in outputs[1]
    assert "this is machine 1 of 2" in one["notes"][0]
    assert zero["notes"][0].startswith("2 processes on 2 machines: only rank 0 writes")
    for i in (0, 1):
        log = (_run_dir(tmp_path / f"m{i}") / "train.log").read_text(errors="replace")
        assert "num batches per epoch / 1epochのバッチ数: 4" in log
        argv = json.loads((_run_dir(tmp_path / f"m{i}") / "exit.json").read_text())["argv"]
        assert argv[argv.index("--machine_rank") + 1] == str(i)
    # only machine 0 saved: one file per epoch, the final one, and its epoch copy (T29)
    assert not list((tmp_path / "out1").glob("*.safetensors"))
    assert sorted(p.name for p in (tmp_path / "out0").glob("*.safetensors")) == [
        "testlora-000001.safetensors",
        "testlora-000002.safetensors",
        "testlora.safetensors",
    ]
    # only rank 0 wrote TensorBoard logs
    assert list((_run_dir(tmp_path / "m0") / "logs").rglob("events.out.tfevents.*"))
    assert not list((_run_dir(tmp_path / "m1") / "logs").rglob("events.out.tfevents.*"))


def test_a_machine_that_never_starts_fails_the_run_within_the_rendezvous_timeout(
    tmp_path: Path,
) -> None:
    plan = _plan(
        tmp_path,
        tmp_path / "out",
        training={"epochs": 1},
        launch={
            "num_processes": 2,
            "num_machines": 2,
            "machine_rank": 0,
            "main_process_ip": "127.0.0.1",
            "main_process_port": _port(),
            "rdzv_timeout": 20,
        },
    )
    t0 = time.monotonic()
    proc = _launch(plan)
    text = proc.communicate(timeout=300)[0]
    took = time.monotonic() - t0
    print(f"machine 1 missing: exit {proc.returncode} after {took:.1f} s")
    assert proc.returncode == 3, text[-3000:]
    assert took < 60  # torch's own default would have waited 600 s
    summary = _summary(tmp_path)
    assert summary["cause"]["kind"] == "rendezvous_timeout"
    assert "1/2 clients joined" in summary["cause"]["message"]
    assert "start every machine (machine_rank 0 to num_machines-1)" in summary["cause"]["advice"]
    assert "Cause: rendezvous_timeout" in text


def _wait_for_steps(run_root: Path, proc: subprocess.Popen[str], timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the launch ended early"
        runs = list((run_root / "runs").glob("*")) if (run_root / "runs").is_dir() else []
        log = runs[0] / "train.log" if runs else None
        if (
            log is not None
            and log.is_file()
            and FIRST_STEPS.search(log.read_text(errors="replace"))
        ):
            return runs[0]
        time.sleep(0.5)
    pytest.fail("the trainer never reached step 2")


def _processes_of(run_dir: Path) -> list[int]:
    marker = str(run_dir).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker in cmdline and b"train_network.py" in cmdline:
            pids.append(int(entry.name))
    return pids


def _rank_worker(run_dir: Path, local_rank: int) -> int:
    for pid in _processes_of(run_dir):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        if f"LOCAL_RANK={local_rank}".encode() in env and b"accelerate.commands.launch" not in cmd:
            return pid
    pytest.fail(f"no worker of local rank {local_rank}")


def test_a_killed_rank_is_named_with_how_it_ended(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        tmp_path / "out",
        training={"epochs": 20},
        launch={"num_processes": 2, "main_process_port": _port()},
    )
    proc = _launch(plan)
    run_dir = _wait_for_steps(tmp_path, proc)
    os.kill(_rank_worker(run_dir, 1), signal.SIGKILL)
    t0 = time.monotonic()
    text = proc.communicate(timeout=120)[0]
    print(f"rank 1 killed: kohya-plan exit {proc.returncode} {time.monotonic() - t0:.1f} s later")
    assert proc.returncode == 3, text[-3000:]
    cause = _summary(tmp_path)["cause"]
    assert (cause["kind"], cause["rank"]) == ("rank_died", 1)
    assert cause["message"].startswith("rank 1 (local rank 1 on ")
    assert cause["message"].endswith("was killed by SIGKILL (exit code -9)")
    assert "Root Cause (first observed failure):" in cause["lines"]
    assert not _processes_of(run_dir)


def test_ctrl_c_stops_the_launcher_and_every_worker(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        tmp_path / "out",
        training={"epochs": 20},
        launch={"num_processes": 2, "main_process_port": _port()},
    )
    proc = _launch(plan)
    run_dir = _wait_for_steps(tmp_path, proc)
    assert len(_processes_of(run_dir)) >= 3  # the launcher and its two workers
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=120)[0]
    gone = time.monotonic() - t0
    print(f"Ctrl-C: kohya-plan exit {proc.returncode} after {gone:.1f} s")
    assert proc.returncode == 130, text[-3000:]
    assert not _processes_of(run_dir)  # workers sit in their own sessions: none is left
    assert gone < 40
    assert _summary(tmp_path)["outcome"] == "stopped"


def _deepspeed_missing() -> str | None:
    python = sdlab.sd_python()
    if python is None:
        return "no sd-scripts Python"
    res = subprocess.run(
        [str(python), "-c", "import deepspeed"], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        return (
            "DeepSpeed is not installed in the sd-scripts Python: "
            f"{python} -m pip install --no-build-isolation deepspeed==0.16.7 hjson ninja "
            "py-cpuinfo msgpack"
        )
    return None


def test_deepspeed_zero2_through_launch(tmp_path: Path) -> None:
    why = _deepspeed_missing()
    if why is not None:
        pytest.skip(why)
    plan = _plan(
        tmp_path,
        tmp_path / "out",
        training={"max_train_steps": 3},
        launch={"num_processes": 2, "main_process_port": _port(), "deepspeed": {"zero_stage": 2}},
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(  # no shim: DeepSpeed does not wrap frozen modules in DDP
        [sys.executable, "-m", "kohya_plan", "launch", str(plan), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    text = proc.communicate(timeout=900)[0]
    print(f"DeepSpeed ZeRO-2: exit {proc.returncode} after {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, text[-3000:]
    run_dir = _run_dir(tmp_path)
    config = (run_dir / "config.toml").read_text(encoding="utf-8")
    assert "deepspeed = true" in config
    assert "zero_stage = 2" in config
    log = (run_dir / "train.log").read_text(errors="replace")
    assert "DeepSpeed info: version=" in log
    assert "Creating torch.float32 ZeRO stage 2 optimizer" in log
    summary = _summary(tmp_path)
    assert (summary["outcome"], summary["steps_done"], summary["steps_total"]) == (
        "succeeded",
        3,
        3,
    )
    assert (tmp_path / "out" / "testlora.safetensors").stat().st_size > 0
