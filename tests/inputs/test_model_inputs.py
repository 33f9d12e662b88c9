"""The base model and tokenizer as `check` and `make` handle them: family read from the
checkpoint header, Hub models and the CLIP tokenizer made local before sd-scripts starts."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import base_plan, make_images, write_plan
from test_checkpoint import write_safetensors

from kohya_plan.loading import loads_toml


def _project(tmp_path: Path, **model: object) -> Path:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 3)
    return write_plan(tmp_path, base_plan(model={"clip_skip": 2, **model}))


def test_sdxl_checkpoint_for_an_sd15_plan_is_refused(tmp_path: Path, run_cli) -> None:
    write_safetensors(
        tmp_path / "sdxl.safetensors",
        {"conditioner.embedders.1.model.ln_final.weight": [4], "model.diffusion_model.x": [2]},
    )
    result = run_cli("check", _project(tmp_path, base="sdxl.safetensors"), "--no-hardware")
    assert result.exit_code == 2, result.output
    assert "model.base" in result.output
    assert "family = 'sdxl'" in result.output


def test_a_lora_given_as_base_model_is_refused(tmp_path: Path, run_cli) -> None:
    write_safetensors(
        tmp_path / "mylora.safetensors",
        {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 320]},
    )
    result = run_cli("check", _project(tmp_path, base="mylora.safetensors"), "--json")
    doc = json.loads(result.stdout)
    assert [e["id"] for e in doc["errors"]] == ["model-family"]
    assert "LoRA" in doc["errors"][0]["message"]


def test_a_truncated_checkpoint_is_refused(tmp_path: Path, run_cli) -> None:
    write_safetensors(
        tmp_path / "broken.safetensors", {"cond_stage_model.transformer.x": [64]}, data_size=10
    )
    result = run_cli("check", _project(tmp_path, base="broken.safetensors"), "--json")
    assert [e["id"] for e in json.loads(result.stdout)["errors"]] == ["model-unreadable"]


def test_make_uses_the_cached_hub_model_and_fills_the_tokenizer_folder(
    tmp_path: Path, run_cli, offline_hub: Path
) -> None:
    plan = _project(tmp_path, tokenizer_cache_dir="tok")
    result = run_cli("make", plan, "--json")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    config = loads_toml((run_dir / "config.toml").read_text())["model"]
    model = Path(config["pretrained_model_name_or_path"])
    assert model.is_relative_to(offline_hub)
    assert (model / "model_index.json").is_file()
    assert config["tokenizer_cache_dir"] == str(tmp_path / "tok")
    tokenizer = tmp_path / "tok" / "openai_clip-vit-large-patch14"
    assert (tokenizer / "tokenizer_config.json").is_file()
    assert (tokenizer / "vocab.json").is_file()


def test_dry_run_downloads_nothing(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path, tokenizer_cache_dir="tok")
    result = run_cli("make", plan, "--dry-run", "--json")
    assert result.exit_code == 0
    assert not (tmp_path / "tok").exists()


def test_offline_and_not_cached_names_the_repo_and_writes_nothing(tmp_path: Path, run_cli) -> None:
    plan = _project(tmp_path, base="someone/not-cached-model")
    check = run_cli("check", plan, "--no-hardware")
    assert check.exit_code == 0, check.output  # check does not download
    result = run_cli("make", plan)
    assert result.exit_code == 2
    assert "someone/not-cached-model" in result.output
    assert "HF_HUB_OFFLINE" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
