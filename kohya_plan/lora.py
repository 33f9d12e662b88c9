"""The LoRA file a plan produces: its parameter count (T11: the file size tells the rank)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kohya_plan.plan import Plan

# sd-scripts' SD1.5 LoRA (TE + U-Net, no conv): 589,824 parameters per unit of rank (§12.3).
SD15_PARAMS_PER_RANK = 589_824
SD15_UNET_PARAMS_PER_RANK = 423_936


def lora_parameters(plan: Plan) -> int:
    """Parameters of the LoRA file for SD1.5 (T11: the file size tells the rank)."""
    per_rank = SD15_PARAMS_PER_RANK
    if plan.network.train_unet_only:
        per_rank = SD15_UNET_PARAMS_PER_RANK
    elif plan.network.train_text_encoder_only:
        per_rank = SD15_PARAMS_PER_RANK - SD15_UNET_PARAMS_PER_RANK
    return per_rank * plan.network.dim


def lora_file_bytes(plan: Plan) -> int:
    """Tensor bytes of one saved LoRA file (headers add about 0.1 MB)."""
    width = 4 if plan.output.save_precision == "float" else 2
    return lora_parameters(plan) * width
