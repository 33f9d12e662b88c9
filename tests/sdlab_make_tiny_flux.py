"""Make random FLUX.1-dev-shaped model files for sd-scripts' flux_train_network.py, offline.

Run with the sd-scripts venv's python (needs torch, transformers, accelerate, safetensors and
sd-scripts' `library`, found through --sd-scripts); used by tests/sdlab_families.py.

    python tests/sdlab_make_tiny_flux.py OUT_DIR --sd-scripts SD_SCRIPTS \
        [--parts dit,clip_l,ae,t5xxl] [--t5-dtype bf16|fp8] [--double 1] [--single 1]

Writes OUT_DIR/flux-dev-<D>d<S>s.safetensors, clip_l.safetensors, ae.safetensors and
t5xxl_<dtype>.safetensors; each file appears under its name only once it is complete.

What sd-scripts fixes (library/flux_utils.py, flux_models.py), and so what must be full size:

- DiT (--pretrained_model_name_or_path): built from flux_models.configs["dev"].params with only
  the block counts read from the file (the highest double_blocks.N / single_blocks.N index);
  hidden 3072, 24 heads, in 64, context 4096 and vec 768 stay fixed. dev vs schnell = whether
  guidance_in.* keys are there. 1 double + 1 single block: 545.5 M params, bf16, 1.09 GB.
- CLIP-L (--clip_l), AE (--ae), T5-XXL (--t5xxl): hard-coded full configs, loaded with
  load_state_dict(strict=False, assign=True) into models built on the meta device, so every
  tensor must be there with its full shape (a smaller T5 fails with "size mismatch", a partial
  one with "Cannot copy out of meta tensor"). CLIP-L 123 M, AE 84 M, T5-XXL 4.76 B params.

The T5 (9.5 GB in bf16) is written tensor by tensor, never whole in memory (peak RSS ~2 GiB);
its random values use T5's own init scales. Only shared.weight is written:
encoder.embed_tokens is the same module (sd-scripts logs it as a harmless missing key).
"""

