"""A stale `accelerate config` file cannot change a kohya-plan launch (the real accelerate).

accelerate 1.6.0 reads ``$HF_HOME/accelerate/default_config.yaml`` whenever no ``--config_file``
is given; for a one-process launch its ``distributed_type: DEEPSPEED`` turns DeepSpeed on even
when every other flag is explicit. The rendered launcher (the run's accelerate.json and every
flag) is started here with such a file in place, on a script that prints what accelerate handed
its worker; the same flags without ``--config_file`` show the file's effect, so the test can fail.
Needs the sd-scripts Python (accelerate, torch); ~10 s, no model.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING

import pytest
import sdlab
from helpers import base_plan

from kohya_plan.loading import validate_plan
from kohya_plan.render.command import accelerate_config, build_launch
from kohya_plan.rundir import RunDir

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sdlab.sd_python() is None, reason=sdlab.SETUP_HINT),
]

SHOW = """
import json, os
print("ENV " + json.dumps({k: v for k, v in os.environ.items()
    if k.startswith(("ACCELERATE_", "MASTER_", "WORLD_SIZE"))}))
"""
STALE = """compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config:
  zero_stage: 3
  offload_optimizer_device: cpu
mixed_precision: bf16
num_processes: 1
main_process_port: 29999
"""


def _worker_env(argv: list[str], cwd: Path) -> dict[str, str]:
    res = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    line = next((x for x in res.stdout.splitlines() if x.startswith("ENV ")), None)
    assert line is not None, res.stdout + res.stderr
    return dict(json.loads(line[4:]))


def test_the_default_config_file_changes_nothing(tmp_path: Path, offline_hub: Path) -> None:
    config = offline_hub / "accelerate" / "default_config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(STALE, encoding="utf-8")
    plan = validate_plan(
        base_plan(training={"mixed_precision": "no"}, launch={"num_cpu_threads_per_process": 1}),
        tmp_path,
    )
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.accelerate_config.write_text(accelerate_config(plan), encoding="utf-8")
    (tmp_path / "train_network.py").write_text(SHOW, encoding="utf-8")
    python = str(sdlab.sd_python())
    launch = build_launch(plan, python=python, sd_scripts=tmp_path, files=run)
    argv = [*launch.prefix, *launch.flags, str(tmp_path / "train_network.py")]

    env = _worker_env(argv, tmp_path)
    assert "ACCELERATE_USE_DEEPSPEED" not in env, env
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    assert "MASTER_PORT" not in env

    # the same flags without the run's own config file: the stale file switches DeepSpeed on
    i = launch.flags.index("--config_file")
    bare = [*launch.prefix, *launch.flags[:i], *launch.flags[i + 2 :], argv[-1]]
    stale = _worker_env(bare, tmp_path)
    assert stale.get("ACCELERATE_USE_DEEPSPEED") == "true", stale
    assert stale.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    assert stale.get("MASTER_PORT") == "29999"
    print(f"without --config_file the worker got {stale}")


PARSE = """
import json, sys
from accelerate.commands.launch import launch_command_parser
args = launch_command_parser().parse_args(sys.argv[1:])
print("ARGS " + json.dumps({k: getattr(args, k) for k in (
    "num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port",
    "rdzv_backend", "rdzv_conf", "same_network", "multi_gpu", "gpu_ids", "mixed_precision",
    "dynamo_backend", "num_cpu_threads_per_process", "config_file", "training_script")}))
"""


def test_accelerates_own_parser_takes_every_flag_as_meant(tmp_path: Path) -> None:
    plan = validate_plan(
        base_plan(
            launch={
                "num_processes": 4,
                "num_machines": 2,
                "machine_rank": 1,
                "main_process_ip": "10.0.0.1",
                "main_process_port": 29555,
                "rdzv_timeout": 45,
                "gpu_ids": "0,1",
            }
        ),
        tmp_path,
    )
    run = RunDir(tmp_path / "run")
    launch = build_launch(plan, python=None, sd_scripts=tmp_path, files=run)
    res = subprocess.run(
        [str(sdlab.sd_python()), "-c", PARSE, *launch.flags, *launch.script_args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next((x for x in res.stdout.splitlines() if x.startswith("ARGS ")), None)
    assert line is not None, res.stdout + res.stderr
    assert json.loads(line[5:]) == {
        "num_processes": 4,
        "num_machines": 2,
        "machine_rank": 1,
        "main_process_ip": "10.0.0.1",
        "main_process_port": 29555,
        "rdzv_backend": "static",
        "rdzv_conf": "timeout=45",
        "same_network": True,
        "multi_gpu": True,
        "gpu_ids": "0,1",
        "mixed_precision": "fp16",
        "dynamo_backend": "no",
        "num_cpu_threads_per_process": 2,
        "config_file": str(run.accelerate_config),
        "training_script": str(tmp_path / "train_network.py"),
    }
