"""`check` for P processes: the step maths shown and in --json, the max_train_steps and warm-up
traps, DDP options that do nothing, DeepSpeed that cannot start, [slurm] vs [launch], and a
stale `accelerate config` file (scale-lab §1, measured with sd-scripts 48d368fa)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_plan

from kohya_plan.planning import check_plan

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from click.testing import Result


def _plan(root: Path, *, steps: int | None = None, **sections: dict[str, Any]) -> Path:
    # B = 8 batches per epoch on one process: 4 images × 2 repeats, batch 1 (the lab's data)
    make_images(root / "data" / "2_testchar", [(64, 64)] * 4)
    data = base_plan(
        dataset={"resolution": 64, "min_bucket_reso": 64, "max_bucket_reso": 128}, **sections
    )
    if steps is not None:
        data["training"].pop("epochs")
        data["training"]["max_train_steps"] = steps
    return write_plan(root, data)


def _ids(plan: Path) -> dict[str, Any]:
    return {f.id: f for f in check_plan(plan).findings}


@pytest.mark.parametrize(
    ("processes", "ga", "epochs", "steps", "batches", "run_epochs", "run_steps"),
    [  # every row of scale-lab.md §1: what sd-scripts printed and ran
        (1, 1, 1, None, 8, 1, 8),
        (1, 2, 1, None, 8, 1, 4),
        (1, 1, None, 4, 8, 1, 4),
        (1, 2, None, 3, 8, 1, 3),
        (2, 1, 2, None, 4, 2, 8),
        (2, 2, 1, None, 4, 1, 2),
        (2, 1, None, 4, 4, 1, 4),
        (2, 2, None, 3, 4, 2, 3),
    ],
)
def test_check_json_gives_the_measured_numbers(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    processes: int,
    ga: int,
    epochs: int | None,
    steps: int | None,
    batches: int,
    run_epochs: int,
    run_steps: int,
) -> None:
    training: dict[str, Any] = {"gradient_accumulation_steps": ga}
    if epochs is not None:
        training["epochs"] = epochs
    plan = _plan(tmp_path, steps=steps, training=training, launch={"num_processes": processes})
    result = run_cli("check", plan, "--json", "--no-hardware")
    doc = json.loads(result.stdout)["steps"]
    assert doc["batches_per_epoch"] == batches  # "num batches per epoch" as each process prints
    assert (doc["epochs"], doc["total_optimization_steps"]) == (run_epochs, run_steps)
    assert doc["num_processes"] == processes
    assert doc["effective_batch"] == processes * ga
    assert doc["dataset_batches"] == 8
    assert doc["samples_per_epoch"] == 8
    assert doc["batches_trained"] == run_steps * processes * ga
    assert (doc["one_process"] is None) == (processes == 1)


def test_steps_on_two_gpus_are_flagged_with_the_one_gpu_value(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    plan = _plan(
        tmp_path, steps=3, training={"gradient_accumulation_steps": 2}, launch={"num_processes": 2}
    )
    finding = _ids(plan)["steps-processes"]
    assert finding.field == "training.max_train_steps"
    assert "trains 12 batches, 2× what 3 steps train on one GPU (2 epochs instead of 1)" in (
        finding.message
    )
    assert "set training.max_train_steps = 2" in finding.fix
    shown = run_cli("check", plan, "--no-hardware").output
    assert "batch 1 per process × 2 processes × 2 accumulation = 4 samples per optimizer step" in (
        shown
    )
    assert "each process takes 4 of the 8 batches per epoch (8 samples per epoch)" in shown
    assert "on one GPU the same plan runs 3 optimization steps over 1 epoch" in shown
    # epochs are divided by sd-scripts itself: nothing to say
    epochs = _plan(tmp_path / "e", training={"epochs": 2}, launch={"num_processes": 2})
    assert "steps-processes" not in _ids(epochs)


def test_an_integer_warmup_ends_after_w_over_p_steps(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    # measured: W = 4 on 2 processes, the U-Net LR went 5e-5, 1e-4, 1e-4, 1e-4
    plan = _plan(
        tmp_path,
        training={"epochs": 4},
        optimizer={"scheduler": "constant_with_warmup", "warmup_steps": 4},
        launch={"num_processes": 2},
    )
    finding = _ids(plan)["warmup-processes"]
    assert "ends after 2 optimizer steps with 2 processes" in finding.message
    assert "the LR peaks at step 2" in finding.message
    assert "set optimizer.warmup_steps = 8" in finding.fix
    doc = json.loads(run_cli("check", plan, "--json", "--no-hardware").stdout)["steps"]
    assert doc["warmup"] == {
        "given": 4,
        "scheduler_steps": 4,
        "optimizer_steps": 2.0,
        "peak_at_step": 2,
        "shortened": True,
        "corrected": 8,
    }
    ratio = _plan(
        tmp_path / "r",
        optimizer={"scheduler": "constant_with_warmup", "warmup_steps": 0.1},
        launch={"num_processes": 2},
    )
    assert "warmup-processes" not in _ids(ratio)
    one = _plan(tmp_path / "o", optimizer={"scheduler": "constant_with_warmup", "warmup_steps": 4})
    assert "warmup-processes" not in _ids(one)


def test_ddp_options_that_take_no_effect(tmp_path: Path) -> None:
    single = _ids(_plan(tmp_path / "a", launch={"ddp_static_graph": True}))["ddp-ignored"]
    assert "only matter with several processes" in single.message
    per_node = _ids(
        _plan(
            tmp_path / "b",
            launch={
                "num_processes": 2,
                "num_machines": 2,
                "main_process_ip": "10.0.0.1",
                "ddp_timeout": 5,
            },
        )
    )["ddp-ignored"]
    assert per_node.field == "launch.ddp_timeout"
    assert "more than one CUDA GPU" in per_node.message
    assert "torch's 30 minutes apply" in per_node.message
    fine = _ids(_plan(tmp_path / "c", launch={"num_processes": 2, "ddp_timeout": 5}))
    assert "ddp-ignored" not in fine


def test_deepspeed_needs_processes_and_its_folders(tmp_path: Path) -> None:
    alone = check_plan(_plan(tmp_path / "a", launch={"deepspeed": {"zero_stage": 2}}))
    (error,) = [f for f in alone.findings if f.id == "deepspeed-one-process"]
    assert "KeyError: 'WORLD_SIZE'" in error.message
    assert not alone.ok
    nvme = tmp_path / "nvme"
    plan = _plan(
        tmp_path / "b",
        launch={
            "num_processes": 2,
            "deepspeed": {
                "zero_stage": 3,
                "offload_param_device": "nvme",
                "offload_param_nvme_path": str(nvme),
            },
        },
    )
    missing = _ids(plan)["deepspeed-path"]
    assert missing.field == "launch.deepspeed.offload_param_nvme_path"
    assert str(nvme) in missing.message
    nvme.mkdir()
    assert check_plan(plan).ok


def test_slurm_machines_must_match_the_launch(tmp_path: Path) -> None:
    plan = _plan(tmp_path, slurm={"nodes": 2, "gpus_per_node": 4})
    (error,) = [f for f in check_plan(plan).findings if f.id == "slurm-processes"]
    assert "2 machine(s) × 4 process(es) = 8" in error.message
    assert error.fix == "set launch.num_processes = 8 and launch.num_machines = 2"
    fixed = _plan(
        tmp_path / "ok",
        slurm={"nodes": 2, "gpus_per_node": 4},
        launch={"num_processes": 8, "num_machines": 2, "main_process_ip": "$HEAD"},
    )
    assert "slurm-processes" not in _ids(fixed)


def test_a_stale_accelerate_config_says_what_it_would_have_changed(
    tmp_path: Path, offline_hub: Path, run_cli: Callable[..., Result]
) -> None:
    config = offline_hub / "accelerate" / "default_config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "compute_environment: LOCAL_MACHINE\n"
        "distributed_type: DEEPSPEED\n"
        "deepspeed_config:\n  zero_stage: 3\n  offload_optimizer_device: cpu\n"
        "num_processes: 4\nmixed_precision: bf16\nmain_process_port: 29999\n",
        encoding="utf-8",
    )
    plan = _plan(tmp_path)
    finding = _ids(plan)["accelerate-default-config"]
    assert finding.severity == "advice"
    assert str(config) in finding.message
    assert "distributed_type DEEPSPEED (the plan: NO) — accelerate's DeepSpeed ZeRO-3" in (
        finding.message
    )
    assert "optimizer offloaded to cpu" in finding.message
    assert "num_processes 4 (the plan: 1)" in finding.message
    assert "mixed_precision bf16 (the plan: fp16)" in finding.message
    assert "kohya-plan's launch does not read it" in finding.message
    assert f"mv {config} {config}.bak" in finding.fix
    config.write_text("distributed_type: 'NO'\nnum_processes: 1\nmixed_precision: fp16\n")
    assert "accelerate-default-config" not in _ids(plan)
    config.write_text("distributed_type: [unclosed\n")
    assert "cannot be read" in _ids(plan)["accelerate-default-config"].message
