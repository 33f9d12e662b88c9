"""[training]: length of the run, batch, precision, saving and performance switches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from kohya_plan.plan.common import Bool, Int, NonNegativeInt, PositiveInt, Section

if TYPE_CHECKING:
    from typing_extensions import Self


class TrainingSection(Section):
    """How long and how the training runs (T8–T10)."""

    epochs: PositiveInt | None = Field(
        10, le=10_000, description="T8: epochs (overrides max_train_steps)."
    )
    max_train_steps: PositiveInt | None = Field(
        None, le=100_000_000, description="Total steps, when no epochs."
    )
    batch_size: PositiveInt = Field(1, le=256, description="T9: images per step per GPU.")
    gradient_accumulation_steps: PositiveInt = Field(1, le=1024)
    mixed_precision: Literal["no", "fp16", "bf16"] = "fp16"
    save_every_n_epochs: NonNegativeInt | None = Field(
        1, description="T10: a LoRA file every N epochs (0: only the final one)."
    )
    save_every_n_steps: PositiveInt | None = None
    save_last_n_epochs: PositiveInt | None = None
    save_state: Bool = Field(False, description="Save resumable state with each LoRA file.")
    seed: Int = Field(42, ge=0, lt=2**32)
    cache_latents: Bool = True
    cache_latents_to_disk: Bool = False
    gradient_checkpointing: Bool = False
    cache_text_encoder_outputs: Bool = Field(
        False, description="SDXL/FLUX.1: encode the captions once (needs train_unet_only)."
    )
    cache_text_encoder_outputs_to_disk: Bool = False
    no_half_vae: Bool = Field(False, description="Keep the VAE in fp32 (SDXL with fp16).")
    full_fp16: Bool = Field(False, description="Train the LoRA in fp16 too (needs fp16).")
    full_bf16: Bool = Field(False, description="Train the LoRA in bf16 too (needs bf16).")
    fp8_base: Bool = Field(False, description="Base model in fp8 (needs fp16 or bf16).")
    attention: Literal["sdpa", "xformers", "mem_eff", "none"] = "sdpa"
    max_data_loader_n_workers: Int | None = Field(None, ge=0, le=256)
    persistent_data_loader_workers: Bool = False
    tensorboard: Bool = Field(True, description="Write TensorBoard logs into the run folder.")

    @model_validator(mode="before")
    @classmethod
    def _steps_instead_of_epochs(cls, data: Any) -> Any:
        # epochs has a default; a plan that gives only max_train_steps means steps.
        if isinstance(data, dict) and "max_train_steps" in data:
            if "epochs" in data:
                msg = (
                    "both epochs and max_train_steps are set and sd-scripts would silently "
                    "ignore max_train_steps — keep only one of them"
                )
                raise ValueError(msg)
            return {**data, "epochs": None}
        return data

    @model_validator(mode="after")
    def _length_given(self) -> Self:
        if self.epochs is None and self.max_train_steps is None:
            msg = (
                "neither epochs nor max_train_steps is set, so sd-scripts would silently run "
                "1600 steps — set training.epochs (T8: 5 to 10)"
            )
            raise ValueError(msg)
        return self
