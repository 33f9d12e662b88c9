"""The job scripts the sbatch tests render: one function per case, fixed (made-up) paths."""

from __future__ import annotations

from pathlib import Path

from kohya_plan.plan.slurm import SlurmSection
from kohya_plan.render.sbatch import (
    SbatchRun,
    render_sbatch,
    render_sbatch_array,
    without_machine_flags,
)

PREFIX = ["/opt/sd/bin/python", "-m", "accelerate.commands.launch"]
# launcher_flags(plan) of a 2-machine, 8-GPU plan; the machine flags are the job script's
LOCAL_FLAGS = [
    "--num_processes",
    "8",
    "--num_machines",
    "2",
    "--mixed_precision",
    "bf16",
    "--dynamo_backend",
    "no",
    "--num_cpu_threads_per_process",
    "2",
    "--multi_gpu",
    "--gpu_ids",
    "0,1,2,3",
    "--main_process_port",
    "29500",
]
SD = Path("/opt/sd-scripts")


def _script(run: Path) -> list[str]:
    return [
        str(SD / "train_network.py"),
        "--config_file",
        str(run / "config.toml"),
        "--dataset_config",
        str(run / "dataset.toml"),
    ]


def one_gpu() -> str:
    run = Path("/data/runs/testlora-20250101-120000")
    return render_sbatch(
        SlurmSection(),
        run_dir=run,
        accelerate_prefix=PREFIX,
        launcher_flags_without_machine_flags=without_machine_flags(
            ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "fp16"]
        ),
        script_args=_script(run),
        cwd=SD,
        env={},
        save_state=False,
        job_name="testlora",
    )


def two_nodes_resume() -> str:
    # spaces, a quote and a % in the paths; every field of [slurm] set
    run = Path("/data/my runs/it's 100%/testlora-20250101-120000")
    slurm = SlurmSection(
        partition="gpu",
        nodes=2,
        gpus_per_node=4,
        gpu_type="a100",
        cpus_per_task=32,
        mem="256g",
        time="1-12:00:00",
        account="proj-42",
        constraint="ib&nvlink",
        signal_before_limit=300,
        extra_sbatch=["--qos=high", "#SBATCH --mail-type=END,FAIL", "--comment='two words'"],
    )
    return render_sbatch(
        slurm,
        run_dir=run,
        accelerate_prefix=PREFIX,
        launcher_flags_without_machine_flags=without_machine_flags(LOCAL_FLAGS),
        script_args=[*_script(run), "--deepspeed", "--zero_stage", "2"],
        cwd=SD,
        env={"HF_HOME": "/data/hf cache", "NCCL_DEBUG": "WARN"},
        save_state=True,
        output_dir=Path("/data/lora out"),
        output_name="testlora",
        job_name="testlora",
        main_process_port=29555,
        header=["sd-scripts LoRA training as a SLURM job, made by kohya-plan from plan.toml."],
    )


def sweep_cpu() -> str:
    sweep = Path("/data/sweeps/lr-20250101-120000")
    runs = [
        SbatchRun(sweep / f"{i:02d}-unet_lr={lr}", _script(sweep / f"{i:02d}-unet_lr={lr}"))
        for i, lr in enumerate(["1e-4", "5e-5", "2e-5"])
    ]
    return render_sbatch_array(
        SlurmSection(gpus_per_node=0, cpus_per_task=2, mem="16000", time="30"),
        sweep_dir=sweep,
        runs=runs,
        max_parallel=1,
        accelerate_prefix=["accelerate", "launch"],
        launcher_flags_without_machine_flags=["--mixed_precision", "no"],
        cwd=SD,
        env={},
        save_state=False,
        processes_per_node=2,
    )


CASES = {"one-gpu": one_gpu, "two-nodes-resume": two_nodes_resume, "sweep-cpu": sweep_cpu}
