"""The plan: one frozen pydantic model per TOML section, composed into `Plan`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from kohya_plan.families import FAMILIES, Family, family
from kohya_plan.plan.common import Section
from kohya_plan.plan.dataset import DatasetSection, SubsetSection
from kohya_plan.plan.fit import family_problems
from kohya_plan.plan.flux import FluxSection
from kohya_plan.plan.launch import DeepSpeedSection, LaunchSection
from kohya_plan.plan.model import ModelSection
from kohya_plan.plan.network import NetworkSection
from kohya_plan.plan.optimizer import OptimizerSection
from kohya_plan.plan.output import OutputSection
from kohya_plan.plan.rules import RulesSection
from kohya_plan.plan.sampling import SamplingSection
from kohya_plan.plan.slurm import SlurmSection
from kohya_plan.plan.sweep import SweepSection
from kohya_plan.plan.training import TrainingSection

if TYPE_CHECKING:
    from pathlib import Path

    from typing_extensions import Self

__all__ = [
    "DatasetSection",
    "DeepSpeedSection",
    "FluxSection",
    "LaunchSection",
    "ModelSection",
    "NetworkSection",
    "OptimizerSection",
    "OutputSection",
    "Plan",
    "RulesSection",
    "SamplingSection",
    "SlurmSection",
    "SubsetSection",
    "SweepSection",
    "TrainingSection",
]


class Plan(Section):
    """A whole LoRA training plan, validated; what every later step works from."""

    model: ModelSection
    dataset: DatasetSection
    network: NetworkSection = Field(default_factory=NetworkSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    sampling: SamplingSection = Field(default_factory=SamplingSection)
    output: OutputSection
    launch: LaunchSection = Field(default_factory=LaunchSection)
    rules: RulesSection = Field(default_factory=RulesSection)
    flux: FluxSection | None = Field(
        None, description="FLUX.1's training options (filled with defaults for a flux plan)."
    )
    slurm: SlurmSection | None = Field(
        None, description="The SLURM job (`make --slurm`, `submit`); absent: local runs only."
    )
    sweep: SweepSection | None = Field(
        None, description="A grid of values for `kohya-plan sweep` (ignored by make/launch)."
    )

    @model_validator(mode="before")
    @classmethod
    def _family_section(cls, data: Any) -> Any:
        # A family with its own section (FLUX.1's [flux]) always has it: its defaults are
        # kohya-plan's, not sd-scripts' own.
        model = data.get("model") if isinstance(data, dict) else None
        name = model.get("family", "sd15") if isinstance(model, dict) else None
        fam = FAMILIES.get(name) if isinstance(name, str) else None
        if fam is not None and fam.section and data.get(fam.section) is None:
            return {**data, fam.section: {}}
        return data

    @model_validator(mode="after")
    def _fits_the_family(self) -> Self:
        problems = family_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def family(self) -> Family:
        """The plan's model family (what sd-scripts does differently for it)."""
        return family(self.model.family)

    @property
    def script_name(self) -> str:
        """The sd-scripts entry point for this model family."""
        return self.family.script

    def runs_dir(self, plan_dir: Path) -> Path:
        """Where run folders are created."""
        return self.output.runs_dir or (plan_dir / "runs")
