"""[model]: the base model and how its text encoder is read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kohya_plan.plan.common import OptionalPlanPath, Section


class ModelSection(Section):
    """The base model to train on."""

    base: str = Field(
        description=(
            "Local .safetensors/.ckpt file, Diffusers folder, or Hugging Face repo id "
            "(repo@revision allowed). Relative paths are relative to the plan file."
        ),
    )
    family: Literal["sd15", "sdxl"] = Field(
        "sd15", description="Model family: sd15 (train_network.py) or sdxl (sdxl_train_network.py)."
    )
    clip_skip: int | None = Field(
        None, ge=1, le=12, description="T23: 2 for anime models, 1 for realistic ones."
    )
    tokenizer_cache_dir: OptionalPlanPath = Field(
        None, description="Folder where sd-scripts keeps the CLIP tokenizer (offline use)."
    )
    vae: str | None = Field(None, description="Replacement VAE (file, folder or repo id).")
    v_parameterization: bool = Field(False, description="The model predicts v (v-pred models).")

    @field_validator("base")
    @classmethod
    def _base_not_blank(cls, value: str) -> str:
        if not value.strip():
            msg = "is empty — give a checkpoint file, a Diffusers folder or a Hub repo id"
            raise ValueError(msg)
        return value.strip()
