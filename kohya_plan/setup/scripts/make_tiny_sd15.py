"""Make a randomly initialised SD1.5-shaped model in Diffusers folder format, offline.

Run with the sd-scripts venv's python (needs torch, diffusers, transformers); used by
`kohya-plan selftest` and
tests/sdlab.py. Takes ~35 s and ~7.6 GiB of RAM; the folder is ~3.5 GB.

    python make_tiny_sd15.py OUT_DIR TOKENIZER_DIR

- U-Net: full SD1.5 shape (sd-scripts' library/original_unet.py hard-codes 320/640/1280/1280,
  2 layers per block, 4 in/out channels and strict-loads the Diffusers U-Net into it);
  ~860M params, random init.
- Text encoder: CLIPTextModel with hidden 768 (= U-Net cross_attention_dim) but only 2 layers;
  final LayerNorm bias set non-zero (see below).
- VAE: tiny AutoencoderKL (32 ch), still 4 blocks => downscale factor 8, 4 latent channels.
- Scheduler: PNDM with SD1.5's betas (only needed so the pipeline loads).
"""

import sys

import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer


def main(out_dir, tok_dir):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=2,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    )
    # A trained CLIP's final LayerNorm has a non-zero bias; a fresh one has bias 0, so every
    # output token has mean ~0, and sd-scripts' sample pipeline (library/lpw_stable_diffusion.py)
    # rescales the prompt embedding by previous_mean / current_mean = 0/0 -> NaN -> an all-black
    # sample image. Give it a bias.
    with torch.no_grad():
        text_encoder.text_model.final_layer_norm.bias.normal_(mean=0.1, std=0.1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=128,
        scaling_factor=0.18215,
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out_dir)
    for name, m in [("unet", unet), ("text_encoder", text_encoder), ("vae", vae)]:
        print(name, sum(p.numel() for p in m.parameters()) / 1e6, "M params")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
