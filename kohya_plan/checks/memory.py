"""Peak GPU memory: the family's estimate for this plan (families.memory) against the card's
memory — `check --vram N`, or the GPU this machine has. Advice, never blocking: the estimate is
not verified on a GPU yet (see kohya_plan/families/memory.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.families.memory import (
    CONTEXT_GIB,
    MemoryEstimate,
    MemorySettings,
    estimate,
    fitting_changes,
)
from kohya_plan.lora import lora_parameters, trained_parts

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan


def memory_settings(plan: Plan, facts: Facts) -> MemorySettings:
    """What the estimate reads from a plan and what `check` found."""
    t, f = plan.training, plan.flux
    w, h = plan.dataset.size
    shape = dict(facts.model_shape)
    schnell = shape.get("dit.guidance", 1) == 0
    tokens = (f.t5xxl_max_token_length if f else None) or (256 if schnell else 512)
    trained = frozenset(p.text_encoder for p in trained_parts(plan) if p.role == "text_encoder")
    # FLUX.1's T5-XXL (text encoder 2) kept in fp8 when its file is fp8 and fp8_base is on
    fp8_files = frozenset({2}) if shape.get("t5.fp8") else frozenset()
    return MemorySettings(
        mixed_precision=t.mixed_precision,
        batch_size=t.batch_size,
        width=w,
        height=h,
        optimizer=plan.optimizer.type,
        lora_params=lora_parameters(plan, shape),
        gradient_checkpointing=t.gradient_checkpointing,
        cache_latents=t.cache_latents or t.cache_latents_to_disk,
        cache_text_encoders=t.cache_text_encoder_outputs or t.cache_text_encoder_outputs_to_disk,
        trained_text_encoders=trained,
        fp8_base=t.fp8_base,
        full_half=t.full_fp16 or t.full_bf16,
        no_half_vae=t.no_half_vae,
        blocks_to_swap=(f.blocks_to_swap or 0) if f else 0,
        text_tokens=tokens if plan.family.memory.reference_tokens else 0,
        fp8_text_encoder_files=fp8_files,
        shape=shape,
        network_dim=plan.network.dim,
    )


def plan_memory(plan: Plan, facts: Facts) -> MemoryEstimate:
    """The plan's estimated peak GPU memory, by phase and part."""
    return estimate(plan.family, memory_settings(plan, facts))


def card_gib(facts: Facts) -> float | None:
    """The GPU memory to plan for: `check --vram`, else this machine's first GPU."""
    if facts.vram_gib is not None:
        return facts.vram_gib
    hw = facts.hardware
    if hw is not None and hw.gpus and hw.gpus[0].memory_mib is not None:
        return hw.gpus[0].memory_mib / 1024
    return None


def check_vram(plan: Plan, facts: Facts) -> Iterator[Finding]:
    card = card_gib(facts)
    if card is None:
        return
    fam = plan.family
    settings = memory_settings(plan, facts)
    found = estimate(fam, settings)
    need = found.peak_gib + CONTEXT_GIB
    where = "--vram" if facts.vram_gib is not None else "this machine's GPU"
    if need <= card:
        return
    budget = card - CONTEXT_GIB
    changes = fitting_changes(fam, settings, budget)
    steps = ", ".join(_change(c.field, c.value) for c in changes)
    after = changes[-1].peak_gib if changes else found.peak_gib
    table = _docs_row(plan, card)
    fix = f"set {steps} (→ ~{after:.1f} GiB)" if steps else "lower the resolution or network.dim"
    if changes and after > budget:
        fix += f", still above {budget:.1f} GiB: lower the resolution or train elsewhere"
    if table:
        fix += f" (the sd-scripts docs for {table})"
    yield rules.VRAM_FIT.finding(
        "training",
        f"estimated peak GPU memory ~{found.peak_gib:.1f} GiB ({found.peak_phase}) + "
        f"~{CONTEXT_GIB:g} GiB CUDA context is more than the {card:g} GiB of {where} "
        "(an estimate, not yet checked on a GPU)",
        fix,
    )


def _docs_row(plan: Plan, card: float) -> str:
    """The family docs' row for a card of this size ("12 GB: blocks_to_swap 16 …")."""
    rows = [r for r in plan.family.vram_table if r.vram_gib <= card + 0.5]
    if not rows:
        return ""
    row = max(rows, key=lambda r: r.vram_gib)
    return f"{row.vram_gib:g} GB: {row.note}"


def _change(field: str, value: object) -> str:
    text = f"{field} = {_toml(value)}"
    if field == "network.train_unet_only":  # the change that makes caching possible
        text += " with training.cache_text_encoder_outputs = true"
    if field in ("network.train_unet_only", "training.cache_text_encoder_outputs"):
        text += " (and no caption shuffling or dropout)"
    return text


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
