"""Small builders for test plans and datasets (PNG files without Pillow)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import toml
from sdlab import write_png

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "base_plan",
    "make_images",
    "write_diffusers",
    "write_plan",
    "write_png",
    "write_sdxl_diffusers",
]


TESTS = Path(__file__).resolve().parent
"""The tests folder (fixtures, golden files, artifacts)."""
REPO = TESTS.parent
"""The repository root (examples/, vendor/)."""


def make_images(
    folder: Path,
    sizes: Iterable[tuple[int, int]],
    *,
    caption: str | None = "testchar, red hair, smiling",
    stem: str = "img",
    ext: str = ".png",
    caption_ext: str = ".txt",
) -> Path:
    """Solid PNGs of the given sizes, each with a caption unless caption is None."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, (w, h) in enumerate(sizes):
        write_png(folder / f"{stem}{index}{ext}", w, h, (40 * index % 256, 120, 200))
        if caption is not None:
            (folder / f"{stem}{index}{caption_ext}").write_text(caption, encoding="utf-8")
    return folder


def base_plan(**sections: Mapping[str, Any]) -> dict[str, Any]:
    """A valid plan for a dataset at ./data (model is a Hub id, so nothing is downloaded)."""
    plan: dict[str, Any] = {
        "model": {"base": "stable-diffusion-v1-5/stable-diffusion-v1-5", "clip_skip": 2},
        "dataset": {"train_dir": "data", "resolution": 512},
        "network": {"dim": 32, "alpha": 16},
        "optimizer": {"learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 5e-5},
        "training": {"epochs": 10},
        "output": {"dir": "out", "name": "testlora"},
        "launch": {"sd_scripts": "sd-scripts", "python": "/opt/sd/bin/python"},
    }
    for name, values in sections.items():
        plan.setdefault(name, {}).update(values)
    return plan


def write_plan(folder: Path, data: Mapping[str, Any], name: str = "plan.toml") -> Path:
    """Write plan data as TOML into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(toml.dumps(dict(data)), encoding="utf-8")
    return path


SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CLIP_REPO = "openai/clip-vit-large-patch14"
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(
    cache: Path,
    repo_id: str,
    files: Mapping[str, bytes],
    *,
    commit: str = FAKE_COMMIT,
    refs: tuple[str, ...] = ("main",),
) -> Path:
    """A repo laid out in a Hugging Face cache as huggingface_hub does (blobs, snapshot, refs;
    the ref files hold the hash without a newline, as huggingface_hub writes them)."""
    import hashlib
    import os

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(os.path.relpath(blob, target.parent))
    snapshot.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        ref_file = repo / "refs" / ref
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        ref_file.write_text(commit)
    return snapshot


def sd15_pipeline(**extra: bytes) -> dict[str, bytes]:
    """The files of a small SD1.5 Diffusers repo as sd-scripts reads them."""
    import json

    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.32.1",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    files = {
        "model_index.json": json.dumps(index).encode(),
        "feature_extractor/preprocessor_config.json": b"{}",
        "scheduler/scheduler_config.json": b"{}",
        "text_encoder/config.json": json.dumps({"hidden_size": 768}).encode(),
        "text_encoder/model.safetensors": b"te",
        "unet/config.json": b"{}",
        "unet/diffusion_pytorch_model.safetensors": b"unet",
        "vae/config.json": b"{}",
        "vae/diffusion_pytorch_model.safetensors": b"vae",
    }
    files.update(extra)
    return files


def write_diffusers(folder: Path, **extra: bytes) -> Path:
    """A local SD1.5 Diffusers folder (tiny, fake weights) that `check` accepts as a model."""
    for name, content in sd15_pipeline(**extra).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return folder


def sdxl_pipeline() -> dict[str, bytes]:
    """The files of a small SDXL Diffusers folder as kohya-plan checks them (fake weights)."""
    import json

    index = {
        "_class_name": "StableDiffusionXLPipeline",
        "_diffusers_version": "0.32.1",
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    files = {"model_index.json": json.dumps(index).encode()}
    files["scheduler/scheduler_config.json"] = b"{}"
    for part in ("text_encoder", "text_encoder_2", "unet", "vae"):
        files[f"{part}/config.json"] = b"{}"
        files[f"{part}/model.safetensors"] = part.encode()
    for part in ("tokenizer", "tokenizer_2"):
        files[f"{part}/vocab.json"] = b"{}"
    return files


def write_sdxl_diffusers(folder: Path) -> Path:
    """A local SDXL Diffusers folder (fake weights) that `check` accepts as a model."""
    for name, content in sdxl_pipeline().items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return folder


def fake_hub(home: Path) -> Path:
    """An offline Hugging Face cache holding a (tiny, fake) SD1.5 repo and the CLIP tokenizer,
    so that plans naming the Hub model resolve without a network."""
    cache = home / "hub"
    cache_repo(cache, SD15_REPO, sd15_pipeline())
    cache_repo(
        cache,
        CLIP_REPO,
        {
            "vocab.json": b'{"a": 0}',
            "merges.txt": b"#version: 0.2\n",
            "tokenizer_config.json": b'{"model_max_length": 77}',
            "special_tokens_map.json": b"{}",
        },
    )
    return cache


def write_safetensors(
    path: Path, tensors: Mapping[str, list[int]], dtype: str = "BF16", width: int = 2
) -> Path:
    """A real, complete safetensors file of zero-filled tensors (header and data)."""
    import json
    import struct

    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        size = width
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return path


FLUX_STUB_TENSORS: dict[str, dict[str, list[int]]] = {
    # the keys inputs.checkpoint reads (flux_utils.analyze_checkpoint_state's own), tiny shapes
    "dit": {
        "double_blocks.0.img_attn.qkv.weight": [2, 2],
        "double_blocks.0.img_attn.proj.bias": [2],
        "single_blocks.0.linear1.weight": [2, 2],
        "single_blocks.0.modulation.lin.bias": [2],
        "guidance_in.in_layer.bias": [2],
        "img_in.weight": [2, 2],
    },
    "ae": {
        "encoder.conv_in.weight": [2, 3, 1, 1],
        "encoder.down.0.block.0.conv1.weight": [2, 2, 1, 1],
        "encoder.conv_out.weight": [32, 2, 1, 1],
        "decoder.conv_out.weight": [3, 2, 1, 1],
    },
    "clip_l": {
        "text_model.embeddings.token_embedding.weight": [2, 2],
        "text_model.encoder.layers.0.self_attn.q_proj.weight": [2, 2],
        "text_model.final_layer_norm.weight": [768],
    },
    "t5xxl": {
        "shared.weight": [2, 2],
        "encoder.block.0.layer.0.SelfAttention.q.weight": [2, 2],
        "encoder.final_layer_norm.weight": [2],
    },
}


def flux_stub_files(folder: Path) -> dict[str, Path]:
    """FLUX.1's four files as headers `check` recognises (DiT with 1+1 blocks, dev): for tests
    that render, not train. Keys: dit, ae, clip_l, t5xxl."""
    return {
        name: write_safetensors(folder / f"{name}.safetensors", tensors)
        for name, tensors in FLUX_STUB_TENSORS.items()
    }


def ready_tokenizers(cache_dir: Path, family: str) -> Path:
    """`cache_dir` filled with stand-in tokenizer folders of `family` (what sd-scripts looks
    for under --tokenizer_cache_dir), so `make` needs no Hub: for rendering tests."""
    from kohya_plan.families import family as lookup

    for source in lookup(family).tokenizers:
        folder = cache_dir / source.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in (*source.files, *source.any_of[:1]):
            (folder / name).write_text("{}", encoding="utf-8")
    return cache_dir


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR says width x height (all a header reader and Pillow's open look at)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def trainer_script(argv: list[str]) -> str:
    """The file name of the sd-scripts script an `accelerate launch …` argv starts."""
    return next(Path(a).name for a in argv if a.endswith(".py"))
