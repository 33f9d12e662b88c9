"""Stable Diffusion 1.x (and models trained from it): `train_network.py`, the tutorial's family.

What sd-scripts does for it at the pinned commit: one CLIP ViT-L/14 text encoder
(`strategy_sd.py`), buckets in steps of 64 (`train_util.verify_bucket_reso_steps(64)` in
`NetworkTrainer.assert_extra_args`), latents cached as `<stem>_<W>x<H>_sd.npz`. LoRA shapes
from `networks/lora.py` on the real U-Net (contract §12.3; `scripts/lora_params_per_rank.py`
measures them).
"""

from __future__ import annotations

from kohya_plan.families.base import (
    CLIP_L,
    Component,
    Family,
    LoraPart,
    LoraUnit,
    MemoryModel,
)

SD_NETWORK_MODULES = (
    "networks.lora",
    "networks.dylora",
    "networks.lora_fa",
    "networks.oft",
    "lycoris.kohya",
)
"""Modules built for the SD U-Net and CLIP text encoders (Transformer2DModel, CLIPAttention …)."""

CLIP_L_LAYER = LoraUnit("CLIP-L layer", 12, 6, 13_824, shape_key="te1.layers")
"""q/k/v/out (4 × (768 + 768)) + fc1 (768 + 3072) + fc2 (3072 + 768) per layer."""

SD15_UNET = LoraUnit("U-Net", 1, 192, 423_936)
"""16 Transformer2DModels, r·(32C + 1536) each (ΣC = 12,480); the U-Net class is fixed-size."""

FAMILY = Family(
    name="sd15",
    label="SD1.5",
    script="train_network.py",
    base_example="stable-diffusion-v1-5/stable-diffusion-v1-5",
    bucket_step=64,
    bucket_step_reason="train_network.py asserts bucket_reso_steps is divisible by 64",
    tokenizers=(CLIP_L,),
    text_encoders=("CLIP ViT-L",),
    checkpoint_kinds=("sd15",),
    network_modules=SD_NETWORK_MODULES,
    lora=(
        LoraPart("lora_unet", "unet", "U-Net", (SD15_UNET,)),
        LoraPart("lora_te", "text_encoder", "text encoder", (CLIP_L_LAYER,), text_encoder=1),
    ),
    latent_cache_suffix="_sd.npz",
    startup=(
        ("load StableDiffusion", "loading model"),
        ("load Diffusers", "loading model"),
    ),
    templates=("sd15-character", "sd15-realistic", "sd15-style", "sd15-lr-find"),
    ram_gib=(15.0, 8.0),
    memory=MemoryModel(
        components=(
            Component("U-Net", 859_520_964, "denoiser"),
            Component("CLIP ViT-L", 123_060_480, "text_encoder", 1),
            Component("VAE", 83_653_863, "vae"),
        ),
        activation_gib=1.6,
        no_checkpointing_factor=7.0,
        vae_encode_gib=2.0,
        sources=(
            "parameters: the SD1.5 U-Net, CLIP ViT-L text model and VAE as diffusers builds them",
            "activations: SD-family U-Net at 1024² equivalents, scaled from the tutorial's T9 "
            "(≤ 6 GB: batch 1 at 512 px)",
        ),
    ),
)
