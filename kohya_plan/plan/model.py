"""[model]: the base model, its family, the other model files a family needs, the tokenizers."""

from __future__ import annotations

from pydantic import Field, field_validator

from kohya_plan.families import FAMILIES
from kohya_plan.plan.common import Bool, Int, OptionalPlanPath, PlainText, Section, Text


class ModelSection(Section):
    """The base model to train on."""

    base: PlainText = Field(
        description=(
            "Local .safetensors/.ckpt file, Diffusers folder, or Hugging Face repo id "
            "(repo@revision allowed). Relative paths are relative to the plan file."
        ),
    )
    family: Text = Field(
        "sd15",
        description=(
            "Model family: sd15 (train_network.py), sdxl (sdxl_train_network.py) or flux "
            "(flux_train_network.py)."
        ),
    )
    clip_skip: Int | None = Field(
        None, ge=1, le=12, description="T23: 2 for anime models, 1 for realistic ones."
    )
    tokenizer_cache_dir: OptionalPlanPath = Field(
        None, description="Folder where sd-scripts keeps the CLIP tokenizer (offline use)."
    )
    vae: PlainText | None = Field(None, description="Replacement VAE (file, folder or repo id).")
    v_parameterization: Bool = Field(False, description="The model predicts v (v-pred models).")
    ae: PlainText | None = Field(
        None, description="FLUX.1: the AutoEncoder, one .safetensors file (local or Hub)."
    )
    clip_l: PlainText | None = Field(
        None, description="FLUX.1: the CLIP-L text encoder, one .safetensors file (local or Hub)."
    )
    t5xxl: PlainText | None = Field(
        None, description="FLUX.1: the T5-XXL text encoder, one .safetensors file (local or Hub)."
    )

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in FAMILIES:
            import difflib

            close = difflib.get_close_matches(value.lower(), FAMILIES, n=1, cutoff=0.5)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            msg = f"{value!r} is not a model family — {hint}use one of: {', '.join(FAMILIES)}"
            raise ValueError(msg)
        return value

    @field_validator("ae", "clip_l", "t5xxl")
    @classmethod
    def _file_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            msg = "is empty — give a .safetensors file or a Hub reference ORG/NAME/FILE"
            raise ValueError(msg)
        return None if value is None else value.strip()

    @field_validator("base")
    @classmethod
    def _base_not_blank(cls, value: str) -> str:
        if not value.strip():
            msg = "is empty — give a checkpoint file, a Diffusers folder or a Hub repo id"
            raise ValueError(msg)
        return value.strip()
