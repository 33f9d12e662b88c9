"""kohya_plan.inputs.checkpoint: family detection from safetensors headers and Diffusers folders."""

from __future__ import annotations

import json
import struct
import time
from typing import TYPE_CHECKING, Any

import pytest

from kohya_plan.inputs.checkpoint import (
    CheckpointError,
    detect_family,
    family_from_header,
    family_problem,
    header_keys,
    read_header,
)

if TYPE_CHECKING:
    from pathlib import Path

Tensors = dict[str, list[int]]


def write_safetensors(
    path: Path,
    tensors: Tensors,
    metadata: dict[str, str] | None = None,
    *,
    data_size: int | None = None,
) -> Path:
    """A real safetensors file: fp16 tensors of the given shapes, zero-filled.

    With ``data_size`` the data part is made that long (sparse) instead of its true size, to
    test truncated and oversize files, or huge files cheaply.
    """
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        size = 2
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads its header with spaces
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + (offset if data_size is None else data_size))
    return path


SD15: Tensors = {
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": [4, 8],
    "model.diffusion_model.input_blocks.0.0.weight": [4, 4, 3, 3],
    "first_stage_model.encoder.conv_in.weight": [4, 3, 3, 3],
}
SD15_OLD_TEXT: Tensors = {  # CLIP keys without "text_model." (sd-scripts renames them)
    "cond_stage_model.transformer.embeddings.token_embedding.weight": [4, 8],
    "model.diffusion_model.out.2.bias": [4],
}
SD2: Tensors = {
    "cond_stage_model.model.token_embedding.weight": [4, 8],
    "model.diffusion_model.input_blocks.0.0.weight": [4, 4, 3, 3],
}
SDXL: Tensors = {
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [4, 8],
    "conditioner.embedders.1.model.token_embedding.weight": [4, 8],
    "model.diffusion_model.label_emb.0.0.weight": [8, 4],
    "first_stage_model.decoder.conv_out.bias": [3],
}
LORA_SD15: Tensors = {
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 8],
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": [8, 4],
    "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": [],
    "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 8],
}
LORA_SDXL: Tensors = {
    "lora_unet_input_blocks_4_1_proj_in.lora_down.weight": [4, 8],
    "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 8],
    "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 8],
}
LORA_DIFFUSERS: Tensors = {
    "unet.down_blocks.0.attentions.0.proj_in.lora.down.weight": [4, 8],
    "text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_A.weight": [4, 8],
}
VAE: Tensors = {
    "encoder.conv_in.weight": [4, 3, 3, 3],
    "decoder.conv_out.weight": [3, 4, 3, 3],
    "quant_conv.weight": [8, 8, 1, 1],
}
CONTEXT_KEY = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


@pytest.mark.parametrize(
    ("tensors", "metadata", "expected"),
    [
        (SD15, None, "sd15"),
        (SD15_OLD_TEXT, None, "sd15"),
        (SD2, None, "sd2"),
        (SDXL, None, "sdxl"),
        (LORA_SD15, {"ss_network_module": "networks.lora"}, "lora"),
        (LORA_SDXL, None, "lora"),
        (LORA_DIFFUSERS, None, "lora"),
        ({"some.weight": [2]}, {"ss_network_module": "networks.lora"}, "lora"),
        (VAE, None, "vae"),
        # a bare U-Net: the text width of its cross-attention tells SD1 from SD2
        ({CONTEXT_KEY: [320, 768]}, None, "sd15"),
        ({CONTEXT_KEY: [320, 1024]}, None, "sd2"),
        ({"model.diffusion_model.label_emb.0.0.weight": [8, 4]}, None, "sdxl"),
        ({"model.diffusion_model.out.2.bias": [4]}, None, None),
        # unknown keys: the modelspec metadata decides, else unknown
        ({"x.weight": [2]}, {"modelspec.architecture": "stable-diffusion-xl-v1-base"}, "sdxl"),
        ({"x.weight": [2]}, {"modelspec.architecture": "stable-diffusion-v1"}, "sd15"),
        ({"x.weight": [2]}, {"modelspec.architecture": "stable-diffusion-v1/lora"}, "lora"),
        ({"x.weight": [2]}, None, None),
        ({}, None, None),
    ],
)
def test_detect_family_from_a_safetensors_header(
    tmp_path: Path, tensors: Tensors, metadata: dict[str, str] | None, expected: str | None
) -> None:
    path = write_safetensors(tmp_path / "model.safetensors", tensors, metadata)
    assert detect_family(path) == expected


def test_header_is_read_without_the_tensors(tmp_path: Path) -> None:
    """A 'file' with 40 GB of (sparse) tensor data is classified from its header in no time."""
    tensors = dict(SDXL)
    tensors["model.diffusion_model.big"] = [20_000, 1_000_000]
    path = write_safetensors(tmp_path / "huge.safetensors", tensors)
    assert path.stat().st_size > 40_000_000_000
    start = time.perf_counter()
    assert detect_family(path) == "sdxl"
    assert time.perf_counter() - start < 1.0


