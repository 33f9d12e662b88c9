"""What a family's plan points at: FLUX.1's four files told apart by their headers, the block
and layer counts read from them, model files missing or wrong, a Diffusers folder refused as the
DiT, and the tokenizers and files fetched from the Hub (offline cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import FLUX_STUB_TENSORS, base_plan, flux_stub_files, make_images, write_plan
from helpers import write_safetensors as write_st

from kohya_plan.errors import LaunchError
from kohya_plan.inputs import hub
from kohya_plan.inputs.checkpoint import (
    detect_family,
    family_from_keys,
    file_problem,
    model_shape,
)

DIT = FLUX_STUB_TENSORS["dit"]
COMFY_DIT = {f"model.diffusion_model.{k}": v for k, v in DIT.items()}
DIFFUSERS_DIT = {
    "transformer_blocks.0.attn.add_k_proj.bias": [2],
    "transformer_blocks.1.attn.add_k_proj.bias": [2],
    "single_transformer_blocks.0.attn.to_k.bias": [2],
    "time_text_embed.guidance_embedder.linear_1.bias": [2],
}
CHROMA = {**DIT, "distilled_guidance_layer.in_proj.weight": [2, 2]}
SCHNELL = {k: v for k, v in DIT.items() if not k.startswith("guidance_in.")}
SD_VAE = {
    "encoder.conv_in.weight": [2, 3, 1, 1],
    "encoder.conv_out.weight": [8, 2, 1, 1],
    "decoder.conv_out.weight": [3, 2, 1, 1],
    "quant_conv.weight": [8, 8, 1, 1],
}
DIFFUSERS_AE = {
    "encoder.down_blocks.0.resnets.0.conv1.weight": [2, 2, 1, 1],
    "encoder.conv_out.weight": [32, 2, 1, 1],
    "decoder.conv_out.weight": [3, 2, 1, 1],
}
T5_SCALED = {**FLUX_STUB_TENSORS["t5xxl"], "scaled_fp8": [1]}
BIG_G_TEXT = {
    "text_model.encoder.layers.0.self_attn.q_proj.weight": [2, 2],
    "text_model.final_layer_norm.weight": [1280],
}


@pytest.mark.parametrize(
    ("tensors", "kind"),
    [
        (DIT, "flux"),
        (COMFY_DIT, "flux"),
        (DIFFUSERS_DIT, "flux"),
        (CHROMA, "chroma"),
        (FLUX_STUB_TENSORS["ae"], "flux-ae"),
        (DIFFUSERS_AE, "flux-ae-diffusers"),
        (SD_VAE, "vae"),
        (FLUX_STUB_TENSORS["clip_l"], "clip-l"),
        (BIG_G_TEXT, None),
        (FLUX_STUB_TENSORS["t5xxl"], "t5xxl"),
        (T5_SCALED, "t5xxl-scaled"),
    ],
)
def test_flux_files_are_told_apart_by_their_headers(
    tmp_path: Path, tensors: dict[str, list[int]], kind: str | None
) -> None:
    assert detect_family(write_st(tmp_path / "m.safetensors", tensors)) == kind


def test_lora_keys_still_win() -> None:
    assert family_from_keys(["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"]) == "lora"


def test_block_counts_from_the_dit_header(tmp_path: Path) -> None:
    dev = write_st(tmp_path / "dev.safetensors", DIT)
    assert model_shape(dev, "flux") == {"dit.double": 1, "dit.single": 1, "dit.guidance": 1}
    comfy = write_st(tmp_path / "comfy.safetensors", COMFY_DIT)
    assert model_shape(comfy, "flux")["dit.double"] == 1
    diffusers = write_st(tmp_path / "d.safetensors", DIFFUSERS_DIT)
    assert model_shape(diffusers, "flux") == {"dit.double": 2, "dit.single": 1, "dit.guidance": 1}
    schnell = write_st(tmp_path / "s.safetensors", SCHNELL)
    assert model_shape(schnell, "flux")["dit.guidance"] == 0


def test_text_encoder_shapes(tmp_path: Path) -> None:
    t5 = write_st(tmp_path / "t5.safetensors", FLUX_STUB_TENSORS["t5xxl"], dtype="F8_E4M3", width=1)
    assert model_shape(t5, "t5xxl") == {"t5.blocks": 1, "t5.fp8": 1}
    folder = tmp_path / "sdxl"
    for sub, layers, hidden, inner in (
        ("text_encoder", 11, 768, 768),
        ("text_encoder_2", 2, 1280, 5120),
    ):
        (folder / sub).mkdir(parents=True)
        config = {"num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": inner}
        (folder / sub / "config.json").write_text(json.dumps(config))
    # the lab's tiny SDXL (tests/sdlab_make_tiny_sdxl.py): 11-layer CLIP-L of width 768/768
    assert model_shape(folder, "sdxl") == {
        "te1.layers": 11,
        "te1.layers:params": 9_216,
        "te2.layers": 2,
        "te2.layers:params": 23_040,
    }


def test_file_problems_name_what_the_file_is() -> None:
    assert file_problem(None, "flux-ae", "the AutoEncoder") is None
    assert file_problem("flux-ae", "flux-ae", "the AutoEncoder") is None
    assert "an SDXL model, not the AutoEncoder" in str(
        file_problem("sdxl", "flux-ae", "the AutoEncoder")
    )
    assert "t5xxl_fp8_e4m3fn.safetensors" in str(file_problem("t5xxl-scaled", "t5xxl", "T5"))


# --- check on a FLUX.1 plan's files -----------------------------------------------------------


def _flux_project(tmp_path: Path, **model: Any) -> Path:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 3)
    stubs = flux_stub_files(tmp_path / "models")
    files = {
        "base": stubs["dit"],
        "ae": stubs["ae"],
        "clip_l": stubs["clip_l"],
        "t5xxl": stubs["t5xxl"],
    }
    values = {"family": "flux", **{k: str(v) for k, v in files.items()}, **model}
    data = base_plan(model=values, network={"module": "networks.lora_flux"})
    data["model"].pop("clip_skip")
    return write_plan(tmp_path, data)


def _errors(run_cli: Any, plan: Path) -> dict[str, tuple[str, str]]:
    doc = json.loads(run_cli("check", plan, "--json", "--no-hardware").stdout)
    return {e["field"]: (e["id"], f"{e['message']} — {e['fix']}") for e in doc["errors"]}


def test_a_complete_flux_plan_checks_clean(tmp_path: Path, run_cli: Any) -> None:
    plan = _flux_project(tmp_path)
    doc = json.loads(run_cli("check", plan, "--json", "--no-hardware").stdout)
    assert doc["errors"] == []
    assert doc["model"]["detected"] == "flux"
    assert {k: v["detected"] for k, v in doc["model"]["files"].items()} == {
        "ae": "flux-ae",
        "clip_l": "clip-l",
        "t5xxl": "t5xxl",
    }
    # the stub DiT has 1+1 blocks and the stub CLIP-L one layer: the LoRA is counted for them
    assert doc["model"]["shape"] == {
        "dit.double": 1,
        "dit.single": 1,
        "dit.guidance": 1,
        "te1.layers": 1,
        "t5.blocks": 1,
    }
    assert doc["lora"]["parameters"] == (141_312 + 55_296 + 13_824) * 32


def test_flux_model_files_missing_wrong_or_folders(tmp_path: Path, run_cli: Any) -> None:
    write_st(tmp_path / "sdvae.safetensors", SD_VAE)
    (tmp_path / "t5 folder").mkdir()
    plan = _flux_project(
        tmp_path,
        ae=str(tmp_path / "sdvae.safetensors"),
        clip_l=str(tmp_path / "nowhere.safetensors"),
        t5xxl=str(tmp_path / "t5 folder"),
    )
    errors = _errors(run_cli, plan)
    assert errors["model.ae"][0] == "model-family"
    assert "a VAE on its own (not a full model), not the AutoEncoder" in errors["model.ae"][1]
    assert errors["model.clip_l"][0] == "model-missing"
    assert errors["model.t5xxl"][0] == "model-format"


def test_the_dit_as_a_diffusers_folder_or_whole_repo_is_refused(
    tmp_path: Path, run_cli: Any
) -> None:
    folder = tmp_path / "FLUX.1-dev"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    errors = _errors(run_cli, _flux_project(tmp_path, base=str(folder)))
    assert errors["model.base"][0] == "model-format"
    assert "Diffusers folders are not supported" in errors["model.base"][1]
    errors = _errors(run_cli, _flux_project(tmp_path, base="black-forest-labs/FLUX.1-dev"))
    assert errors["model.base"][0] == "model-format"


def test_a_flux_dit_in_an_sdxl_plan_is_refused(tmp_path: Path, run_cli: Any) -> None:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 3)
    dit = write_st(tmp_path / "flux1-dev.safetensors", DIT)
    data = base_plan(model={"base": str(dit), "family": "sdxl"})
    data["model"].pop("clip_skip")
    errors = _errors(run_cli, write_plan(tmp_path, data))
    assert errors["model.base"][0] == "model-family"
    assert "set model.family = 'flux'" in errors["model.base"][1]


# --- the Hub: several files from different repositories, and the tokenizers ---------------------


def test_flux_tokenizers_offline_from_the_cache(tmp_path: Path, offline_hub: Path) -> None:
    cache = offline_hub / "hub"
    t5 = {"tokenizer_config.json": b"{}", "spiece.model": b"sp", "special_tokens_map.json": b"{}"}
    with pytest.raises(LaunchError) as info:
        hub.resolve_tokenizers("flux", tmp_path / "tok")
    message = str(info.value)
    assert message.startswith("tokenizer google/t5-v1_1-xxl: tokenizer_config.json")
    assert "`hf download google/t5-v1_1-xxl tokenizer_config.json spiece.model`" in message
    helpers.cache_repo(cache, "google/t5-v1_1-xxl", t5)
    hub.resolve_tokenizers("flux", tmp_path / "tok")
    folder = tmp_path / "tok" / "google_t5-v1_1-xxl"
    assert sorted(p.name for p in folder.iterdir()) == sorted(t5)
    assert hub.tokenizer_ready(folder, hub.T5_XXL)
    assert hub.tokenizer_ready(tmp_path / "tok" / "openai_clip-vit-large-patch14")


def test_flux_files_from_several_repos(tmp_path: Path, offline_hub: Path, run_cli: Any) -> None:
    """make resolves the DiT, AE, CLIP-L and T5 (each ONE file of its repo) before launch."""
    cache = offline_hub / "hub"
    scratch = tmp_path / "scratch"
    stubs = flux_stub_files(scratch)
    helpers.cache_repo(
        cache,
        "org/flux-dev",
        {
            "flux1-dev.safetensors": stubs["dit"].read_bytes(),
            "ae.safetensors": stubs["ae"].read_bytes(),
        },
    )
    helpers.cache_repo(
        cache,
        "org/text-encoders",
        {
            "clip_l.safetensors": stubs["clip_l"].read_bytes(),
            "t5xxl_fp16.safetensors": stubs["t5xxl"].read_bytes(),
        },
    )
    helpers.cache_repo(
        cache,
        "google/t5-v1_1-xxl",
        {"tokenizer_config.json": b"{}", "spiece.model": b"sp"},
    )
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 3)
    model = {
        "base": "org/flux-dev/flux1-dev.safetensors",
        "family": "flux",
        "ae": "org/flux-dev/ae.safetensors",
        "clip_l": "org/text-encoders/clip_l.safetensors",
        "t5xxl": "org/text-encoders/t5xxl_fp16.safetensors",
    }
    data = base_plan(model=model, network={"module": "networks.lora_flux"})
    data["model"].pop("clip_skip")
    plan = write_plan(tmp_path, data)
    made = run_cli("make", plan, "--json")
    assert made.exit_code == 0, made.output
    run_dir = Path(json.loads(made.stdout)["run_dir"])
    check = json.loads((run_dir / "check.json").read_text())
    files = check["inputs"]["model_files"]
    assert sorted(files) == ["ae", "clip_l", "t5xxl"]
    for key, path in files.items():
        local = Path(path)
        assert local.is_file(), key
        assert not local.is_symlink(), key
        assert local.name.endswith(".safetensors")
    config = (run_dir / "config.toml").read_text()
    assert f'ae = "{files["ae"]}"' in config
    # a repo without a file is refused, naming the field and the form
    data["model"]["t5xxl"] = "org/text-encoders"
    plan = write_plan(tmp_path, data, name="plan2.toml")
    refused = run_cli("make", plan)
    assert refused.exit_code == 2
    assert "model.t5xxl" in refused.output
    assert "ORG/NAME/FILE.safetensors" in refused.output


def test_offline_make_names_every_missing_flux_file_at_once(tmp_path: Path, run_cli: Any) -> None:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 3)
    model = {
        "base": "org/flux-dev/flux1-dev.safetensors",
        "family": "flux",
        "ae": "org/flux-dev/ae.safetensors",
        "clip_l": "org/text-encoders/clip_l.safetensors",
        "t5xxl": "org/text-encoders/t5xxl_fp16.safetensors",
    }
    data = base_plan(model=model, network={"module": "networks.lora_flux"})
    data["model"].pop("clip_skip")
    before = sorted(tmp_path.rglob("*"))
    result = run_cli("make", write_plan(tmp_path, data))
    assert result.exit_code == 2
    for field in ("model.base", "model.ae", "model.clip_l", "model.t5xxl"):
        assert f"{field}: " in result.output, field
    assert "tokenizer google/t5-v1_1-xxl" in result.output
    assert "HF_HUB_OFFLINE is set" in result.output
    assert sorted(tmp_path.rglob("*")) == [*before, tmp_path / "plan.toml"]  # no run folder
