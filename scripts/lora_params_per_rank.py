"""LoRA parameters per unit of rank for the real SD1.5, SDXL and FLUX.1-dev models.

Run it with the sd-scripts venv's python (it imports sd-scripts, hence torch etc.):

    .venv-sd/bin/python scripts/lora_params_per_rank.py [--sd-scripts vendor/sd-scripts]
    .venv-sd/bin/python scripts/lora_params_per_rank.py --lora-file OUT.safetensors ...

Method: each full-size model is built on the meta device (shapes only, no memory) exactly as
sd-scripts builds it (its own U-Net classes and configs), and sd-scripts' own
`create_network` (networks.lora for SD1.5/SDXL, networks.lora_flux for Flux; default
arguments, so no conv layers) makes the LoRA modules at rank 1 and rank 2. A LoRA module on a
Linear (or 1x1 Conv2d) holds rank * (in + out) weights, so the rank-1 count is the count per
unit of rank (checked: rank 2 gives exactly twice). The file also holds one `alpha` scalar per
module: file bytes = (params_per_rank * rank + modules) * bytes per value + header.

Prints a JSON table: per family, per part (lora_unet, lora_te1, ...) the modules and the
parameters per rank. `--lora-file` instead reads saved LoRA files (header only) and prints the
same numbers per part, to compare a real file with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import struct
import sys
from dataclasses import replace
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SD_SCRIPTS = pathlib.Path(
    os.environ.get("KOHYA_SD_SCRIPTS", REPO_ROOT / "vendor" / "sd-scripts")
)


def _clip_l() -> Any:
    """openai/clip-vit-large-patch14's text model (sd-scripts' SD1.5 / SDXL TE1 / Flux CLIP-L)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
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


def _clip_bigg() -> Any:
    """SDXL's text encoder 2 (sdxl_model_util.load_models_from_sdxl_checkpoint's config)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1280,
            intermediate_size=5120,
            num_hidden_layers=32,
            num_attention_heads=20,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=1280,
        )
    )


def _t5xxl() -> Any:
    """google/t5-v1_1-xxl's encoder (flux_utils.load_t5xxl's config)."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            d_ff=10240,
            d_kv=64,
            d_model=4096,
            num_heads=64,
            num_layers=24,
            feed_forward_proj="gated-gelu",
            vocab_size=32128,
            tie_word_embeddings=False,
        )
    )


def _count(network: Any) -> dict[str, dict[str, int]]:
    parts: dict[str, dict[str, int]] = {}
    for lora in [*network.text_encoder_loras, *network.unet_loras]:
        prefix = lora.lora_name.split("_")[0] + "_" + lora.lora_name.split("_")[1]
        part = parts.setdefault(prefix, {"modules": 0, "params": 0})
        part["modules"] += 1
        # only the LoRA weights: the module also holds the original layer (org_module)
        weights = [*lora.lora_down.parameters(), *lora.lora_up.parameters()]
        part["params"] += sum(p.numel() for p in weights)
    return parts


def _networks(rank: int) -> dict[str, dict[str, dict[str, int]]]:
    import torch
    from library import flux_models, model_util, original_unet, sdxl_original_unet
    from networks import lora, lora_flux

    out: dict[str, dict[str, dict[str, int]]] = {}
    with torch.device("meta"):
        unet = original_unet.UNet2DConditionModel(**model_util.create_unet_diffusers_config(False))
        out["sd15"] = _count(lora.create_network(1.0, rank, 1.0, None, _clip_l(), unet))

        unet_xl = sdxl_original_unet.SdxlUNet2DConditionModel()
        te = [_clip_l(), _clip_bigg()]
        out["sdxl"] = _count(lora.create_network(1.0, rank, 1.0, None, te, unet_xl))

        flux = flux_models.Flux(flux_models.configs["dev"].params)
        te = [_clip_l(), _t5xxl()]
        out["flux-dev"] = _count(lora_flux.create_network(1.0, rank, 1.0, None, te, flux))
        with_t5 = lora_flux.create_network(1.0, rank, 1.0, None, te, flux, train_t5xxl="True")
        out["flux-dev (train_t5xxl=True)"] = _count(with_t5)

        # the test lab's tiny Flux (1 double + 1 single block), to compare with its LoRA files
        params = replace(flux_models.configs["dev"].params, depth=1, depth_single_blocks=1)
        tiny = flux_models.Flux(params)
        out["flux-lab-1d1s"] = _count(lora_flux.create_network(1.0, rank, 1.0, None, te, tiny))
    return out


def table(sd_scripts: pathlib.Path) -> dict[str, Any]:
    """{family: {part: {modules, params_per_rank}, "total": ...}} from sd-scripts' networks."""
    sys.path.insert(0, str(sd_scripts.resolve()))
    old_cwd = pathlib.Path.cwd()
    os.chdir(sd_scripts)
    try:
        one, two = _networks(1), _networks(2)
    finally:
        os.chdir(old_cwd)
    result: dict[str, Any] = {}
    for family, parts in one.items():
        row: dict[str, Any] = {}
        for part, numbers in sorted(parts.items()):
            # LoRA weights are linear in the rank: rank 2 must hold exactly twice as many
            assert two[family][part]["params"] == 2 * numbers["params"], (family, part)
            row[part] = {"modules": numbers["modules"], "params_per_rank": numbers["params"]}
        row["total"] = {
            "modules": sum(p["modules"] for p in parts.values()),
            "params_per_rank": sum(p["params"] for p in parts.values()),
        }
        result[family] = row
    return result


def read_lora_file(path: pathlib.Path) -> dict[str, Any]:
    """Per part (lora_unet, lora_te1, ...): modules, rank, params / rank, from the header."""
    with path.open("rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    metadata = header.pop("__metadata__", {})
    parts: dict[str, dict[str, int]] = {}
    ranks: set[int] = set()
    for name, spec in header.items():
        prefix = "_".join(name.split("_")[:2])
        part = parts.setdefault(prefix, {"modules": 0, "params": 0})
        if name.endswith(".alpha"):
            part["modules"] += 1
        elif name.endswith((".lora_down.weight", ".lora_up.weight")):
            n = 1
            for d in spec["shape"]:
                n *= d
            part["params"] += n
            if name.endswith(".lora_down.weight"):
                ranks.add(spec["shape"][0])
    if len(ranks) != 1:
        msg = f"{path}: not one rank for all modules: {sorted(ranks)}"
        raise ValueError(msg)
    (rank,) = ranks
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "rank": rank,
        "network_module": metadata.get("ss_network_module"),
        "parts": {
            p: {"modules": v["modules"], "params_per_rank": v["params"] // rank}
            for p, v in sorted(parts.items())
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sd-scripts", type=pathlib.Path, default=DEFAULT_SD_SCRIPTS)
    ap.add_argument("--lora-file", type=pathlib.Path, nargs="+", help="saved LoRA files to read")
    args = ap.parse_args(argv)
    if args.lora_file:
        print(json.dumps([read_lora_file(p) for p in args.lora_file], indent=1))
        return 0
    if not (args.sd_scripts / "train_network.py").is_file():
        print(
            f"error: {args.sd_scripts} has no train_network.py; "
            "run: git submodule update --init vendor/sd-scripts (or set KOHYA_SD_SCRIPTS)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(table(args.sd_scripts), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
