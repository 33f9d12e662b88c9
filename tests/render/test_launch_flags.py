"""The launcher's flags: every one given explicitly, the run's own accelerate config, "$VAR"
values read at run time, the DDP and DeepSpeed options in config.toml."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from helpers import base_plan

from kohya_plan.loading import validate_plan
from kohya_plan.render.command import (
    Launch,
    accelerate_config,
    build_launch,
    command_ps1,
    command_sh,
    expand_env_refs,
    launcher_flags,
)
from kohya_plan.render.config_toml import config_sections
from kohya_plan.render.sbatch import MACHINE_FLAGS, without_machine_flags
from kohya_plan.rundir import RunDir


def _plan(**launch: object):
    return validate_plan(base_plan(launch=launch), Path("/plans"))


def _flag(flags: list[str], name: str) -> str | None:
    return flags[flags.index(name) + 1] if name in flags else None


def test_one_process_gives_every_flag_and_no_multi_gpu() -> None:
    flags = launcher_flags(_plan(), config_file=Path("/run/accelerate.json"))
    assert flags[:2] == ["--config_file", "/run/accelerate.json"]
    assert _flag(flags, "--num_processes") == "1"
    assert _flag(flags, "--num_machines") == "1"
    assert _flag(flags, "--gpu_ids") == "all"
    assert _flag(flags, "--mixed_precision") == "fp16"
    assert _flag(flags, "--dynamo_backend") == "no"
    assert "--multi_gpu" not in flags
    assert "--main_process_port" not in flags  # nothing listens for one process


def test_processes_on_one_machine() -> None:
    flags = launcher_flags(_plan(num_processes=2, gpu_ids="2,3"))
    assert "--multi_gpu" in flags
    assert _flag(flags, "--gpu_ids") == "2,3"
    assert _flag(flags, "--main_process_port") == "29500"  # the default, said out loud
    assert "--machine_rank" not in flags
    assert "--rdzv_conf" not in flags  # no other machine to wait for


def test_machines_carry_rank_address_and_a_rendezvous_timeout() -> None:
    plan = _plan(
        num_processes=4,
        num_machines=2,
        machine_rank=1,
        main_process_ip="10.0.0.1",
        main_process_port=29555,
        rdzv_timeout=20,
    )
    flags = launcher_flags(plan)
    assert _flag(flags, "--num_processes") == "4"  # the total
    assert _flag(flags, "--machine_rank") == "1"
    assert _flag(flags, "--main_process_ip") == "10.0.0.1"
    assert _flag(flags, "--main_process_port") == "29555"
    assert _flag(flags, "--rdzv_backend") == "static"
    assert _flag(flags, "--rdzv_conf") == "timeout=20"
    assert "--same_network" in flags
    no_lan = launcher_flags(
        plan.model_copy(update={"launch": plan.launch.model_copy(update={"same_network": False})})
    )
    assert "--same_network" not in no_lan
    # the SLURM job script sets the machine flags itself; the rendezvous options stay
    kept = without_machine_flags(flags)
    assert not set(kept) & set(MACHINE_FLAGS)
    assert _flag(kept, "--rdzv_conf") == "timeout=20"


def test_every_flag_is_one_accelerate_1_6_knows() -> None:
    # accelerate 1.6.0's `launch` parser (commands/launch.py), the flags kohya-plan may pass
    known = {
        "--config_file", "--num_processes", "--num_machines", "--multi_gpu", "--gpu_ids",
        "--mixed_precision", "--dynamo_backend", "--num_cpu_threads_per_process",
        "--machine_rank", "--main_process_ip", "--main_process_port", "--rdzv_backend",
        "--rdzv_conf", "--same_network",
    }  # fmt: skip
    plan = _plan(num_processes=4, num_machines=2, main_process_ip="h", gpu_ids="0,1")
    flags = launcher_flags(plan, config_file=Path("/a.json"))
    assert {f for f in flags if f.startswith("--")} <= known


def test_the_runs_own_accelerate_config_turns_nothing_on() -> None:
    one = json.loads(accelerate_config(_plan()))
    assert one["compute_environment"] == "LOCAL_MACHINE"
    assert one["distributed_type"] == "NO"
    assert one["use_cpu"] is False
    two = json.loads(accelerate_config(_plan(num_processes=2)))
    assert two["distributed_type"] == "MULTI_GPU"
    assert "deepspeed_config" not in two


def test_env_refs_expand_at_run_time_and_show_as_shell_variables(tmp_path: Path) -> None:
    plan = _plan(
        num_processes=2, num_machines=2, machine_rank="$NODE_RANK", main_process_ip="$MASTER"
    )
    launch = build_launch(plan, python=None, sd_scripts=tmp_path, files=RunDir(tmp_path / "r"))
    assert "$NODE_RANK" in launch.argv
    expanded = expand_env_refs(launch.argv, {"NODE_RANK": "1", "MASTER": "10.0.0.9"})
    assert _flag(expanded, "--machine_rank") == "1"
    assert _flag(expanded, "--main_process_ip") == "10.0.0.9"
    with pytest.raises(ValueError, match="reads NODE_RANK, MASTER from the environment"):
        expand_env_refs(launch.argv, {})
    sh = command_sh(launch)
    assert '--machine_rank "${NODE_RANK:?}"' in sh
    assert '--main_process_ip "${MASTER:?}"' in sh
    assert "'--machine_rank' $env:NODE_RANK" in command_ps1(launch)
    # the rest is quoted as before: the line splits back into the argv (with the values)
    line = sh.splitlines()[-1].removeprefix("exec ")
    assert shlex.split(line.replace('"${NODE_RANK:?}"', "1").replace('"${MASTER:?}"', "h")) == [
        *expand_env_refs(launch.argv, {"NODE_RANK": "1", "MASTER": "h"})
    ]


def test_launch_knows_where_the_script_arguments_start(tmp_path: Path) -> None:
    launch = build_launch(
        _plan(num_processes=2), python="/py", sd_scripts=tmp_path, files=RunDir(tmp_path / "r")
    )
    assert isinstance(launch, Launch)
    assert launch.prefix == ["/py", "-m", "accelerate.commands.launch"]
    assert launch.argv == [*launch.prefix, *launch.flags, *launch.script_args]
    assert launch.script_args[0] == str(tmp_path / "train_network.py")
    assert _flag(launch.flags, "--config_file") == str(tmp_path / "r" / "accelerate.json")


def test_ddp_and_deepspeed_go_to_config_toml(tmp_path: Path) -> None:
    plan = _plan(
        num_processes=2,
        ddp_timeout=5,
        ddp_gradient_as_bucket_view=True,
        deepspeed={"zero_stage": 3, "offload_param_device": "cpu"},
    )
    sections = config_sections(plan, model="m", tokenizer_cache_dir=None, files=RunDir(tmp_path))
    assert sections["distributed"] == {
        "ddp_timeout": 5,
        "ddp_gradient_as_bucket_view": True,
        "deepspeed": True,
        "zero_stage": 3,
        "offload_param_device": "cpu",
    }
    assert "distributed" not in config_sections(
        _plan(), model="m", tokenizer_cache_dir=None, files=RunDir(tmp_path)
    )
