"""[network]: the LoRA network (rank, alpha, module, extra network arguments)."""

from __future__ import annotations

from pydantic import Field, field_validator

from kohya_plan.plan.common import (
    Bool,
    Float,
    PlainText,
    PositiveFloat,
    PositiveInt,
    ScalarValue,
    Section,
    Text,
    check_key_value_args,
)


class NetworkSection(Section):
    """The LoRA network: size (rank), scale (alpha) and module."""

    dim: PositiveInt = Field(128, le=1024, description="T11: rank; 4 to 128 is common.")
    alpha: PositiveFloat = Field(64, description="T12: alpha, at most the rank; scale = alpha/dim.")
    module: Text = Field("networks.lora", description="sd-scripts network module.")
    dropout: Float | None = Field(None, ge=0, lt=1, description="Dropout on the LoRA down output.")
    args: dict[Text, ScalarValue] = Field(
        default_factory=dict,
        description="Extra network arguments, e.g. { conv_dim = 8, conv_alpha = 4 }.",
    )
    train_unet_only: Bool = Field(False, description="Train no text-encoder LoRA.")
    train_text_encoder_only: Bool = Field(False, description="Train no U-Net LoRA.")
    weights: PlainText | None = Field(None, description="Start from these LoRA weights.")

    @field_validator("module")
    @classmethod
    def _dotted_module(cls, value: str) -> str:
        parts = value.split(".")
        if not all(p.isidentifier() for p in parts):
            msg = f'{value!r} is not a Python module name — use e.g. "networks.lora"'
            raise ValueError(msg)
        return value

    @field_validator("args")
    @classmethod
    def _args_keys(cls, value: dict[str, ScalarValue]) -> dict[str, ScalarValue]:
        check_key_value_args(dict(value), "args = { conv_dim = 8 }")
        return value
