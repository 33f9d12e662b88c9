"""Make a randomly initialised SDXL-shaped model as a Diffusers folder, offline.

Run with the sd-scripts venv's python (needs torch, diffusers, transformers); used by
tests/sdlab_families.py. Takes about a minute and ~11 GiB of RAM; the folder is ~5.4 GB.

    python tests/sdlab_make_tiny_sdxl.py OUT_DIR TOKENIZER_CACHE_DIR [--unet-dtype fp16]

TOKENIZER_CACHE_DIR holds openai_clip-vit-large-patch14 and
laion_CLIP-ViT-bigG-14-laion2B-39B-b160k (saved into the pipeline as tokenizer / tokenizer_2).

What sd-scripts fixes, and so what must be full size (library/sdxl_train_util.py,
sdxl_model_util.py, sdxl_original_unet.py, strategy_sdxl.py):

- U-Net: converted into sdxl_original_unet.SdxlUNet2DConditionModel, whose shape is hard-coded
  (320/640/1280, transformer depth 1/2/10, context 2048, adm 2816) and loaded strictly: FULL
  SIZE, 2.57 B params. Saved in fp16 (4.8 GiB instead of 9.6); diffusers loads it as fp32, or
  bf16 with --full_bf16.
- Text encoder 1 (CLIPTextModel) is used as it is, but sd-scripts reads hidden_states[11]:
  it needs at least 11 layers (with 10 the run fails with "tuple index out of range").
  Hidden 768 (768 + 1280 = the U-Net's context 2048); a narrow MLP keeps it at 77 M params.
- Text encoder 2 (CLIPTextModelWithProjection): hidden and projection 1280 (pooled 1280 +
  6 x 256 size embeddings = adm 2816); sd-scripts reads hidden_states[-2]: 2 layers here.
- VAE: used as it is: tiny (32 channels), still 4 blocks (x8 downscale), 4 latent channels.

Final LayerNorm biases are set non-zero: a fresh one is 0, which turns sample images black (the
prompt embedding is rescaled by mean / mean = 0 / 0 in sd-scripts' sample pipeline).
"""

import argparse
import os
import time

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TOKENIZER_1 = "openai_clip-vit-large-patch14"
TOKENIZER_2 = "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"


def build_unet(dtype):
    """The SDXL base U-Net config (sd-scripts' DIFFUSERS_SDXL_UNET_CONFIG), built directly in
    `dtype` so that the 2.57 B params never exist in fp32 unless asked."""
    torch.set_default_dtype(dtype)
    try:
        return UNet2DConditionModel(
            sample_size=128,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(320, 640, 1280),
            layers_per_block=2,
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            cross_attention_dim=2048,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
            norm_num_groups=32,
        )
    finally:
        torch.set_default_dtype(torch.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("tokenizer_cache_dir")
    ap.add_argument("--unet-dtype", default="fp16", choices=sorted(DTYPES))
    ap.add_argument("--te1-layers", type=int, default=11)
    ap.add_argument("--te1-intermediate", type=int, default=768)
    ap.add_argument("--te2-layers", type=int, default=2)
    ap.add_argument("--te2-intermediate", type=int, default=1280)
    args = ap.parse_args()
    dtype = DTYPES[args.unet_dtype]
    torch.manual_seed(0)
    t0 = time.monotonic()

    unet = build_unet(dtype)
    te1 = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=args.te1_intermediate,
            num_hidden_layers=args.te1_layers,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    )
    te2 = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1280,
            intermediate_size=args.te2_intermediate,
            num_hidden_layers=args.te2_layers,
            num_attention_heads=20,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=1280,
        )
    )
    with torch.no_grad():
        te1.text_model.final_layer_norm.bias.normal_(mean=0.1, std=0.1)
        te2.text_model.final_layer_norm.bias.normal_(mean=0.1, std=0.1)
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
        scaling_factor=0.13025,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
        interpolation_type="linear",
    )
    tok_root = args.tokenizer_cache_dir
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=CLIPTokenizer.from_pretrained(os.path.join(tok_root, TOKENIZER_1)),
        tokenizer_2=CLIPTokenizer.from_pretrained(os.path.join(tok_root, TOKENIZER_2)),
        unet=unet,
        scheduler=scheduler,
    )
    pipe.save_pretrained(args.out_dir)
    if dtype == torch.float16:
        # With --mixed_precision fp16 sd-scripts asks diffusers for variant="fp16"; diffusers
        # raises ValueError (not the EnvironmentError sd-scripts' fp32 fallback catches) when no
        # component has *.fp16.* files. The U-Net file already holds fp16 tensors, so a link
        # under the variant name is enough (the other components load as they are).
        os.symlink(
            "diffusion_pytorch_model.safetensors",
            os.path.join(args.out_dir, "unet", "diffusion_pytorch_model.fp16.safetensors"),
        )
    for name, m in [("unet", unet), ("text_encoder", te1), ("text_encoder_2", te2), ("vae", vae)]:
        print(name, f"{sum(p.numel() for p in m.parameters()) / 1e6:.2f} M params", m.dtype)
    print(f"saved {args.out_dir} in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
