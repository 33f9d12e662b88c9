"""[flux]: FLUX.1's own training options, with the sd-scripts docs' values where its defaults
are traps (guidance 3.5, sigma sampling and sigma_scaled prediction are not what dev needs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kohya_plan.plan.common import (
    Bool,
    Int,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    Section,
)


class FluxSection(Section):
    """How flux_train_network.py trains: guidance, timesteps, prediction, T5, memory."""

    model_type: Literal["flux", "chroma"] = Field(
        "flux", description="flux (dev/schnell) or chroma (needs no CLIP-L)."
    )
    guidance_scale: NonNegativeFloat = Field(
        1.0,
        description="1.0 for training dev (sd-scripts' default 3.5 fights the distillation); "
        "0.0 for Chroma.",
    )
    timestep_sampling: Literal["sigma", "uniform", "sigmoid", "shift", "flux_shift"] = Field(
        "flux_shift", description="Timestep sampling; the docs recommend flux_shift."
    )
    sigmoid_scale: PositiveFloat = Field(
        1.0, description="Scale for sigmoid, shift and flux_shift sampling."
    )
    discrete_flow_shift: PositiveFloat = Field(
        3.0, description="Shift for timestep_sampling shift and sigma (passed only then)."
    )
    model_prediction_type: Literal["raw", "additive", "sigma_scaled"] = Field(
        "raw", description="raw, as the docs recommend (sd-scripts' default: sigma_scaled)."
    )
    t5xxl_max_token_length: Int | None = Field(
        None,
        ge=1,
        le=512,
        description="T5 tokens per caption; default 512 for dev, 256 for schnell.",
    )
    apply_t5_attn_mask: Bool = Field(
        False, description="Mask T5's padding tokens (Chroma requires it)."
    )
    blocks_to_swap: NonNegativeInt | None = Field(
        None,
        description="Transformer blocks kept on the CPU and swapped in (less VRAM, slower); "
        "12 GB: 16, 10 GB: 22, 8 GB: 28.",
    )
    cpu_offload_checkpointing: Bool = Field(
        False, description="Offload gradient checkpoints to the CPU (not with blocks_to_swap)."
    )
