"""[output]: where LoRA files and run folders go, and what they are called."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from kohya_plan.plan.common import OptionalPlanPath, PlainText, PlanPath, Section, Text

_FORBIDDEN = set('/\\:*?"<>|')


class OutputSection(Section):
    """Output folder and model name (T2, T5)."""

    dir: PlanPath = Field(
        Path("output"),
        validate_default=True,
        description="T2: folder for the LoRA files (sd-scripts' output_dir).",
    )
    name: PlainText = Field(description="T5: model name; files are <name>-000001.safetensors, ...")
    save_precision: Literal["fp16", "bf16", "float"] = Field(
        "fp16", description="dtype of saved files (sd-scripts' default would be fp32)."
    )
    save_model_as: Literal["safetensors", "ckpt", "pt"] = "safetensors"
    runs_dir: OptionalPlanPath = Field(
        None, description="Where `make` creates run folders (default: runs/ beside the plan)."
    )
    comment: Text | None = Field(None, description="Stored in the LoRA's metadata.")

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        bad = sorted(_FORBIDDEN.intersection(value))
        if bad:
            msg = (
                f"{value!r} contains {' '.join(bad)}, which sd-scripts would treat as a path — "
                'use a plain name like "xunxian" and set output.dir for the folder'
            )
            raise ValueError(msg)
        if not value.strip() or value.strip() in (".", ".."):
            msg = 'is empty — name the model, e.g. name = "xunxian"'
            raise ValueError(msg)
        if value != value.strip():
            msg = f"{value!r} has leading or trailing spaces — remove them"
            raise ValueError(msg)
        return value
