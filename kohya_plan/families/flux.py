"""FLUX.1 (dev, schnell and Chroma): `flux_train_network.py`.

What it does differently at the pinned commit (its `assert_extra_args`, `flux_utils`,
`docs/flux_train_network.md`, the lab's runs in tests/fixtures/logs/families):

* four files, each a single `.safetensors`: the DiT (`--pretrained_model_name_or_path`; BFL
  or Diffusers key layout in ONE file — a Diffusers folder is read only as the three
  `transformer/` shards of the official repo and the docs call folders unsupported), the AE
  (`--ae`), CLIP-L (`--clip_l`; Chroma needs none) and T5-XXL (`--t5xxl`);
* tokenizers CLIP-L and T5-XXL (`google/t5-v1_1-xxl`, a T5TokenizerFast);
* dev or schnell is decided by the DiT's `guidance_in.*` keys; the number of double/single
  blocks is read from the checkpoint ("Setting the number of double blocks from 19 to …");
* buckets: the base check (64) runs before its own (32), so the step is effectively 64;
* `networks.lora_flux` (10 LoRA modules per double block, 3 per single block), which takes a
  learning rate per text encoder: `text_encoder_lr = [CLIP-L, T5-XXL]`; T5 gets LoRA only
  with `network_args train_t5xxl=True`, which cannot be combined with cached TE outputs;
* sd-scripts' defaults are traps for training dev: `--guidance_scale` 3.5 (the docs: use 1.0),
  `--timestep_sampling sigma` (docs: flux_shift), `--model_prediction_type sigma_scaled`
  (docs: raw) — kohya-plan's [flux] section defaults to the docs' values;
* `--blocks_to_swap N` swaps N//2 double and (N − N//2)·2 single blocks and asserts at most
  (double − 2) and (single − 2) of each: 35 for dev; never with `--cpu_offload_checkpointing`;
* `--mixed_precision no` loads T5-XXL in fp32 (~19 GB for T5 alone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.families.base import (
    CLIP_L,
    T5_XXL,
    Component,
    Family,
    LoraPart,
    LoraUnit,
    MemoryModel,
    ModelFile,
    VramStep,
)
from kohya_plan.families.sd15 import CLIP_L_LAYER

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan

DOUBLE_BLOCKS = 19
SINGLE_BLOCKS = 38
DOUBLE_BLOCK = LoraUnit("double block", DOUBLE_BLOCKS, 10, 141_312, shape_key="dit.double")
SINGLE_BLOCK = LoraUnit("single block", SINGLE_BLOCKS, 3, 55_296, shape_key="dit.single")
T5_BLOCK = LoraUnit("T5 block", 24, 7, 75_776, shape_key="t5.blocks")
"""networks/lora_flux.py on FLUX.1-dev: 4,786,176 per rank (DiT), T5 1,818,624 (24 blocks)."""

DOUBLE_BLOCK_PARAMS = 339_831_296
SINGLE_BLOCK_PARAMS = 141_591_808
"""Parameters of one block of the FLUX.1 DiT (hidden 3072, MLP 12288): what a swap moves."""

GUIDANCE_FOR_TRAINING = 1.0
CHROMA = ("flux.model_type", "chroma")
"""Chroma uses no CLIP-L: no file, no LoRA part (sd-scripts builds a dummy)."""
NETWORK_MODULES = ("networks.lora_flux", "networks.oft_flux")


def swap_split(blocks_to_swap: int) -> tuple[int, int]:
    """(double, single) blocks that ``--blocks_to_swap N`` moves (flux_models.enable_block_swap)."""
    double = blocks_to_swap // 2
    return double, (blocks_to_swap - double) * 2


def max_blocks_to_swap(double_blocks: int, single_blocks: int) -> int:
    """The largest N sd-scripts accepts for a DiT with these block counts (35 for dev)."""
    best = 0
    for n in range(1, 2 * (double_blocks + single_blocks) + 1):
        d, s = swap_split(n)
        if d <= double_blocks - 2 and s <= single_blocks - 2:
            best = n
    return best


def dit_blocks(facts: Facts) -> tuple[int, int]:
    """(double, single) blocks of the plan's DiT: from its header, else FLUX.1's 19 and 38."""
    shape = facts.model_shape
    return shape.get("dit.double", DOUBLE_BLOCKS), shape.get("dit.single", SINGLE_BLOCKS)


def check_blocks_to_swap(plan: Plan, facts: Facts) -> Iterator[Finding]:
    f = plan.flux
    if f is None or not f.blocks_to_swap:
        return
    if f.cpu_offload_checkpointing:
        yield rules.FLUX_SWAP_OFFLOAD.finding(
            "flux.cpu_offload_checkpointing",
            f"blocks_to_swap ({f.blocks_to_swap}) and cpu_offload_checkpointing together: "
            "flux_train_network.py asserts they are not combined",
            "keep blocks_to_swap (it saves more memory) and set cpu_offload_checkpointing = false",
        )
    double, single = dit_blocks(facts)
    limit = max_blocks_to_swap(double, single)
    if f.blocks_to_swap > limit:
        d, s = swap_split(f.blocks_to_swap)
        yield rules.FLUX_BLOCKS_TO_SWAP.finding(
            "flux.blocks_to_swap",
            f"{f.blocks_to_swap} would swap {d} double and {s} single blocks, but this DiT has "
            f"{double} and {single} and sd-scripts keeps at least 2 of each on the GPU",
            f"set blocks_to_swap to at most {limit}" if limit else "remove blocks_to_swap",
        )


def check_precision(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if plan.training.mixed_precision == "no":
        yield rules.FLUX_FP32.finding(
            "training.mixed_precision",
            'mixed_precision "no" makes sd-scripts load every model in fp32: T5-XXL alone '
            "becomes ~19 GB (4.76 B parameters × 4 bytes), the DiT ~48 GB",
            'set training.mixed_precision = "bf16"',
        )


def check_training_options(plan: Plan, facts: Facts) -> Iterator[Finding]:
    f = plan.flux
    if f is None:
        return
    schnell = facts.model_shape.get("dit.guidance", 1) == 0
    if f.model_type == "flux" and not schnell and f.guidance_scale != GUIDANCE_FOR_TRAINING:
        yield rules.FLUX_GUIDANCE.finding(
            "flux.guidance_scale",
            f"{f.guidance_scale:g} for training FLUX.1-dev; the sd-scripts docs use 1.0 "
            "(dev is guidance-distilled: a higher value trains against the distillation)",
            "set flux.guidance_scale = 1.0",
        )
    if f.model_type == "chroma" and f.guidance_scale != 0:
        yield rules.FLUX_GUIDANCE.finding(
            "flux.guidance_scale",
            f"{f.guidance_scale:g} for Chroma; the sd-scripts docs require 0.0 for Chroma",
            "set flux.guidance_scale = 0.0",
        )
    if f.model_type == "chroma" and not f.apply_t5_attn_mask:
        yield rules.FLUX_CHROMA.finding(
            "flux.apply_t5_attn_mask",
            "Chroma needs the T5 attention mask; flux_train_network.py asserts it",
            "set flux.apply_t5_attn_mask = true",
        )
    if f.model_type == "chroma" and f.cpu_offload_checkpointing:
        yield rules.FLUX_CHROMA.finding(
            "flux.cpu_offload_checkpointing",
            "Chroma does not support cpu_offload_checkpointing (sd-scripts docs)",
            "set flux.cpu_offload_checkpointing = false; use blocks_to_swap to save memory",
        )


def check_t5_training(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if not _trains_t5(plan):
        return
    t = plan.training
    if t.cache_text_encoder_outputs or t.cache_text_encoder_outputs_to_disk:
        yield rules.TE_CACHE_TRAINED.finding(
            "training.cache_text_encoder_outputs",
            "network.args train_t5xxl = true trains T5-XXL, whose outputs then cannot be "
            'cached: sd-scripts stops with "T5XXL is trained, so cache_text_encoder_outputs '
            'cannot be used"',
            "set training.cache_text_encoder_outputs = false, or remove train_t5xxl",
        )


def _trains_t5(plan: Plan) -> bool:
    value = plan.network.args.get("train_t5xxl")
    return not plan.network.train_unet_only and str(value).lower() in ("true", "1")


FAMILY = Family(
    name="flux",
    label="FLUX.1",
    script="flux_train_network.py",
    base_example="black-forest-labs/FLUX.1-dev/flux1-dev.safetensors",
    bucket_step=64,
    bucket_step_reason=(
        "flux_train_network.py runs train_network's check (divisible by 64) before its own "
        "(32), so the step is effectively 64"
    ),
    tokenizers=(CLIP_L, T5_XXL),
    text_encoders=("CLIP-L", "T5-XXL"),
    checkpoint_kinds=("flux", "chroma"),
    network_modules=NETWORK_MODULES,
    lora=(
        LoraPart("lora_unet", "unet", "DiT", (DOUBLE_BLOCK, SINGLE_BLOCK)),
        LoraPart(
            "lora_te1",
            "text_encoder",
            "CLIP-L",
            (CLIP_L_LAYER,),
            text_encoder=1,
            unless=CHROMA,
        ),
        LoraPart(
            "lora_te3",
            "text_encoder",
            "T5-XXL",
            (T5_BLOCK,),
            text_encoder=2,
            needs_arg="train_t5xxl",
        ),
    ),
    latent_cache_suffix="_flux.npz",
    te_cache_suffix="_flux_te.npz",
    startup=(
        ("Building Flux model", "loading model"),
        ("Building Chroma model", "loading model"),
        ("Building CLIP-L", "loading model"),
        ("Loaded T5xxl", "loading model"),
        ("Building AutoEncoder", "loading model"),
        ("caching Text Encoder outputs", "caching text encoder outputs"),
    ),
    templates=("flux-character",),
    ram_gib=(31.0, 24.0),
    memory=MemoryModel(
        components=(
            Component("DiT", 11_901_408_320, "denoiser"),
            Component("CLIP-L", 123_060_480, "text_encoder", 1),
            Component("T5-XXL", 4_762_310_656, "text_encoder", 2),
            Component("AE", 83_819_683, "vae"),
        ),
        activation_gib=2.3,
        no_checkpointing_factor=16.0,
        vae_encode_gib=2.0,
        sources=(
            "parameters: FLUX.1-dev's DiT (19 double blocks of 339.8 M, 38 single of 141.6 M), "
            "CLIP-L, T5-XXL encoder and AE (the lab's tiny DiT: 545.5 M with 1+1 blocks)",
            "activations with gradient checkpointing: each of the 57 blocks keeps its input "
            "(4096 image + 512 text tokens × 3072 × 2 bytes = 28 MB per 1024² image: 1.6 GB) "
            "plus one block recomputed in the backward pass (~0.7 GB)",
            "sd-scripts docs/flux_train_network.md §6.1 (with --fp8_base): 24 GB as is at "
            "batch 2; 12 GB → blocks_to_swap 16 and AdamW8bit; 10 GB → 22; 8 GB → 28, "
            "fp8 T5-XXL below 10 GB",
        ),
        blocks=(
            ("double", DOUBLE_BLOCKS, DOUBLE_BLOCK_PARAMS),
            ("single", SINGLE_BLOCKS, SINGLE_BLOCK_PARAMS),
        ),
        block_shape_keys=("dit.double", "dit.single"),
        recompute_gib=0.7,
        reference_tokens=4096 + 512,
    ),
    model_files=(
        ModelFile(
            "ae",
            "ae",
            "the AutoEncoder",
            "flux-ae",
            "black-forest-labs/FLUX.1-dev/ae.safetensors",
        ),
        ModelFile(
            "clip_l",
            "clip_l",
            "the CLIP-L text encoder",
            "clip-l",
            "comfyanonymous/flux_text_encoders/clip_l.safetensors",
            text_encoder=1,
            unless=CHROMA,
        ),
        ModelFile(
            "t5xxl",
            "t5xxl",
            "the T5-XXL text encoder",
            "t5xxl",
            "comfyanonymous/flux_text_encoders/t5xxl_fp16.safetensors",
            text_encoder=2,
            fp8_example="comfyanonymous/flux_text_encoders/t5xxl_fp8_e4m3fn.safetensors",
        ),
    ),
    section="flux",
    base_folder_problem=(
        "flux_train_network.py reads a folder only as the official repo's three "
        "transformer/ shards, and its docs say Diffusers folders are not supported"
    ),
    unchecked_modules=("lycoris.kohya",),
    per_text_encoder_lrs=("networks.lora_flux",),
    text_encoder_lr_tags=("lr/textencoder 1 ", "lr/textencoder 2 "),
    ignored_options={
        "clip_skip": "FLUX.1 training does not use it (sd-scripts docs: SD-only argument)",
        "sample_sampler": "FLUX.1 samples with its own Euler sampler (flux_train_utils never "
        "reads sample_sampler or --ss)",
    },
    refused_options={
        "v2": "FLUX.1 is not an SD2 model (sd-scripts docs: SD-only argument)",
        "v_parameterization": "FLUX.1 is trained by flow matching: flux_train_network.py "
        "never uses v-prediction (sd-scripts docs: SD-only argument)",
        "max_token_length": "flux_train_network.py ignores it (with a warning): set "
        "flux.t5xxl_max_token_length instead",
    },
    vram_table=(
        VramStep(24, None, "batch size 2 works as is (with fp8_base)"),
        VramStep(
            16,
            8,
            "batch size 1 and blocks_to_swap (the docs give no number: 8 is kohya-plan's "
            "step between their 24 and 12 GB rows)",
        ),
        VramStep(12, 16, "blocks_to_swap 16 and AdamW8bit (Adafactor saves more)"),
        VramStep(10, 22, "blocks_to_swap 22; an fp8 T5-XXL file is recommended"),
        VramStep(8, 28, "blocks_to_swap 28; an fp8 T5-XXL file is recommended"),
    ),
    cpu_precision="bf16",
    t9_factor=2.0,
    small_card_tip=(
        "keep batch_size = 1, set training.gradient_checkpointing = true, "
        "training.fp8_base = true, training.cache_text_encoder_outputs = true and "
        "flux.blocks_to_swap (12 GB: 16, 10 GB: 22, 8 GB: 28)"
    ),
    checks=(check_blocks_to_swap, check_precision, check_training_options, check_t5_training),
)
