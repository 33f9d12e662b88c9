"""[slurm]: what a SLURM job asks the scheduler for (one task per machine)."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from kohya_plan.plan.common import NonNegativeInt, PositiveInt, Section, Text

if TYPE_CHECKING:
    from typing_extensions import Self

# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds; 0 or UNLIMITED/INFINITE for none.
_TIME = re.compile(r"^(?:(\d+)-(\d+)(?::(\d+)(?::(\d+))?)?|(\d+)(?::(\d+)(?::(\d+))?)?)$")
_UNLIMITED = ("unlimited", "infinite")
# sbatch --mem: a size, megabytes without a unit
_MEM = re.compile(r"^(\d+)([KMGT]?)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_.,:+-]+$")

# Options the job script sets itself, and where a plan sets them instead.
OWNED_SBATCH_OPTIONS: dict[str, str] = {
    "--nodes": "slurm.nodes",
    "-N": "slurm.nodes",
    "--gpus-per-node": "slurm.gpus_per_node",
    "--gpus": "slurm.gpus_per_node",
    "-G": "slurm.gpus_per_node",
    "--gpus-per-task": "slurm.gpus_per_node",
    "--cpus-per-task": "slurm.cpus_per_task",
    "-c": "slurm.cpus_per_task",
    "--mem": "slurm.mem",
    "--time": "slurm.time",
    "-t": "slurm.time",
    "--partition": "slurm.partition",
    "-p": "slurm.partition",
    "--account": "slurm.account",
    "-A": "slurm.account",
    "--constraint": "slurm.constraint",
    "-C": "slurm.constraint",
    "--signal": "slurm.signal_before_limit",
    "--ntasks": "",
    "-n": "",
    "--ntasks-per-node": "",
    "--output": "",
    "-o": "",
    "--error": "",
    "-e": "",
    "--open-mode": "",
    "--array": "",
    "-a": "",
    "--requeue": "",
    "--no-requeue": "",
    "--chdir": "",
    "-D": "",
    "--job-name": "",
    "-J": "",
}


def slurm_time_seconds(value: str) -> int | None:
    """Seconds of an sbatch ``--time`` value; None for no limit; ValueError if malformed."""
    text = value.strip()
    if text.lower() in _UNLIMITED:
        return None
    m = _TIME.match(text)
    if m is None:
        msg = (
            f"{value!r} is not a Slurm time — write minutes (90), hours:minutes:seconds "
            '("1:30:00") or days-hours:minutes:seconds ("2-00:00:00")'
        )
        raise ValueError(msg)
    days, d_hours, d_minutes, d_seconds, minutes, m_seconds, hms_seconds = m.groups()
    if days is not None:
        total = int(days) * 86400 + int(d_hours) * 3600
        total += int(d_minutes or 0) * 60 + int(d_seconds or 0)
    elif hms_seconds is not None:  # hours:minutes:seconds
        total = int(minutes) * 3600 + int(m_seconds) * 60 + int(hms_seconds)
    else:  # minutes[:seconds]
        total = int(minutes) * 60 + int(m_seconds or 0)
    return total or None  # 0: no limit


def _option_name(option: str) -> str:
    name = option.split("=", 1)[0]
    if not name.startswith("--"):
        name = name[:2]  # "-t1:00:00" and "-t 1:00:00" are both -t
    return name.split()[0] if name else name


class SlurmSection(Section):
    """The SLURM job: resources per machine, limits, and any other ``#SBATCH`` option.

    One Slurm task per machine (node); each runs ``accelerate launch`` with one process per
    GPU. The job script is rendered into the run folder by ``kohya_plan.render.sbatch``.
    """

    partition: Text | None = Field(None, description='Partition (queue), e.g. "gpu".')
    nodes: PositiveInt = Field(1, description="Machines (accelerate's num_machines).")
    gpus_per_node: NonNegativeInt = Field(
        1,
        description=(
            "GPUs per machine, one training process each (0: ask for none, one process "
            "per machine; for CPU-only test clusters)."
        ),
    )
    gpu_type: Text | None = Field(
        None,
        description='GPU type for --gpus-per-node=TYPE:N, e.g. "a100" (as the cluster names it).',
    )
    cpus_per_task: PositiveInt | None = Field(
        None, description="CPU cores per machine (one task per machine)."
    )
    mem: Text | None = Field(
        None, description='Memory per machine: "64G", "500M"; a number alone is megabytes.'
    )
    time: Text | None = Field(
        None, description='Time limit: "90" (minutes), "12:00:00", "2-00:00:00".'
    )
    account: Text | None = Field(None, description="Account to charge.")
    constraint: Text | None = Field(None, description='Node features, e.g. "a100".')
    signal_before_limit: PositiveInt = Field(
        120,
        description=(
            "Seconds before the time limit at which the trainer is stopped (and, with "
            "training.save_state, the job requeued to resume from the newest state)."
        ),
    )
    extra_sbatch: list[Text] = Field(
        default_factory=list,
        description='Any other sbatch option, one per line: ["--qos=high", "--mail-type=END"].',
    )

    @field_validator("partition", "account", "gpu_type")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            msg = f"{value!r} is not a Slurm name — letters, digits and _ . , : + - only"
            raise ValueError(msg)
        return value

    @field_validator("constraint")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\n" in value):
            msg = f'{value!r} is not a constraint — e.g. "a100" or "a100|h100"'
            raise ValueError(msg)
        return value

    @field_validator("mem", mode="before")
    @classmethod
    def _mem(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return value  # pydantic reports the type
        m = _MEM.match(str(value).strip())
        if m is None:
            msg = (
                f"{value!r} is not a Slurm memory size — write a number with K, M, G or T "
                '("64G", "500M"); a number alone is megabytes'
            )
            raise ValueError(msg)
        return m.group(1) + m.group(2).upper()

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None:
            slurm_time_seconds(value)  # raises with the accepted forms
            return value.strip()
        return value

    @field_validator("extra_sbatch")
    @classmethod
    def _extra(cls, value: list[str]) -> list[str]:
        problems = []
        cleaned = []
        for line in value:
            option = line.strip()
            if option.startswith("#SBATCH"):
                option = option.removeprefix("#SBATCH").strip()
            if "\n" in option or not option.startswith("-"):
                problems.append(f'{line!r} is not an sbatch option — e.g. "--qos=high"')
                continue
            try:
                shlex.split(option)
            except ValueError:
                problems.append(f"{line!r} has an unclosed quote")
                continue
            name = _option_name(option)
            if name in OWNED_SBATCH_OPTIONS:
                field = OWNED_SBATCH_OPTIONS[name]
                fix = f"set {field} instead" if field else "kohya-plan sets it in the job script"
                problems.append(f"{line!r}: {name} is not free to set here — {fix}")
                continue
            cleaned.append(option)
        if problems:
            raise ValueError("; ".join(problems))
        return cleaned

    @model_validator(mode="after")
    def _gpu_type_needs_gpus(self) -> Self:
        if self.gpu_type is not None and self.gpus_per_node == 0:
            msg = (
                f"slurm.gpu_type ({self.gpu_type!r}) is set but slurm.gpus_per_node is 0 — "
                "set gpus_per_node to the GPUs per machine, or remove gpu_type"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _signal_inside_limit(self) -> Self:
        limit = None if self.time is None else slurm_time_seconds(self.time)
        if limit is not None and self.signal_before_limit >= limit:
            msg = (
                f"slurm.signal_before_limit ({self.signal_before_limit} s) must be shorter than "
                f"slurm.time ({self.time} = {limit} s) — the trainer would be stopped before "
                "it starts; raise slurm.time or lower slurm.signal_before_limit"
            )
            raise ValueError(msg)
        return self

    @property
    def time_limit_seconds(self) -> int | None:
        """The time limit in seconds (None: the partition's default or no limit)."""
        return None if self.time is None else slurm_time_seconds(self.time)
