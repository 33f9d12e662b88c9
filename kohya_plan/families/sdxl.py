"""Stable Diffusion XL (SDXL base and the models trained from it: Illustrious, NoobAI, Pony …).

What `sdxl_train_network.py` does differently at the pinned commit (contract §15, the lab's
runs in tests/fixtures/logs/families):

* two tokenizers and text encoders: CLIP ViT-L (TE1, read at `hidden_states[11]`) and OpenCLIP
  ViT-bigG (TE2); `networks.lora` gives both ONE learning rate — `train_network.py` keeps only
  the first value of `--text_encoder_lr` for a network without
  `prepare_optimizer_params_with_multiple_te_lrs`, which `networks.lora` lacks;
* buckets in steps of 32 (`SdxlNetworkTrainer.assert_extra_args` overrides the base's 64);
* `--v2` is asserted off; `--clip_skip` only warns ("clip_skip will be unexpected") and has no
  effect: TE1's hidden_states[11] and TE2's penultimate layer are always used;
* `--cache_text_encoder_outputs` needs `--network_train_unet_only` and no caption
  shuffling/dropout/warm-up (both asserted), latents are cached as `_sdxl.npz`;
* the SDXL VAE overflows in fp16 (black or NaN samples, "NaN detected in latents"): the docs
  ask for `--no_half_vae` with fp16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.families.base import (
    CLIP_BIG_G,
    CLIP_L,
    Component,
    Family,
    LoraPart,
    LoraUnit,
    MemoryModel,
    VramStep,
)
from kohya_plan.families.sd15 import CLIP_L_LAYER, SD_NETWORK_MODULES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan

BIG_G_LAYER = LoraUnit("bigG layer", 32, 6, 23_040, shape_key="te2.layers")
"""q/k/v/out (4 × (1280 + 1280)) + fc1 (1280 + 5120) + fc2 (5120 + 1280) per layer."""

SDXL_UNET = LoraUnit("U-Net", 1, 722, 2_659_840)
"""sd-scripts hard-codes the SDXL U-Net (`SdxlUNet2DConditionModel`): always full size."""

_FP16_FIX = ("fp16-fix", "fp16_fix")


def check_half_vae(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """fp16 without no_half_vae: the SDXL VAE overflows (black/NaN samples, NaN latents)."""
    t = plan.training
    vae = (plan.model.vae or "").lower()
    if t.mixed_precision != "fp16" or t.no_half_vae or any(m in vae for m in _FP16_FIX):
        return
    yield rules.SDXL_HALF_VAE.finding(
        "training.no_half_vae",
        "fp16 runs the SDXL VAE in half precision, where it overflows: black or NaN samples, "
        'and sd-scripts may stop with "NaN detected in latents" while caching',
        'set training.no_half_vae = true (the VAE in fp32), use mixed_precision = "bf16", '
        'or a VAE made for fp16 (model.vae = "madebyollin/sdxl-vae-fp16-fix")',
    )


def check_cache_while_training(plan: Plan, facts: Facts) -> Iterator[Finding]:
    """SDXL caches both encoders' outputs or none: training a text encoder forbids it."""
    t = plan.training
    cached = t.cache_text_encoder_outputs or t.cache_text_encoder_outputs_to_disk
    if cached and not plan.network.train_unet_only:
        yield rules.TE_CACHE_TRAINED.finding(
            "training.cache_text_encoder_outputs",
            "cached text-encoder outputs need the text encoders frozen: sdxl_train_network.py "
            'asserts "network for Text Encoder cannot be trained with caching Text Encoder '
            'outputs"',
            "set network.train_unet_only = true (the sd-scripts docs recommend it for SDXL), "
            "or cache_text_encoder_outputs = false",
        )


FAMILY = Family(
    name="sdxl",
    label="SDXL",
    script="sdxl_train_network.py",
    base_example="stabilityai/stable-diffusion-xl-base-1.0",
    bucket_step=32,
    bucket_step_reason="sdxl_train_network.py asserts bucket_reso_steps is divisible by 32",
    tokenizers=(CLIP_L, CLIP_BIG_G),
    text_encoders=("CLIP ViT-L (TE1)", "OpenCLIP ViT-bigG (TE2)"),
    checkpoint_kinds=("sdxl",),
    network_modules=SD_NETWORK_MODULES,
    lora=(
        LoraPart("lora_unet", "unet", "U-Net", (SDXL_UNET,)),
        LoraPart("lora_te1", "text_encoder", "text encoder 1", (CLIP_L_LAYER,), text_encoder=1),
        LoraPart("lora_te2", "text_encoder", "text encoder 2", (BIG_G_LAYER,), text_encoder=2),
    ),
    latent_cache_suffix="_sdxl.npz",
    te_cache_suffix="_te_outputs.npz",
    startup=(
        ("load Diffusers", "loading model"),
        ("load StableDiffusion", "loading model"),
        ("building U-Net", "loading model"),
        ("U-Net converted to original U-Net", "loading model"),
        ("caching Text Encoder outputs", "caching text encoder outputs"),
    ),
    templates=("sdxl-character", "sdxl-style"),
    ram_gib=(30.0, 16.0),
    memory=MemoryModel(
        components=(
            Component("U-Net", 2_567_463_684, "denoiser"),
            Component("CLIP ViT-L (TE1)", 123_060_480, "text_encoder", 1),
            Component("OpenCLIP ViT-bigG (TE2)", 694_659_841, "text_encoder", 2),
            Component("VAE", 83_653_863, "vae"),
        ),
        activation_gib=1.5,
        no_checkpointing_factor=7.0,
        vae_encode_gib=2.0,
        sources=(
            "parameters: SDXL base 1.0's U-Net (2.57 B), CLIP ViT-L, OpenCLIP bigG and VAE",
            "sd-scripts docs/train_SDXL-en.md: LoRA training fits 8 GB (10 GB recommended) with "
            "U-Net only, gradient checkpointing, cached text-encoder outputs and latents, an "
            "8-bit optimizer and dim 4-8: 5.1 GB of fp16 U-Net leaves ~1.5 GB of activations",
        ),
    ),
    ignored_options={
        "clip_skip": 'SDXL training ignores it (sd-scripts warns "clip_skip will be '
        "unexpected\" and always reads TE1's hidden_states[11] and TE2's penultimate layer)",
    },
    refused_options={
        "v2": "sdxl_train_network.py asserts v2 is off: SDXL is not an SD2 model",
    },
    vram_table=(
        VramStep(
            24,
            None,
            "fine-tuning fits at batch 1; a LoRA has room for larger batches",
        ),
        VramStep(
            10,
            None,
            "LoRA: train the U-Net only with gradient checkpointing, cached text-encoder "
            "outputs and latents, an 8-bit optimizer or Adafactor",
        ),
        VramStep(
            8,
            None,
            "LoRA: the U-Net only, gradient checkpointing, cached text-encoder outputs and "
            "latents, an 8-bit optimizer or Adafactor, network.dim 4 to 8",
        ),
    ),
    t9_factor=2.0,
    small_card_tip=(
        "keep batch_size = 1, set training.gradient_checkpointing = true and "
        "training.cache_latents = true, and training.cache_text_encoder_outputs = true "
        "(with network.train_unet_only = true)"
    ),
    checks=(check_half_vae, check_cache_while_training),
)
