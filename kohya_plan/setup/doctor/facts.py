"""The doctor's records: the facts gathered about a training environment, a diagnosis, what a
plan needs of the environment (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pathlib import Path

    from kohya_plan.plan import Plan

Status = Literal["ok", "info", "warn", "error"]
GIB = 1 << 30
PROBE_PREFIX = "KOHYA_PLAN_PROBE "
PROBE_TIMEOUT_S = 180.0
# Always reported; a plan adds its optimizer's package and xformers.
CORE_PACKAGES = (
    "torch",
    "torchvision",
    "accelerate",
    "transformers",
    "diffusers",
    "safetensors",
    "bitsandbytes",
    "library",
)
OPTIMIZER_PACKAGES = ("dadaptation", "prodigyopt", "lion-pytorch", "schedulefree")


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One finding of the doctor: what it concerns, how bad, what was seen, the exact fix."""

    id: str
    status: Status
    subject: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.subject}: {self.message}"
        return f"{text} — {self.fix}" if self.fix else text

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "status": self.status,
            "subject": self.subject,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class PlanNeeds:
    """What one plan asks of the environment."""

    plan: str
    family: str
    optimizer: str
    packages: tuple[str, ...]
    attention: str
    mixed_precision: str
    fp8: bool
    num_processes: int
    output_dir: Path
    output_bytes: int


@dataclass(frozen=True)
class DoctorFacts:
    """Everything `gather` learned; `probe` is the probe script's JSON (None if it failed)."""

    python: str | None
    python_source: str
    sd_scripts: Path
    sd_scripts_source: str
    snapshot_commit: str
    sd_scripts_found: bool = False  # train_network.py is there
    probe: dict[str, Any] | None = None
    probe_error: str | None = None
    checkout_commit: str | None = None
    requirements: dict[str, str | None] | None = None
    smi_gpus: tuple[str, ...] | None = None  # names nvidia-smi lists; None: no nvidia-smi
    driver_cuda: tuple[int, int] | None = None
    hf_token: str | None = None  # where a token comes from, never the token itself
    tokenizer_cache: Path | None = None
    tokenizers: dict[str, bool] = field(default_factory=dict)
    disks: tuple[tuple[str, Path, int | None], ...] = ()
    needs: PlanNeeds | None = None
    expected_torch: str | None = None  # the torch `kohya-plan setup` installed there


# --- what a plan needs (pure) ---------------------------------------------------------------


def optimizer_packages(optimizer: str) -> tuple[str, ...]:
    """The packages sd-scripts imports for an optimizer type (train_util.get_optimizer)."""
    lowered = optimizer.lower()
    if lowered.startswith("dadapt"):
        return ("dadaptation",)
    if lowered == "prodigy":
        return ("prodigyopt",)
    if lowered.endswith("schedulefree"):
        return ("schedulefree",)
    if "8bit" in lowered or lowered.startswith("paged"):
        return ("bitsandbytes",)
    if lowered == "lion":
        return ("lion-pytorch",)
    return ()


def plan_needs(plan: Plan, plan_path: Path) -> PlanNeeds:
    """What `plan` asks of the environment."""
    from kohya_plan.checks import lora_file_bytes

    packages = list(optimizer_packages(plan.optimizer.type))
    if plan.training.attention == "xformers":
        packages.append("xformers")
    if plan.launch.deepspeed is not None:
        packages.append("deepspeed")  # sd-scripts imports it for --deepspeed
    epochs = plan.training.epochs or 1
    every = plan.training.save_every_n_epochs or 0
    files = 1 + (max(0, (epochs - 1) // every) if every else 0)
    return PlanNeeds(
        plan=str(plan_path),
        family=plan.model.family,
        optimizer=plan.optimizer.type,
        packages=tuple(packages),
        attention=plan.training.attention,
        mixed_precision=plan.training.mixed_precision,
        fp8=bool(plan.launch.extra.get("fp8_base")),
        num_processes=plan.launch.num_processes,
        output_dir=plan.output.dir,
        output_bytes=lora_file_bytes(plan) * files,
    )
