"""SDXL and Flux imports, end to end: import → `make --dry-run` renders the family's own script
with its options (model.family = "flux", model.ae/clip_l/t5xxl, the [flux] section, text-encoder
LRs as they take effect, launch.extra checked against the plan's own script)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from helpers import flux_stub_files, make_images, trainer_script

from kohya_plan.loading import loads_toml
from kohya_plan.rules import RULES

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
WAIVE_ALL = "rules.allow=[" + ",".join(f'"{r}"' for r, rule in RULES.items() if rule.waivable) + "]"


def _make(run_cli: Any, source: Path, *sets: str) -> dict[str, Any]:
    plan = source.with_name("imported.plan.toml")
    result = run_cli("import", source, "-o", plan)
    assert result.exit_code == 0, result.output
    args = ["make", plan, "--dry-run", "--json", "--set", WAIVE_ALL]
    for item in sets:
        args += ["--set", item]
    made = run_cli(*args)
    assert made.exit_code == 0, made.output
    data: dict[str, Any] = json.loads(made.output)
    return data


def _config(data: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for value in loads_toml(data["files"]["config.toml"]).values():
        config.update(value)
    return config


def _kohya_ss(tmp_path: Path, name: str) -> Path:
    config = tmp_path / "kohya_ss" / "test" / "config"
    config.mkdir(parents=True)
    shutil.copy(FIXTURES / "kohya_ss-configs" / name, config)
    make_images(tmp_path / "kohya_ss" / "test" / "img" / "10_a", [(1024, 1024)] * 2)
    return config / name


def test_sdxl_gui_config_renders_for_sdxl_train_network(tmp_path: Path, run_cli: Any) -> None:
    # the config's bucket_reso_steps 1 is refused by check (sd-scripts asserts a multiple)
    source = _kohya_ss(tmp_path, "SDXL-Standard-AdamW8bit.json")
    data = _make(run_cli, source, "dataset.bucket_reso_steps=64")
    assert trainer_script(data["argv"]) == ("sdxl_train_network.py")
    config = _config(data)
    # lora_gui.py L2155-2160 / L2344: the SDXL fields become sdxl_train_network.py options
    assert config["cache_text_encoder_outputs"] is True
    assert config["no_half_vae"] is True
    assert config["network_train_unet_only"] is True  # text_encoder_lr 0, unet_lr 1e-6
    assert config["unet_lr"] == 1e-6
    assert config["max_train_steps"] == 1600  # no key in the file: the fresh GUI's 1600
    assert config["min_snr_gamma"] == 10.0
    assert config["noise_offset"] == 0.0357


def test_flux_gui_config_renders_for_flux_train_network(tmp_path: Path, run_cli: Any) -> None:
    stubs = flux_stub_files(tmp_path / "models")
    names = {"base" if k == "dit" else k: v for k, v in stubs.items()}
    source = _kohya_ss(tmp_path, "flux1D - adamw8bit fp8.json")
    sets = [f"model.{k}={v}" for k, v in names.items()] + [
        f"dataset.train_dir={tmp_path / 'kohya_ss' / 'test' / 'img'}"
    ]
    data = _make(run_cli, source, *sets)
    assert trainer_script(data["argv"]) == ("flux_train_network.py")
    config = _config(data)
    assert config["ae"] == str(names["ae"])
    assert config["clip_l"] == str(names["clip_l"])
    assert config["t5xxl"] == str(names["t5xxl"])
    assert config["network_module"] == "networks.lora_flux"
    # lora_gui.py L2446-2490: Flux-only options, passed for the Flux checkbox
    assert config["guidance_scale"] == 1.0
    assert config["timestep_sampling"] == "sigmoid"
    assert config["model_prediction_type"] == "raw"
    # sigmoid sampling never reads discrete_flow_shift (flux_train_utils): not written
    assert "discrete_flow_shift" not in config
    assert config["apply_t5_attn_mask"] is True
    assert config["t5xxl_max_token_length"] == 512
    assert config["fp8_base"] is True
    assert config["cache_text_encoder_outputs"] is True
    assert config["cache_text_encoder_outputs_to_disk"] is True
    assert config["max_train_steps"] == 1000


def test_flux_extras_are_checked_against_its_own_snapshot(tmp_path: Path) -> None:
    from kohya_plan.workflows.importers import import_text

    path = _kohya_ss(tmp_path, "flux1D - adamw8bit fp8.json")
    result = import_text(path.read_text("utf-8"), name=path.name, base_dir=path.parent)
    assert not [n for n in result.notes if "no option snapshot" in n]


def test_two_text_encoder_lrs_of_networks_lora_render_as_the_one_that_applies(
    tmp_path: Path, run_cli: Any
) -> None:
    """The SDXL config file gives TE1 4e-5 and TE2 2e-5; networks.lora has no per-encoder LRs,
    so train_network.py keeps the first for both: the plan says so and renders only that."""
    folder = tmp_path / "work"
    shutil.copytree(FIXTURES / "importers", folder)
    make_images(folder / "images" / "20_style", [(1024, 1024)] * 2)
    imported = run_cli("import", folder / "command-posix.sh", "-o", folder / "p.toml", "--json")
    assert imported.exit_code == 0, imported.output
    record = next(
        r
        for r in json.loads(imported.stdout)["records"]
        if r.get("plan_key") == "optimizer.text_encoder_lr"
    )
    assert record["value"] == 4e-05
    assert "keeps only the first of 4e-05, 2e-05" in record["reason"]
    # The file also caches the text encoders' outputs while training them: sd-scripts would
    # assert; kohya-plan refuses it before any model is loaded.
    refused = run_cli("check", folder / "p.toml")
    assert refused.exit_code == 2
    assert "training.cache_text_encoder_outputs" in refused.output
    config = _config(
        _make(run_cli, folder / "command-posix.sh", "training.cache_text_encoder_outputs=false")
    )
    assert config["text_encoder_lr"] == [4e-05]
    assert "cache_text_encoder_outputs" not in config