def test_header_keys_and_metadata(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "m.safetensors", SD15, {"modelspec.title": "x"})
    assert header_keys(path) == list(SD15)
    header = read_header(path)
    assert header["__metadata__"] == {"modelspec.title": "x"}
    assert header[next(iter(SD15))]["shape"] == [4, 8]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: _write(p, b"abc"), "too short"),
        (lambda p: _write(p, struct.pack("<Q", 10**12) + b"{}"), "header length"),
        (lambda p: _write(p, struct.pack("<Q", 4) + b"\xff\xfe{}"), "not JSON"),
        (lambda p: _write(p, struct.pack("<Q", 7) + b'{"a": }'), "not JSON"),
        (lambda p: _write(p, struct.pack("<Q", 2) + b"[]"), "not a JSON object"),
        (lambda p: _write(p, struct.pack("<Q", 12) + b'{"a": {"x":1}}'[:12]), "not JSON"),
        (
            lambda p: _write(p, struct.pack("<Q", 14) + b'{"a": {"s":1}}'),
            "no byte range",
        ),
        (lambda p: write_safetensors(p, SD15, data_size=10), "truncated"),
        (lambda p: write_safetensors(p, SD15, data_size=10_000), "after its last tensor"),
    ],
)
def test_a_corrupt_safetensors_file_is_reported(tmp_path: Path, make: Any, words: str) -> None:
    path = make(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match=words) as info:
        detect_family(path)
    assert "bad.safetensors" in str(info.value)


def test_truncated_file_names_both_sizes(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "cut.safetensors", SD15, data_size=100)
    with pytest.raises(CheckpointError) as info:
        read_header(path)
    assert "only 100 follow" in str(info.value)


def test_missing_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read"):
        detect_family(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickles_are_unknown(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"model{suffix}", b"\x80\x02garbage that is never unpickled")
    assert detect_family(path) is None


def test_other_suffix_is_tried_as_safetensors(tmp_path: Path) -> None:
    good = write_safetensors(tmp_path / "model.sft", SDXL)
    assert detect_family(good) == "sdxl"
    assert detect_family(_write(tmp_path / "notes.txt", b"hello")) is None


def _diffusers(folder: Path, index: dict[str, Any], configs: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(index))
    for name, config in configs.items():
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(json.dumps(config))
    return folder


SD_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "text_encoder": ["transformers", "CLIPTextModel"],
    "unet": ["diffusers", "UNet2DConditionModel"],
}
XL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
}


@pytest.mark.parametrize(
    ("index", "configs", "expected"),
    [
        (SD_INDEX, {"text_encoder": {"hidden_size": 768}}, "sd15"),
        (SD_INDEX, {"text_encoder": {"hidden_size": 32}}, "sd15"),  # a tiny test model
        (SD_INDEX, {"text_encoder": {"hidden_size": 1024}}, "sd2"),
        (SD_INDEX, {"unet": {"cross_attention_dim": 1024}}, "sd2"),
        (SD_INDEX, {}, "sd15"),
        (XL_INDEX, {}, "sdxl"),
        (
            {
                **XL_INDEX,
                "_class_name": "StableDiffusionXLImg2ImgPipeline",
                "text_encoder": [None, None],
            },
            {},
            None,
        ),  # the SDXL refiner
        ({"_class_name": "FluxPipeline"}, {}, None),
    ],
)
def test_detect_family_of_a_diffusers_folder(
    tmp_path: Path, index: dict[str, Any], configs: dict[str, dict[str, Any]], expected: str | None
) -> None:
    assert detect_family(_diffusers(tmp_path / "model", index, configs)) == expected


def test_folders_without_model_index(tmp_path: Path) -> None:
    assert detect_family(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    assert detect_family(tmp_path) == "vae"
    (tmp_path / "model_index.json").write_text("{not json")
    assert detect_family(tmp_path) is None


def test_family_from_a_hub_style_header() -> None:
    """Values may be objects with a .shape (huggingface_hub's TensorInfo), not dicts."""

    class Info:
        def __init__(self, shape: list[int]) -> None:
            self.shape = shape

    assert family_from_header({CONTEXT_KEY: Info([320, 1024]), "__metadata__": {}}) == "sd2"


@pytest.mark.parametrize(
    ("detected", "family", "words"),
    [
        (None, "sd15", None),
        ("sd15", "sd15", None),
        ("sdxl", "sdxl", None),
        ("sdxl", "sd15", "an SDXL model but model.family is 'sd15'; set model.family = 'sdxl'"),
        ("sd15", "sdxl", "an SD1.x model but model.family is 'sdxl'; set model.family = 'sd15'"),
        ("sd2", "sd15", "SD1.5 (model.family = 'sd15'), SDXL and FLUX.1 only"),
        (
            "flux",
            "sdxl",
            "a FLUX.1 model (DiT) but model.family is 'sdxl'; set model.family = 'flux'",
        ),
        ("flux", "flux", None),
        ("chroma", "flux", None),
        ("flux-ae", "flux", "set it as model.ae and point model.base at the FLUX.1 DiT"),
        ("t5xxl", "sd15", "set it as model.t5xxl"),
        ("lora", "sd15", "a LoRA"),
        ("vae", "sdxl", "a VAE on its own"),
    ],
)
def test_family_problem(detected: str | None, family: str, words: str | None) -> None:
    problem = family_problem(detected, family)
    if words is None:
        assert problem is None
    else:
        assert problem is not None
        assert words in problem