import argparse
import json
import math
import os
import struct
import sys
import time
from dataclasses import replace

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
T5_DTYPES = {"bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}
ST_DTYPES = {
    torch.float32: ("F32", 4),
    torch.float16: ("F16", 2),
    torch.bfloat16: ("BF16", 2),
    torch.float8_e4m3fn: ("F8_E4M3", 1),
}
PARTS = ("dit", "clip_l", "ae", "t5xxl")


def write_safetensors(path, entries, metadata=None):
    """Write a .safetensors file tensor by tensor: entries are (name, shape, dtype, make), and
    make() returns the tensor. Only one tensor is in memory at a time (safetensors' save_file
    needs the whole state dict plus a serialised copy: > 19 GB for the T5). The format: 8-byte
    little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} padded with
    spaces to 8 bytes, then the raw little-endian data."""
    header = {}
    offset = 0
    for name, shape, dtype, _ in entries:
        code, size = ST_DTYPES[dtype]
        n = math.prod(shape) * size
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * ((8 - len(blob) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, dtype, make in entries:
            t = make().to(dtype).contiguous()
            assert tuple(t.shape) == tuple(shape), (name, t.shape, shape)
            f.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
            del t
        f.flush()
        os.fsync(f.fileno())
    return offset


def save_state_dict(path, sd):
    """save_file through a temporary name, so that `path` exists only when complete."""
    from safetensors.torch import save_file

    tmp = path + ".partial"
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp, metadata={"format": "pt"})
    os.replace(tmp, path)


def nparams(sd):
    return sum(v.numel() for v in sd.values()) / 1e6


def make_dit(path, double, single):
    from library import flux_models

    params = replace(flux_models.configs["dev"].params, depth=double, depth_single_blocks=single)
    torch.set_default_dtype(torch.bfloat16)
    try:
        dit = flux_models.Flux(params)
    finally:
        torch.set_default_dtype(torch.float32)
    sd = dit.state_dict()
    save_state_dict(path, sd)
    print(f"DiT dev {double}+{single} blocks: {nparams(sd):.1f} M params, bf16 -> {path}")


def make_clip_l(path):
    """HF CLIPTextModel keys (text_model.*), the shape of flux_utils.load_clip_l's config."""
    from transformers import CLIPTextConfig, CLIPTextModel

    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    )
    with torch.no_grad():  # non-zero, as a trained CLIP's (see sdlab_make_tiny_sdxl.py)
        clip.text_model.final_layer_norm.bias.normal_(mean=0.1, std=0.1)
    sd = {k: v.to(torch.bfloat16) for k, v in clip.state_dict().items()}
    save_state_dict(path, sd)
    print(f"CLIP-L: {nparams(sd):.1f} M params, bf16 -> {path}")


def make_ae(path):
    """BFL AutoEncoder keys (encoder.* / decoder.*)."""
    from library import flux_models

    ae = flux_models.AutoEncoder(flux_models.configs["dev"].ae_params)
    sd = {k: v.to(torch.bfloat16) for k, v in ae.state_dict().items()}
    save_state_dict(path, sd)
    print(f"AE: {nparams(sd):.1f} M params, bf16 -> {path}")


def t5_entries(dtype):
    """(name, shape, dtype, make) for every tensor of google/t5-v1_1-xxl's encoder, with the
    names and shapes of transformers' T5EncoderModel (built on the meta device from the config
    sd-scripts hard-codes) and the std of T5PreTrainedModel._init_weights (factor 1.0)."""
    from accelerate import init_empty_weights
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        d_ff=10240,
        d_kv=64,
        d_model=4096,
        num_heads=64,
        num_layers=24,
        num_decoder_layers=24,
        feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        vocab_size=32128,
        tie_word_embeddings=False,
    )
    with init_empty_weights():
        model = T5EncoderModel(config)
    d_model, d_kv, heads, d_ff = config.d_model, config.d_kv, config.num_heads, config.d_ff
    std = {
        "q": (d_model * d_kv) ** -0.5,
        "k": d_model**-0.5,
        "v": d_model**-0.5,
        "o": (heads * d_kv) ** -0.5,
        "relative_attention_bias": d_model**-0.5,
        "wi_0": d_model**-0.5,
        "wi_1": d_model**-0.5,
        "wo": d_ff**-0.5,
        "shared": 1.0,
    }
    gen = torch.Generator().manual_seed(1)

    def randn(shape, s):
        return lambda: torch.randn(*shape, generator=gen) * s

    def ones(shape):
        return lambda: torch.ones(*shape)

    entries = []
    for name, tensor in model.state_dict().items():
        if name == "encoder.embed_tokens.weight":  # the same module as shared
            continue
        shape = tuple(tensor.shape)
        kind = name.split(".")[-2]  # q, k, v, o, wi_0, wi_1, wo, shared, ...
        make = ones(shape) if "layer_norm" in name else randn(shape, std[kind])
        entries.append((name, shape, dtype, make))
    return entries


def make_t5(path, dtype_name):
    entries = t5_entries(T5_DTYPES[dtype_name])
    t0 = time.monotonic()
    tmp = path + ".partial"
    nbytes = write_safetensors(tmp, entries, metadata={"format": "pt"})
    os.replace(tmp, path)
    n = sum(math.prod(s) for _, s, _, _ in entries)
    print(
        f"T5-XXL: {n / 1e6:.1f} M params, {len(entries)} tensors, {nbytes / 2**30:.2f} GiB "
        f"{dtype_name} -> {path} ({time.monotonic() - t0:.1f} s)"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--sd-scripts", required=True, help="sd-scripts work tree (for `library`)")
    ap.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS)
    )
    ap.add_argument("--t5-dtype", default="bf16", choices=sorted(T5_DTYPES))
    ap.add_argument("--double", type=int, default=1)
    ap.add_argument("--single", type=int, default=1)
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"unknown --parts {unknown}; known: {', '.join(PARTS)}")
    sys.path.insert(0, os.path.abspath(args.sd_scripts))
    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.monotonic()
    out = args.out_dir
    # one seed per file, so that a file comes out the same whichever parts one call builds
    if "dit" in parts:
        torch.manual_seed(0)
        make_dit(
            os.path.join(out, f"flux-dev-{args.double}d{args.single}s.safetensors"),
            args.double,
            args.single,
        )
    if "clip_l" in parts:
        torch.manual_seed(1)
        make_clip_l(os.path.join(out, "clip_l.safetensors"))
    if "ae" in parts:
        torch.manual_seed(2)
        make_ae(os.path.join(out, "ae.safetensors"))
    if "t5xxl" in parts:
        make_t5(os.path.join(out, f"t5xxl_{args.t5_dtype}.safetensors"), args.t5_dtype)
    sizes = {
        f: os.path.getsize(os.path.join(out, f))
        for f in sorted(os.listdir(out))
        if not f.startswith(".")
    }
    print(json.dumps(sizes), f"({time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()
