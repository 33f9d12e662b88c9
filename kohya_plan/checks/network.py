"""The LoRA network: alpha vs rank (T12), rank range (T11), what is trained at all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.lora import lora_file_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan


def check_alpha(plan: Plan, facts: Facts) -> Iterator[Finding]:
    n = plan.network
    if n.alpha > n.dim:
        yield rules.ALPHA_ABOVE_DIM.finding(
            "network.alpha",
            f"alpha {n.alpha:g} is larger than the rank (network.dim = {n.dim}); "
            f"the update would be scaled by {n.alpha / n.dim:g}",
            f"set alpha to at most {n.dim} (T12: commonly half the rank, {n.dim / 2:g})",
        )


def check_only_flags(plan: Plan, facts: Facts) -> Iterator[Finding]:
    n = plan.network
    if n.train_unet_only and n.train_text_encoder_only:
        yield rules.BOTH_ONLY_FLAGS.finding(
            "network.train_text_encoder_only",
            "train_unet_only and train_text_encoder_only together leave nothing to train",
            "keep at most one of them",
        )


def check_rank(plan: Plan, facts: Facts) -> Iterator[Finding]:
    dim = plan.network.dim
    if not 4 <= dim <= 128:
        mib = lora_file_bytes(plan) / 2**20
        yield rules.RANK_RANGE.finding(
            "network.dim",
            f"rank {dim} is outside the usual 4..128 (file ≈ {mib:.0f} MiB)",
            "T11: 128 gives the mainstream 144 MB file; smaller ranks learn less detail",
        )
