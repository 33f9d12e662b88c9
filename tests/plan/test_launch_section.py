"""[launch] past one GPU: machines, ranks, rendezvous, DDP and DeepSpeed — what a person may
write, and what they are told when it cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import base_plan

from kohya_plan.errors import PlanError
from kohya_plan.loading import validate_plan


def _launch(**launch: object):
    return validate_plan(base_plan(launch=launch), Path("/plans")).launch


def _errors(**launch: object) -> list[str]:
    with pytest.raises(PlanError) as err:
        _launch(**launch)
    return [f"{f.field}: {f.message} — {f.fix}" for f in err.value.findings]


def test_defaults_are_one_process_on_one_machine() -> None:
    la = _launch()
    assert (la.num_processes, la.num_machines, la.machine_rank) == (1, 1, 0)
    assert la.rdzv_backend == "static"
    assert la.rdzv_timeout == 300
    assert la.deepspeed is None
    assert la.processes_per_machine == 1


def test_processes_are_the_total_over_the_machines() -> None:
    la = _launch(num_processes=8, num_machines=2, main_process_ip="10.0.0.1", machine_rank=1)
    assert la.processes_per_machine == 4
    (problem,) = _errors(num_processes=3, num_machines=2, main_process_ip="10.0.0.1")
    assert "launch.num_processes (3) is the total over all machines" in problem
    assert "multiple of launch.num_machines (2)" in problem
    assert "e.g. num_processes = 2" in problem


def test_several_machines_need_the_address_of_machine_0() -> None:
    (problem,) = _errors(num_processes=2, num_machines=2)
    assert problem.startswith("launch: launch.main_process_ip is needed with 2 machines")
    assert "the address of machine 0" in problem


def test_machine_rank_below_the_machine_count_or_from_the_environment() -> None:
    (problem,) = _errors(num_processes=2, num_machines=2, main_process_ip="h", machine_rank=2)
    assert "launch.machine_rank (2) must be below launch.num_machines (2)" in problem
    assert "0 to 1" in problem
    la = _launch(
        num_processes=2, num_machines=2, main_process_ip="$MASTER_ADDR", machine_rank="$NODE_RANK"
    )
    assert (la.machine_rank, la.main_process_ip) == ("$NODE_RANK", "$MASTER_ADDR")
    (bad,) = _errors(num_processes=2, num_machines=2, main_process_ip="h", machine_rank="one")
    assert "'one' is not a machine number" in bad
    assert '"$SLURM_PROCID"' in bad
    (host,) = _errors(num_processes=2, num_machines=2, main_process_ip="a b")
    assert "'a b' is not a host name or address" in host


def test_gpu_ids_one_per_process_of_a_machine() -> None:
    assert _launch(num_processes=2, gpu_ids="0, 1").gpu_ids == "0,1"
    (problem,) = _errors(num_processes=2, gpu_ids="0")
    assert "names 1 GPU(s) but each machine runs 2 process(es)" in problem
    assert _launch(num_processes=4, gpu_ids="all").gpu_ids == "all"


@pytest.mark.parametrize(
    ("deepspeed", "expected"),
    [
        (
            {"zero_stage": 1, "offload_optimizer_device": "cpu"},
            "offload_optimizer_device needs zero_stage 2 or 3 (got 1)",
        ),
        (
            {"zero_stage": 2, "offload_param_device": "cpu"},
            "offload_param_device needs zero_stage 3 (got 2)",
        ),
        (
            {"zero_stage": 3, "offload_param_device": "nvme"},
            "offload_param_device is nvme but no folder is given",
        ),
        (
            {"zero_stage": 2, "offload_optimizer_nvme_path": "/nvme"},
            "offload_optimizer_nvme_path is set but offload_optimizer_device is None",
        ),
    ],
)
def test_deepspeed_combinations_sd_scripts_and_deepspeed_refuse(
    deepspeed: dict[str, object], expected: str
) -> None:
    problems = _errors(num_processes=2, deepspeed=deepspeed)
    assert any(expected in p for p in problems), problems


def test_deepspeed_paths_are_made_absolute_and_stage_3_offloads_both() -> None:
    la = _launch(
        num_processes=2,
        deepspeed={
            "zero_stage": 3,
            "offload_optimizer_device": "nvme",
            "offload_optimizer_nvme_path": "nvme/opt",
            "offload_param_device": "cpu",
        },
    )
    assert la.deepspeed is not None
    assert la.deepspeed.offload_optimizer_nvme_path == Path("/plans/nvme/opt")
    (unknown,) = _errors(deepspeed={"zero_stag": 2})
    assert unknown.startswith("launch.deepspeed.zero_stag: unknown key")
    assert 'did you mean "zero_stage"?' in unknown


def test_ddp_and_deepspeed_options_are_plan_keys_not_extra() -> None:
    for option, key in (("ddp_timeout", "launch.ddp_timeout"), ("zero_stage", "zero_stage")):
        (problem,) = _errors(extra={option: 1})
        assert f"'{option}' is set by the plan" in problem
        assert key in problem


def test_c10d_rendezvous_needs_the_endpoint_accelerate_passes_only_without_same_network() -> None:
    machines = {"num_processes": 2, "num_machines": 2, "main_process_ip": "10.0.0.1"}
    (problem,) = _errors(**machines, rdzv_backend="c10d")
    assert 'rdzv_backend = "c10d" with same_network = true' in problem
    assert "set launch.same_network = false" in problem
    assert _launch(**machines, rdzv_backend="c10d", same_network=False).rdzv_backend == "c10d"
