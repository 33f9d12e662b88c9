"""The peak-VRAM estimate (families.memory) against the configurations the sd-scripts docs say
fit a card, and the advice `check --vram` gives. An estimate: not measured on a GPU here (see
scripts/gpu_vram_check.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import base_plan

from kohya_plan.checks import run_checks
from kohya_plan.families import family
from kohya_plan.families.memory import (
    CONTEXT_GIB,
    MemorySettings,
    estimate,
    fitting_changes,
    optimizer_state_bytes,
)
from kohya_plan.inputs.facts import Facts
from kohya_plan.loading import validate_plan

SDXL, FLUX = family("sdxl"), family("flux")
DOCS_SDXL_8GB = MemorySettings(  # docs/train_SDXL-en.md: LoRA on 8 GB
    mixed_precision="fp16",
    batch_size=1,
    width=1024,
    height=1024,
    optimizer="AdamW8bit",
    lora_params=2_659_840 * 8,
    gradient_checkpointing=True,
    cache_latents=True,
    cache_text_encoders=True,
)
DOCS_FLUX = MemorySettings(  # docs/flux_train_network.md §6.1, with --fp8_base
    mixed_precision="bf16",
    batch_size=2,
    width=1024,
    height=1024,
    optimizer="AdamW8bit",
    lora_params=4_786_176 * 16,
    gradient_checkpointing=True,
    cache_latents=True,
    cache_text_encoders=True,
    fp8_base=True,
)


def _fits(settings: MemorySettings, fam: Any, card_gib: float) -> bool:
    return estimate(fam, settings).peak_gib + CONTEXT_GIB <= card_gib


def test_sdxl_docs_8gb_configuration_fits_8gb() -> None:
    assert _fits(DOCS_SDXL_8GB, SDXL, 8)
    # without gradient checkpointing or cached text encoders it does not
    assert not _fits(replace(DOCS_SDXL_8GB, gradient_checkpointing=False), SDXL, 8)
    assert not _fits(replace(DOCS_SDXL_8GB, cache_text_encoders=False, batch_size=2), SDXL, 8)


@pytest.mark.parametrize(
    ("card", "batch", "swap", "fp8_t5"),
    [(24, 2, 0, False), (12, 1, 16, False), (10, 1, 22, True), (8, 1, 28, True)],
)
def test_flux_docs_table_rows_fit_their_cards(
    card: int, batch: int, swap: int, fp8_t5: bool
) -> None:
    settings = replace(
        DOCS_FLUX,
        batch_size=batch,
        blocks_to_swap=swap,
        fp8_text_encoder_files=frozenset({2}) if fp8_t5 else frozenset(),
    )
    assert _fits(settings, FLUX, card), estimate(FLUX, settings).phases
    # one row down (less memory) the same settings do not fit, but for 24 → 16 GB
    if card <= 12:
        assert not _fits(replace(settings, blocks_to_swap=0), FLUX, card)


def test_the_t5_caching_phase_is_the_peak_on_small_cards() -> None:
    # below 10 GB the docs ask for an fp8 T5-XXL: its bf16 weights alone are ~8.9 GiB
    settings = replace(DOCS_FLUX, batch_size=1, blocks_to_swap=28)
    found = estimate(FLUX, settings)
    assert found.peak_phase == "caching text-encoder outputs"
    assert found.phases[found.peak_phase]["T5-XXL weights"] == pytest.approx(8.87, abs=0.01)


def test_block_swap_scales_with_the_dits_blocks() -> None:
    tiny = replace(
        DOCS_FLUX, batch_size=1, width=64, height=64, shape={"dit.double": 1, "dit.single": 1}
    )
    weights = estimate(FLUX, tiny).phases["training"]["DiT weights"]
    # the lab's DiT: 545.5 M parameters (1+1 blocks) in fp8
    assert weights == pytest.approx(545.5e6 / 2**30, rel=0.01)


def test_fitting_changes_follow_the_docs_order() -> None:
    plain = replace(DOCS_FLUX, gradient_checkpointing=False, fp8_base=False, batch_size=1)
    changes = fitting_changes(FLUX, plain, 12 - CONTEXT_GIB)
    assert [c.field for c in changes][:2] == [
        "training.gradient_checkpointing",
        "training.fp8_base",
    ]
    assert changes[-1].field == "flux.blocks_to_swap"
    assert changes[-1].peak_gib <= 12 - CONTEXT_GIB


def test_optimizer_state() -> None:
    assert optimizer_state_bytes("AdamW") == 8
    assert optimizer_state_bytes("AdamW8bit") == 2
    assert optimizer_state_bytes("Prodigy") == 16
    assert optimizer_state_bytes("pytorch_optimizer.CAME") == 8


def test_check_vram_advises_for_a_flux_plan() -> None:
    data = base_plan(
        model={
            "base": "org/flux/flux1-dev.safetensors",
            "family": "flux",
            "ae": "a.safetensors",
            "clip_l": "c.safetensors",
            "t5xxl": "t.safetensors",
        },
        dataset={"resolution": 1024},
        network={"module": "networks.lora_flux", "dim": 16, "alpha": 8, "train_unet_only": True},
        training={"mixed_precision": "bf16", "gradient_checkpointing": True, "fp8_base": True},
    )
    data["model"].pop("clip_skip")
    plan = validate_plan(data, Path("/plans"))
    found = {f.id: f for f in run_checks(plan, Facts("hub", plan.model.base, vram_gib=12))}
    advice = found["vram-fit"]
    assert "not yet checked on a GPU" in advice.message
    assert "flux.blocks_to_swap = " in advice.fix
    assert "the sd-scripts docs for 12 GB: blocks_to_swap 16 and AdamW8bit" in advice.fix
    assert "vram-fit" not in {f.id for f in run_checks(plan, Facts("hub", "x", vram_gib=40))}


def test_an_sdxl_plan_training_its_text_encoders_is_told_how_to_fit_8_gb() -> None:
    trains_te = replace(
        DOCS_SDXL_8GB,
        cache_text_encoders=False,
        trained_text_encoders=frozenset({1, 2}),
        lora_params=3_563_008 * 32,
        network_dim=32,
    )
    changes = fitting_changes(SDXL, trains_te, 8 - CONTEXT_GIB)
    assert [(c.field, c.value) for c in changes] == [
        ("network.train_unet_only", True),
        ("network.dim", 8),
    ]
    assert changes[-1].peak_gib <= 8 - CONTEXT_GIB
