"""[launch]: where sd-scripts and its Python are, accelerate's launcher flags, DDP and DeepSpeed,
extra options."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from kohya_plan.plan.common import (
    Bool,
    ExtraValue,
    Int,
    NonNegativeInt,
    OptionalPlanPath,
    PlainText,
    PositiveInt,
    Section,
    Text,
)

if TYPE_CHECKING:
    from typing_extensions import Self

ENV_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
"""A value read from the environment when `launch` starts: "$SLURM_PROCID", "$MASTER_ADDR"."""
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]-]+$")


def env_ref(value: object) -> str | None:
    """The variable name of a "$NAME" value (None for anything else)."""
    if isinstance(value, str) and (m := ENV_REF.match(value)) is not None:
        return m.group(1)
    return None


class DeepSpeedSection(Section):
    """[launch.deepspeed]: sd-scripts' --deepspeed with its ZeRO options (library/deepspeed_utils).

    ZeRO shards the optimizer state (stage 1), the gradients too (2) and the parameters too
    (3) across the processes; offloading moves the optimizer state (stages 2, 3) or the
    parameters (stage 3) to CPU memory or an NVMe folder.
    """

    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="ZeRO stage (sd-scripts' default 2).")
    offload_optimizer_device: Literal["cpu", "nvme"] | None = Field(
        None, description="Move the optimizer state to cpu or nvme (stages 2 and 3)."
    )
    offload_optimizer_nvme_path: OptionalPlanPath = Field(
        None, description="Folder on an NVMe disk for offload_optimizer_device = nvme."
    )
    offload_param_device: Literal["cpu", "nvme"] | None = Field(
        None, description="Move the parameters to cpu or nvme (stage 3 only)."
    )
    offload_param_nvme_path: OptionalPlanPath = Field(
        None, description="Folder on an NVMe disk for offload_param_device = nvme."
    )

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        problems = []
        if self.offload_optimizer_device is not None and self.zero_stage < 2:
            problems.append(
                f"launch.deepspeed.offload_optimizer_device needs zero_stage 2 or 3 (got "
                f"{self.zero_stage}) — DeepSpeed offloads the optimizer from stage 2 on; set "
                "zero_stage = 2"
            )
        if self.offload_param_device is not None and self.zero_stage != 3:
            problems.append(
                f"launch.deepspeed.offload_param_device needs zero_stage 3 (got "
                f"{self.zero_stage}) — only stage 3 shards and offloads the parameters; set "
                "zero_stage = 3 or remove offload_param_device"
            )
        for what in ("optimizer", "param"):
            device = getattr(self, f"offload_{what}_device")
            path = getattr(self, f"offload_{what}_nvme_path")
            if device == "nvme" and path is None:
                problems.append(
                    f"launch.deepspeed.offload_{what}_device is nvme but no folder is given — "
                    f'set offload_{what}_nvme_path = "/local_nvme"'
                )
            if path is not None and device != "nvme":
                problems.append(
                    f"launch.deepspeed.offload_{what}_nvme_path is set but offload_{what}_device "
                    f'is {device!r} — set offload_{what}_device = "nvme", or remove the path'
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class LaunchSection(Section):
    """How the trainer is started (accelerate launch) and any other sd-scripts option."""

    sd_scripts: OptionalPlanPath = Field(
        None,
        description=(
            "Folder holding train_network.py; default $KOHYA_SD_SCRIPTS, else this "
            "checkout's vendor/sd-scripts, else the one `kohya-plan setup` installed."
        ),
    )
    python: PlainText | None = Field(
        None, description="Interpreter with sd-scripts' requirements (may be another venv)."
    )
    num_processes: PositiveInt = Field(
        1, le=1024, description="Training processes (GPUs) in all, over every machine."
    )
    num_machines: PositiveInt = Field(1, le=1024, description="Machines (nodes) taking part.")
    machine_rank: NonNegativeInt | Text = Field(
        0,
        description=(
            'This machine\'s number, 0 to num_machines-1; "$VAR" reads it from the '
            "environment when `launch` starts (a scheduler's node rank)."
        ),
    )
    main_process_ip: Text | None = Field(
        None,
        description=(
            'Address of machine 0, reachable from every machine ("$VAR": from the '
            "environment). Needed with num_machines > 1."
        ),
    )
    main_process_port: Int | None = Field(
        None, ge=1, le=65535, description="Port machine 0 listens on (default 29500)."
    )
    rdzv_backend: Literal["static", "c10d"] = Field(
        "static", description="torchrun's rendezvous: static (fixed ranks) or c10d."
    )
    rdzv_timeout: PositiveInt = Field(
        300,
        le=86400,
        description=(
            "Seconds to wait for every machine to join; a missing one then fails the run "
            "(torch's own default is 600 s of silence)."
        ),
    )
    same_network: Bool = Field(
        True, description="All machines on one local network (rank 0 as MASTER_ADDR)."
    )
    num_cpu_threads_per_process: PositiveInt = Field(2, le=1024)
    gpu_ids: Text | None = Field(None, description='GPUs of this machine to use, e.g. "0,1".')
    ddp_timeout: PositiveInt | None = Field(
        None,
        le=100000,
        description=(
            "Minutes a process waits for the others in a collective (sd-scripts passes it "
            "only where a machine has more than one CUDA GPU; else torch's 30 minutes)."
        ),
    )
    ddp_gradient_as_bucket_view: Bool = Field(
        False, description="DDP: gradients as views into its buckets (less memory)."
    )
    ddp_static_graph: Bool = Field(False, description="DDP: the graph is the same every step.")
    deepspeed: DeepSpeedSection | None = Field(
        None, description="Train with DeepSpeed ZeRO ([launch.deepspeed]); off when absent."
    )
    extra: dict[Text, ExtraValue] = Field(
        default_factory=dict,
        description=(
            "Any other option of the family's script by its own name: { noise_offset = 0.05 } "
            "(checked against that script's parser)."
        ),
    )

    @field_validator("gpu_ids")
    @classmethod
    def _gpu_ids(cls, value: str | None) -> str | None:
        if value is None or value == "all":
            return value
        parts = value.split(",")
        if not all(p.strip().isdigit() for p in parts):
            msg = f'{value!r} is not a list of GPU numbers — e.g. "0,1" or "all"'
            raise ValueError(msg)
        return ",".join(p.strip() for p in parts)

    @field_validator("machine_rank")
    @classmethod
    def _machine_rank(cls, value: int | str) -> int | str:
        if isinstance(value, str) and env_ref(value) is None:
            msg = (
                f"{value!r} is not a machine number — write 0, 1, … or an environment "
                'variable as "$SLURM_PROCID"'
            )
            raise ValueError(msg)
        return value

    @field_validator("main_process_ip")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and env_ref(value) is None and not _HOST.match(value):
            msg = (
                f'{value!r} is not a host name or address — e.g. "10.0.0.1", "node01" or '
                '"$MASTER_ADDR"'
            )
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _machines(self) -> Self:
        problems = []
        machines, processes = self.num_machines, self.num_processes
        if processes < machines or processes % machines:
            problems.append(
                f"launch.num_processes ({processes}) is the total over all machines and must be "
                f"a multiple of launch.num_machines ({machines}) — accelerate starts "
                f"num_processes / num_machines processes on each, e.g. num_processes = "
                f"{machines * max(1, processes // machines)}"
            )
        rank = self.machine_rank
        if isinstance(rank, int) and rank >= machines:
            problems.append(
                f"launch.machine_rank ({rank}) must be below launch.num_machines ({machines}) — "
                f"number the machines 0 to {machines - 1}"
            )
        if machines > 1 and self.main_process_ip is None:
            problems.append(
                f"launch.main_process_ip is needed with {machines} machines — set it to the "
                'address of machine 0 that every machine can reach, e.g. "10.0.0.1"'
            )
        if self.rdzv_backend == "c10d" and self.same_network and machines > 1:
            # accelerate 1.6.0 (utils/launch.py prepare_multi_gpu_env) hands torchrun the
            # rendezvous endpoint main_process_ip:port only without same_network
            problems.append(
                'launch.rdzv_backend = "c10d" with same_network = true: accelerate then passes '
                "torchrun no rendezvous endpoint, and each machine would wait on its own "
                'localhost — set launch.same_network = false (or rdzv_backend = "static")'
            )
        if self.gpu_ids not in (None, "all"):
            ids = self.gpu_ids.split(",")
            per_machine = processes // machines if machines <= processes else 1
            if len(ids) != per_machine:
                problems.append(
                    f"launch.gpu_ids ({self.gpu_ids!r}) names {len(ids)} GPU(s) but each machine "
                    f"runs {per_machine} process(es) — give one GPU per process, or set "
                    f"num_processes = {len(ids) * machines}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def processes_per_machine(self) -> int:
        """Processes (GPUs) on each machine."""
        return max(1, self.num_processes // self.num_machines)


__all__ = ["ENV_REF", "DeepSpeedSection", "LaunchSection", "env_ref"]
