"""The plan: one frozen pydantic model per TOML section, composed into `Plan`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kohya_plan.plan.common import Section
from kohya_plan.plan.dataset import DatasetSection, SubsetSection
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

__all__ = [
    "DatasetSection",
    "DeepSpeedSection",
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
    slurm: SlurmSection | None = Field(
        None, description="The SLURM job (`make --slurm`, `submit`); absent: local runs only."
    )
    sweep: SweepSection | None = Field(
        None, description="A grid of values for `kohya-plan sweep` (ignored by make/launch)."
    )

    @property
    def script_name(self) -> str:
        """The sd-scripts entry point for this model family."""
        return "sdxl_train_network.py" if self.model.family == "sdxl" else "train_network.py"

    def runs_dir(self, plan_dir: Path) -> Path:
        """Where run folders are created."""
        return self.output.runs_dir or (plan_dir / "runs")
