"""SD-Trainer (Akegarasu/lora-scripts) and LoRA_Easy_Training_Scripts TOML, and format detection
(example files: tests/fixtures/importers, see its NOTICE.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import make_images

from kohya_plan.loading import loads_toml
from kohya_plan.rules import RULES
from kohya_plan.workflows.importers import detect_format, import_text

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
IMPORTERS = FIXTURES / "importers"
WAIVE_ALL = "rules.allow=[" + ",".join(f'"{r}"' for r, rule in RULES.items() if rule.waivable) + "]"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("kohya_ss-configs/locon-AdamW8bit.json", "kohya_ss"),
        ("kohya_ss-configs/dataset.toml", "sd-scripts"),
        ("importers/configs/sdxl lora.toml", "sd-scripts"),
        ("importers/sd-trainer-sdxl-lora.toml", "sd-trainer"),
        ("importers/sd-trainer-sd15-legacy.toml", "sd-trainer"),
        ("importers/sd-trainer-preset.toml", "sd-trainer"),
        ("importers/lets-locon.toml", "lets"),
        ("importers/command-powershell.txt", "command"),
        ("importers/command-posix.sh", "command"),
    ],
)
def test_format_is_detected(name: str, expected: str) -> None:
    path = FIXTURES / name
    assert detect_format(path.read_text("utf-8"), path.name) == expected


def _result(name: str, base: Path | None = None) -> Any:
    path = IMPORTERS / name
    return import_text(path.read_text("utf-8"), name=path.name, base_dir=base or path.parent)


def test_sd_trainer_sdxl_config() -> None:
    result = _result("sd-trainer-sdxl-lora.toml")
    plan = result.plan
    assert result.format == "sd-trainer"
    assert result.script == "sdxl_train_network.py"  # model_train_type sdxl-lora
    assert plan["model"]["family"] == "sdxl"
    # gpu_ids ["0", "1"] → CUDA_VISIBLE_DEVICES and --multi_gpu --num_processes 2 (process.py)
    assert plan["launch"]["gpu_ids"] == "0,1"
    assert plan["launch"]["num_processes"] == 2
    # The backend's prompt line (api.py get_sample_prompts), one prompt in the file
    assert plan["sampling"]["prompts"] == [
        "masterpiece, best quality, 1girl, solo --n lowres, bad anatomy, bad hands --w 1024 "
        "--h 1024 --l 7 --s 24 --d 2333"
    ]
    assert result.record("sample_cfg").plan_key == "sampling.prompts"
    # SD-Trainer's default max_token_length 255 is not a value sd-scripts can use
    record = result.record("max_token_length")
    assert record.kind == "cannot"
    assert "150, 225" in record.reason
    assert plan["training"]["no_half_vae"] is True
    assert result.record("log_with").kind == "dropped"


def test_sd_trainer_legacy_sections_and_text_learning_rates() -> None:
    result = _result("sd-trainer-sd15-legacy.toml")
    plan = result.plan
    assert plan["optimizer"]["unet_lr"] == 1e-4  # "1e-4" in the file
    assert plan["optimizer"]["text_encoder_lr"] == 1e-5
    assert any("written as text '1e-4'" in n for n in result.notes)
    assert result.record("optimizer.lr_restart_cycles").kind == "dropped"
    assert "lr_scheduler_num_cycles" in result.record("optimizer.lr_restart_cycles").reason
    assert result.record("dataset.reg_data_dir").kind == "unset"  # "" means no reg images
    assert "reg_dir" not in plan["dataset"]
    assert plan["launch"]["extra"]["log_prefix"] == "aki"
    # no learning_rate in the file: sd-scripts' own default, written out
    assert {f.plan_key: f.value for f in result.filled}["optimizer.learning_rate"] == 2e-6


def test_sd_trainer_preset_needs_the_rest() -> None:
    result = _result("sd-trainer-preset.toml")
    assert result.record("metadata.name").kind == "dropped"
    assert result.plan["dataset"]["resolution"] == [768, 768]
    placeholders = {f.plan_key for f in result.filled if f.placeholder}
    assert placeholders == {"model.base", "dataset.train_dir"}


def test_lets_config(tmp_path: Path, run_cli: Any) -> None:
    folder = tmp_path / "lets"
    folder.mkdir()
    shutil.copy(IMPORTERS / "lets-locon.toml", folder)
    make_images(folder / "datasets" / "10_character", [(768, 768)] * 3, caption="character")
    make_images(folder / "datasets" / "reg", [(768, 768)] * 3, caption="person")
    result = _result("lets-locon.toml", folder)
    plan = result.plan
    assert result.format == "lets"
    # network_args.algo → lycoris.kohya (LETS-backend validation.py validate_args)
    assert plan["network"]["module"] == "lycoris.kohya"
    assert plan["network"]["args"] == {"conv_dim": 8, "conv_alpha": 4, "algo": "locon"}
    assert plan["optimizer"]["args"] == {"weight_decay": 0.1, "betas": [0.9, 0.99]}
    assert plan["optimizer"]["warmup_steps"] == 0.05  # warmup_ratio: sd-scripts takes a ratio
    assert plan["training"]["batch_size"] == 2  # general_args.dataset_args.batch_size
    assert [s["is_reg"] for s in plan["dataset"]["subsets"] if "is_reg" in s] == [True]
    assert result.record("subsets[0].name").kind == "dropped"
    assert result.record("saving_args.args.save_toml").kind == "dropped"
    # The written plan renders sd-scripts' files with those values.
    target = folder / "plan.toml"
    assert run_cli("import", folder / "lets-locon.toml", "-o", target).exit_code == 0
    hub_model = "model.base=stable-diffusion-v1-5/stable-diffusion-v1-5"  # no real file here
    made = run_cli("make", target, "--dry-run", "--json", "--set", WAIVE_ALL, "--set", hub_model)
    assert made.exit_code == 0, made.output
    files = json.loads(made.output)["files"]
    config = {k: v for t in loads_toml(files["config.toml"]).values() for k, v in t.items()}
    dataset = loads_toml(files["dataset.toml"])
    assert config["network_args"] == ["conv_dim=8", "conv_alpha=4", "algo=locon"]
    assert config["optimizer_args"] == ["weight_decay=0.1", "betas=0.9,0.99"]
    assert config["min_snr_gamma"] == 5.0
    assert dataset["datasets"][0]["resolution"] == 768
    assert [s["num_repeats"] for s in dataset["datasets"][0]["subsets"]] == [10, 1]
    assert [s["keep_tokens"] for s in dataset["datasets"][0]["subsets"]] == [1, 1]


def test_dataset_config_alone_and_several_datasets() -> None:
    path = FIXTURES / "kohya_ss-configs" / "dataset-multires.toml"
    result = import_text(path.read_text("utf-8"), name=path.name, base_dir=path.parent)
    # One plan dataset: the 768 and 512 px datasets cannot be carried, and say why.
    assert result.plan["dataset"]["resolution"] == [1024, 1024]
    record = result.record("datasets[1].resolution")
    assert record.kind == "cannot"
    assert "[768, 768]" in record.reason
    assert result.record("datasets[1].subsets[0].image_dir").kind == "cannot"
    assert result.record("general.keep_tokens_separator").plan_key == (
        "launch.extra.keep_tokens_separator"
    )
    assert result.record("general.caption_tag_dropout_rate").kind == "dropped"  # its default 0
    assert result.plan["dataset"]["flip_aug"] is True
    assert {f.plan_key for f in result.filled if f.placeholder} == {"model.base"}
