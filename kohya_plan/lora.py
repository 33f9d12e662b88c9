"""The LoRA file a plan produces: its parameters and size (T11: the file size tells the rank).

The counts are the family's (`Family.lora`: measured from sd-scripts' own create_network by
scripts/lora_params_per_rank.py), for the parts sd-scripts builds for this plan: the U-Net/DiT
unless `train_text_encoder_only`, each text encoder unless `train_unet_only` (FLUX.1's T5-XXL
only with `network.args train_t5xxl`, Chroma has no CLIP-L), counted for the checkpoint's own
number of blocks where `check` read them (`Facts.model_shape`). A saved file holds every
parameter plus one `alpha` scalar per module, in the save precision, after its JSON header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan.families import sd15
from kohya_plan.families.base import applies

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kohya_plan.families import LoraPart
    from kohya_plan.plan import Plan

# sd-scripts' SD1.5 LoRA (TE + U-Net, no conv): 589,824 parameters per unit of rank (§12.3).
SD15_UNET_PARAMS_PER_RANK = sd15.SD15_UNET.params_per_rank
SD15_PARAMS_PER_RANK = SD15_UNET_PARAMS_PER_RANK + 12 * sd15.CLIP_L_LAYER.params_per_rank

EXACT_MODULES = ("networks.lora", "networks.lora_flux")
"""Modules whose layout the family's counts describe (others: an estimate)."""
SHAPE_ARGS = (
    "conv_dim",
    "conv_block_dims",
    "block_dims",
    "in_dims",
    "split_qkv",
    "train_double_block_indices",
    "train_single_block_indices",
    "img_attn_dim",
    "txt_attn_dim",
    "img_mlp_dim",
    "txt_mlp_dim",
    "img_mod_dim",
    "txt_mod_dim",
    "single_dim",
    "single_mod_dim",
)
"""network.args that change which modules get LoRA, or their rank (not counted here)."""


def _arg_true(plan: Plan, name: str) -> bool:
    return str(plan.network.args.get(name, "")).lower() in ("true", "1")


def trained_parts(plan: Plan) -> list[LoraPart]:
    """The LoRA parts sd-scripts builds for this plan, in file order."""
    n = plan.network
    parts = []
    for part in plan.family.lora:
        if part.role == "unet":
            if not n.train_text_encoder_only:
                parts.append(part)
            continue
        if n.train_unet_only or (part.needs_arg and not _arg_true(plan, part.needs_arg)):
            continue
        if not applies(plan, part.unless):
            continue  # e.g. Chroma has no CLIP-L
        parts.append(part)
    return parts


def _unit_filter(plan: Plan) -> str:
    blocks = str(plan.network.args.get("train_blocks", "all")).lower()
    return {"single": "single block", "double": "double block"}.get(blocks, "")


def lora_counts(plan: Plan, shape: Mapping[str, int] | None = None) -> tuple[int, int]:
    """(modules, parameters per unit of rank) of the plan's LoRA file."""
    shape = shape or {}
    only = _unit_filter(plan)
    modules = params = 0
    for part in trained_parts(plan):
        for unit in part.units:
            if only and part.role == "unet" and unit.name != only:
                continue
            count, per_rank = unit.count, unit.params_per_rank
            if unit.shape_key:
                count = shape.get(unit.shape_key, count)
                per_rank = shape.get(f"{unit.shape_key}:params", per_rank)
            modules += count * unit.modules
            params += count * per_rank
    return modules, params


def lora_parameters(plan: Plan, shape: Mapping[str, int] | None = None) -> int:
    """Parameters of the LoRA file (T11: the file size tells the rank)."""
    return lora_counts(plan, shape)[1] * plan.network.dim


def lora_file_bytes(plan: Plan, shape: Mapping[str, int] | None = None) -> int:
    """Tensor bytes of one saved LoRA file: parameters and alphas (the header adds ~0.1 MB)."""
    width = 4 if plan.output.save_precision == "float" else 2
    modules, per_rank = lora_counts(plan, shape)
    return (per_rank * plan.network.dim + modules) * width


def lora_is_exact(plan: Plan) -> bool:
    """Whether the counts describe this network exactly (its module and arguments)."""
    return plan.network.module in EXACT_MODULES and not any(
        k in plan.network.args for k in SHAPE_ARGS
    )
