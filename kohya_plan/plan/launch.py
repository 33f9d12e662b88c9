"""[launch]: where sd-scripts and its Python are, accelerate's launcher flags, extra options."""

from __future__ import annotations

from pydantic import Field, field_validator

from kohya_plan.plan.common import (
    ExtraValue,
    Int,
    OptionalPlanPath,
    PlainText,
    PositiveInt,
    Section,
    Text,
)


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
    num_processes: PositiveInt = Field(1, le=1024, description="Processes (GPUs) for accelerate.")
    num_machines: PositiveInt = Field(1, le=1024)
    num_cpu_threads_per_process: PositiveInt = Field(2, le=1024)
    gpu_ids: Text | None = Field(None, description='e.g. "0,1".')
    main_process_port: Int | None = Field(None, ge=1, le=65535)
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
