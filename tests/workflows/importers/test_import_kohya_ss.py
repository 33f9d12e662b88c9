"""kohya_ss GUI configs (tests/fixtures/kohya_ss-configs: the GUI's own presets and test configs).

Every file imports, except the DreamBooth one, which is refused. For the SD1.5 ones, the plan's
`make --dry-run --json` must carry what the GUI would have passed to sd-scripts: the tables
below give, option by option, the value sd-scripts ends up with, derived by hand from
bmaltais/kohya_ss at 45088f04af78 — kohya_gui/lora_gui.py `train_model` (line numbers in the
comments), common_gui.py `update_my_data` (L379-509, string → number), and, for keys a preset
does not hold, the fresh GUI's form (class_*.py `config.get(..., default)`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import make_images

from kohya_plan.loading import loads_toml
from kohya_plan.options import options_for
from kohya_plan.rules import RULES

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kohya_ss-configs"
IMAGES = "test/img/10_darius kawasaki person"  # the folder kohya_ss' test configs train on
WAIVE_ALL = "rules.allow=[" + ",".join(f'"{r}"' for r, rule in RULES.items() if rule.waivable) + "]"
SKIP = object()  # an option the table does not compare (said why in the comment)


def _layout(tmp_path: Path, name: str) -> Path:
    """A kohya_ss folder as the configs expect it: test/config/<json>, test/img/10_…/."""
    root = tmp_path / "kohya_ss"
    config = root / "test" / "config"
    config.mkdir(parents=True)
    for item in (name, "dataset.toml"):
        shutil.copy(FIXTURES / item, config / item)
    make_images(root / IMAGES, [(512, 512)] * 4, caption="darius kawasaki person, gas mask")
    return config / name


def _import(run_cli: Any, source: Path, *args: str) -> Path:
    target = source.with_name("imported.plan.toml")
    result = run_cli("import", source, "-o", target, *args)
    assert result.exit_code == 0, result.output
    assert target.is_file()
    return target


def _sd_scripts_view(files: dict[str, str]) -> dict[str, Any]:
    """What sd-scripts reads: the config flattened one level; dataset values by its precedence
    (subset → dataset → general → config), for the first subset."""
    config: dict[str, Any] = {}
    for key, value in loads_toml(files["config.toml"]).items():
        config.update(value if isinstance(value, dict) else {key: value})
    dataset = loads_toml(files["dataset.toml"])
    block = dataset["datasets"][0]
    subset = block["subsets"][0]
    view = dict(config)
    for key in {*dataset.get("general", {}), *block, *subset} - {"subsets"}:
        for level in (subset, block, dataset.get("general", {})):
            if key in level:
                view["train_batch_size" if key == "batch_size" else key] = level[key]
                break
    view["subsets"] = block["subsets"]
    return view


def _effective(view: dict[str, Any], option: str) -> Any:
    defaults = options_for("train_network.py")
    if option == "attention":  # sd-scripts: mem_eff_attn wins over xformers over sdpa
        return next((n for n in ("mem_eff_attn", "xformers", "sdpa") if view.get(n)), None)
    if option == "network_args":
        items = view.get("network_args") or []
        return dict(str(a).split("=", 1) for a in items)  # net_kwargs: strings, last wins
    if option == "text_encoder_lr":  # networks.lora uses the first entry only (L741)
        value = view.get("text_encoder_lr")
        return value[0] if value else None
    if option == "resolution":
        value = view.get("resolution")
        if isinstance(value, str):
            value = [int(v) for v in value.split(",")]
        return tuple(value) if isinstance(value, list) else (value, value)
    if option in view:
        return view[option]
    return defaults[option].default if option in defaults else None


def _check_table(view: dict[str, Any], table: dict[str, Any]) -> None:
    wrong = {}
    for option, expected in table.items():
        if expected is SKIP:
            continue
        got = _effective(view, option)
        if got != expected:
            wrong[option] = (expected, got)
    assert not wrong, "option: (GUI would pass, plan renders) " + repr(wrong)


def _dry_run(run_cli: Any, plan: Path, *sets: str) -> dict[str, str]:
    args = ["make", plan, "--dry-run", "--json", "--set", WAIVE_ALL]
    for item in sets:
        args += ["--set", item]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    files: dict[str, str] = json.loads(result.output)["files"]
    return files


# What the GUI passes for locon-AdamW8bit.json (a full "Kohya LoCon" config).
LOCON = {
    "pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5",  # L2345
    "network_module": "networks.lora",  # Kohya LoCon → networks.lora, L1974-1988
    # conv_dim/conv_alpha first, then the truthy block fields in vars() order, quotes removed
    # and split on whitespace (L1990-1999, L2338)
    "network_args": {
        "conv_dim": "16",
        "conv_alpha": "8",
        "rank_dropout": "0.1",
        "module_dropout": "0.1",
    },
    "network_dim": 16,
    "network_alpha": 8,
    "network_dropout": 0.1,
    "optimizer_type": "AdamW8bit",  # L2344 optimizer → optimizer_type
    "learning_rate": 0.0005,
    "unet_lr": 0.0001,  # L2406, passed when != 0
    "text_encoder_lr": 0.0001,  # [te, te], L2075-2081
    "lr_scheduler": "constant",
    "lr_scheduler_num_cycles": 1,
    "lr_scheduler_power": 1,
    "lr_warmup_steps": 0,  # lr_warmup 0 → resolve_lr_warmup_steps → 0
    "max_grad_norm": 1,
    # epoch 8 and max_train_steps 0: the GUI passes its own max_train_steps (L1720-1731);
    # kohya-plan passes the 8 epochs instead, so sd-scripts counts the steps (see the report)
    "max_train_epochs": 8,
    "max_train_steps": SKIP,
    "train_batch_size": 4,
    "resolution": (512, 512),  # max_resolution, L2350
    "enable_bucket": True,
    "min_bucket_reso": 256,
    "max_bucket_reso": 2048,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": True,
    "cache_latents": True,
    "cache_latents_to_disk": False,  # False is filtered out (L2562-2566): sd-scripts' default
    "caption_extension": ".caption",  # "" is filtered out: sd-scripts' default .caption
    "caption_dropout_rate": 0.05,
    "keep_tokens": 0,
    "shuffle_caption": False,
    "flip_aug": False,
    "color_aug": False,
    "random_crop": False,
    "clip_skip": 2,
    "mixed_precision": "bf16",
    "save_precision": "fp16",
    "save_model_as": "safetensors",
    "seed": 1234,
    "attention": "xformers",  # xformers: "xformers" → xformers = true, L2419
    "noise_offset": 0.05,  # noise_offset_type Original, L2300-2304
    "adaptive_noise_scale": 0.005,
    "noise_offset_random_strength": True,
    "multires_noise_iterations": None,  # Multires only, L2330-2336
    "ip_noise_gamma": 0.1,
    "ip_noise_gamma_random_strength": True,
    "debiased_estimation_loss": True,
    "scale_weight_norms": 1,
    "min_snr_gamma": None,  # 0 is filtered out
    "sample_every_n_steps": 25,
    "sample_every_n_epochs": None,
    "sample_sampler": "euler_a",
    "save_every_n_epochs": 1,
    "output_name": "locon-AdamW8bit",
    "max_data_loader_n_workers": 0,  # always passed, L2568
    "persistent_data_loader_workers": False,
    "gradient_accumulation_steps": 1,
    "gradient_checkpointing": False,
    "prior_loss_weight": 1,
    "max_token_length": None,  # 75 is what None means; the plan leaves it out
    "max_timestep": None,  # 1000 is what None means; the plan leaves it out
    "network_train_unet_only": False,
    "network_train_text_encoder_only": False,
    "logging_dir": SKIP,  # kohya-plan logs into the run folder (training.tensorboard)
}

# sd15 - EDG_LoraOptiSettings.json: a preset, so a fresh GUI fills the keys it lacks.
EDG = {
    "network_module": "networks.lora",
    "network_args": {},  # the block fields are "": nothing passed
    "network_dim": 64,
    "network_alpha": 64,
    "optimizer_type": "AdamW8bit",
    "learning_rate": 0.0001,  # "0.0001" → float (update_my_data)
    "unet_lr": 0.0001,
    "text_encoder_lr": 5e-05,
    "lr_scheduler": "constant",
    "lr_warmup_steps": 0,  # lr_warmup "0"
    "lr_scheduler_num_cycles": 1,  # "" → 1 (update_my_data)
    # no max_train_steps key: the fresh GUI's field holds 1600 (basic.max_train_steps) and the
    # GUI passes it (L1720: only 0 is computed), so sd-scripts runs 1600 steps; epoch 1 unused
    "max_train_steps": 1600,
    "max_train_epochs": None,
    "train_batch_size": 3,
    "resolution": (512, 650),
    "enable_bucket": False,  # False is filtered out: sd-scripts' default
    "bucket_no_upscale": True,
    "bucket_reso_steps": 64,  # 64.0 in the file
    "min_bucket_reso": 256,  # fresh GUI
    "max_bucket_reso": 2048,  # fresh GUI
    "cache_latents": True,
    "caption_extension": ".txt",
    "clip_skip": 2,
    "mixed_precision": "bf16",
    "save_precision": "bf16",
    "seed": 1234,
    # xformers: true → "xformers" (update_my_data) and mem_eff_attn: true are both passed;
    # sd-scripts' replace_unet_modules uses mem_eff_attn when both are set
    "attention": "mem_eff_attn",
    "noise_offset": 0.05,  # noise_offset_type not in the preset: fresh GUI "Original"
    "max_data_loader_n_workers": 1,
    "save_every_n_epochs": 1,
    "keep_tokens": 0,
    "shuffle_caption": False,
    "min_snr_gamma": None,
    "vae_batch_size": 1,  # 0 is filtered out (0 == False): sd-scripts default 1
    "prior_loss_weight": 1.0,
    "output_name": "last",  # fresh GUI's model.output_name
    "max_token_length": None,
}

# loha-sd15.json: a LyCORIS/LoHa preset.
LOHA = {
    "network_module": "lycoris.kohya",  # L1840-1842
    # the GUI's LoHa f-string, with the fresh GUI's False for the checkboxes the preset lacks
    "network_args": {
        "preset": "full",
        "conv_dim": "8",
        "conv_alpha": "4",
        "use_tucker": "False",
        "rank_dropout": "0",
        "bypass_mode": "False",
        "dora_wd": "False",
        "module_dropout": "0",
        "use_scalar": "False",
        "rank_dropout_scale": "False",
        "algo": "loha",
        "train_norm": "False",
    },
    "network_dim": 32,
    "network_alpha": 16,
    "optimizer_type": "AdamW",
    "learning_rate": 0.0001,
    "unet_lr": 0.0001,
    "text_encoder_lr": 0.0001,
    "lr_scheduler": "cosine",
    "max_train_steps": 1600,  # no key in the preset: the fresh GUI's 1600
    "gradient_accumulation_steps": 4,
    "train_batch_size": 1,
    "resolution": (512, 512),
    "enable_bucket": True,
    # the preset's 1 is passed as is; sd-scripts asserts a multiple of 64 with buckets, so
    # `check` refuses it (test_gui_preset_with_unusable_bucket_steps_is_refused_by_check) and
    # the dry run below sets 64
    "bucket_reso_steps": SKIP,
    "bucket_no_upscale": True,
    "max_bucket_reso": 2048,
    "cache_latents": True,
    "cache_latents_to_disk": True,
    "caption_extension": ".none-use-foldername",
    "clip_skip": 1,  # "1"
    "mixed_precision": "bf16",
    "save_precision": "fp16",
    "seed": SKIP,  # "" → 0 → not passed: sd-scripts picks a random seed; the plan fixes one
    "attention": "xformers",
    "noise_offset": None,  # noise_offset_type Multires: not passed
    "multires_noise_iterations": 8,
    "multires_noise_discount": 0.2,
    "min_snr_gamma": 10,
    "scale_weight_norms": 1,
    "network_dropout": None,  # 0
    "max_data_loader_n_workers": 0,
    "save_every_n_epochs": 1,
}

# locon-AdamW8bit-toml.json: "Standard" LoRA, images from test/config/dataset.toml.
LOCON_TOML = {
    "network_module": "networks.lora",
    "network_args": {},  # rank/module dropout 0, Standard ignores conv_dim
    "network_dim": 8,
    "network_alpha": 1,
    "learning_rate": 0.0005,
    "unet_lr": None,  # 0: not passed (L2406)
    "text_encoder_lr": None,  # 0: not passed (L2075-2081)
    "network_train_unet_only": False,  # both 0: neither flag (resolve_network_train_flags)
    "lr_scheduler": "constant",
    # dataset_config with max_train_steps "" (→ 0): the GUI passes no length (L1618-1660),
    # sd-scripts runs its default 1600 steps
    "max_train_steps": 1600,
    "max_train_epochs": None,
    "resolution": (512, 512),  # from the dataset TOML
    "train_batch_size": 4,  # the dataset TOML's batch_size wins over train_batch_size
    "keep_tokens": 1,
    "enable_bucket": True,
    "min_bucket_reso": 64,
    "max_bucket_reso": 1024,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": True,
    "caption_extension": ".txt",  # the subset's
    "caption_dropout_rate": 0.05,  # the config's, sd-scripts' fallback for every subset
    "class_tokens": "darius kawasaki person",
    "num_repeats": 10,
    "clip_skip": 2,
    "mixed_precision": "bf16",
    "save_precision": "fp16",
    "seed": 1234,
    "attention": "xformers",
    "noise_offset": 0.05,
    "sample_every_n_steps": 25,
    "output_name": "locon-AdamW8bit-toml",
}

TABLES = {
    "locon-AdamW8bit.json": (LOCON, ()),
    "sd15 - EDG_LoraOptiSettings.json": (
        EDG,
        ("model.base=stable-diffusion-v1-5/stable-diffusion-v1-5", "dataset.train_dir=../img"),
    ),
    "loha-sd15.json": (
        LOHA,
        (
            "model.base=stable-diffusion-v1-5/stable-diffusion-v1-5",
            "dataset.train_dir=../img",
            "dataset.bucket_reso_steps=64",
        ),
    ),
    "locon-AdamW8bit-toml.json": (LOCON_TOML, ()),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_sd15_config_renders_what_the_gui_would_pass(
    tmp_path: Path, run_cli: Any, name: str
) -> None:
    table, sets = TABLES[name]
    plan = _import(run_cli, _layout(tmp_path, name))
    view = _sd_scripts_view(_dry_run(run_cli, plan, *sets))
    _check_table(view, table)


def test_gui_preset_with_unusable_bucket_steps_is_refused_by_check(
    tmp_path: Path, run_cli: Any
) -> None:
    plan = _import(run_cli, _layout(tmp_path, "loha-sd15.json"))
    assert "bucket_reso_steps = 1 # ← bucket_reso_steps" in plan.read_text("utf-8")
    result = run_cli("check", plan, "--json", "--no-hardware")
    ids = {e["id"] for e in json.loads(result.output)["errors"]}
    assert "bucket-steps" in ids


def test_dataset_config_subset_is_the_one_the_gui_names(tmp_path: Path, run_cli: Any) -> None:
    plan = _import(run_cli, _layout(tmp_path, "locon-AdamW8bit-toml.json"))
    subsets = _sd_scripts_view(_dry_run(run_cli, plan))["subsets"]
    assert [Path(s["image_dir"]).parts[-3:] for s in subsets] == [Path(IMAGES).parts]
    assert subsets[0]["num_repeats"] == 10


def test_train_data_dir_becomes_the_n_name_subsets(tmp_path: Path, run_cli: Any) -> None:
    plan = _import(run_cli, _layout(tmp_path, "locon-AdamW8bit.json"))
    subsets = _sd_scripts_view(_dry_run(run_cli, plan))["subsets"]
    assert [(Path(s["image_dir"]).name, s["num_repeats"], s["class_tokens"]) for s in subsets] == [
        ("10_darius kawasaki person", 10, "darius kawasaki person")
    ]


def test_gui_step_count_is_reported_beside_sd_scripts_count(tmp_path: Path, run_cli: Any) -> None:
    source = _layout(tmp_path, "locon-AdamW8bit.json")
    # 3 more images of another shape: the GUI's formula ignores buckets (kohya_ss#2965)
    make_images(
        source.parents[1] / "img" / "10_darius kawasaki person", [(512, 768)] * 3, stem="tall"
    )
    result = run_cli("import", source, "-o", tmp_path / "p.toml", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # lora_gui.py L1720-1731: ceil(7 images × 10 repeats / batch 4 / 1 × 8 epochs × 1) = 140
    assert data["source_steps"] == 140
    # sd-scripts: buckets 512x512: 40 → 10 batches, 384x576: 30 → 8 batches; 18 × 8 epochs
    assert data["check"]["steps"]["total_optimization_steps"] == 144
    text = run_cli("import", source, "-o", tmp_path / "q.toml").output
    assert "would have run 140 steps; sd-scripts counts 144 for 8 epochs" in text


def test_every_key_of_every_config_is_accounted_for(tmp_path: Path) -> None:
    from kohya_plan.workflows.importers import import_text

    for source in sorted(FIXTURES.glob("*.json")):
        if source.name == "Standard-AdamW8bit.json":
            continue
        path = _layout(tmp_path / source.stem, source.name)
        result = import_text(path.read_text("utf-8"), name=path.name, base_dir=path.parent)
        keys = set(json.loads(source.read_text("utf-8")))
        recorded = {r.source for r in result.records}
        assert keys <= recorded, f"{source.name}: no record for {sorted(keys - recorded)}"
        vague = [r.source for r in result.records if r.reason == "not used for this configuration"]
        assert not vague, f"{source.name}: unclassified keys {vague}"


def test_dreambooth_config_is_refused(tmp_path: Path, run_cli: Any) -> None:
    target = tmp_path / "plan.toml"
    result = run_cli("import", FIXTURES / "Standard-AdamW8bit.json", "-o", target)
    assert result.exit_code == 2
    assert "LoRA_type" in result.output
    assert "DreamBooth" in result.output
    assert not target.exists()


def test_sdxl_config_produces_an_sdxl_plan(tmp_path: Path) -> None:
    """Pure: the plan data and report; the SDXL-only options become plan keys."""
    from kohya_plan.workflows.importers import import_text

    path = _layout(tmp_path, "SDXL-Standard-AdamW8bit.json")
    result = import_text(path.read_text("utf-8"), name=path.name, base_dir=path.parent)
    plan = result.plan
    assert result.script == "sdxl_train_network.py"
    assert plan["model"]["family"] == "sdxl"
    assert plan["model"]["base"] == "stabilityai/stable-diffusion-xl-base-1.0"
    # sdxl_cache_text_encoder_outputs → cache_text_encoder_outputs, sdxl_no_half_vae →
    # no_half_vae (L2155-2160, L2344): options of sdxl_train_network.py only (the first)
    assert plan["training"]["cache_text_encoder_outputs"] is True
    assert plan["training"]["no_half_vae"] is True
    # text_encoder_lr 0 and unet_lr 1e-6: U-Net only (resolve_network_train_flags)
    assert plan["network"]["train_unet_only"] is True
    assert "text_encoder_lr" not in plan["optimizer"]
    assert plan["dataset"]["resolution"] == [1024, 1024]
    assert result.record("sdxl").plan_key == "model.family"
    record = result.record("sdxl_cache_text_encoder_outputs")
    assert (record.kind, record.plan_key) == ("mapped", "training.cache_text_encoder_outputs")


def test_sdxl_plan_is_written_and_checked(tmp_path: Path, run_cli: Any) -> None:
    target = tmp_path / "sdxl.toml"
    result = run_cli("import", _layout(tmp_path, "SDXL-Standard-AdamW8bit.json"), "-o", target)
    assert result.exit_code == 0, result.output
    assert 'family = "sdxl" # ← sdxl' in target.read_text("utf-8")
    # The SDXL-only options are checked against sdxl_train_network.py, and pass
    assert "cache_text_encoder_outputs" in target.read_text("utf-8")
    assert "is not a sdxl_train_network.py option" not in result.output


def test_flux_config_produces_a_flux_plan(tmp_path: Path) -> None:
    """Pure: plan data and report; model.family = "flux" and its files wait for the family."""
    from kohya_plan.workflows.importers import import_text

    path = _layout(tmp_path, "flux1D - adamw8bit fp8.json")
    result = import_text(path.read_text("utf-8"), name=path.name, base_dir=path.parent)
    plan = result.plan
    assert result.script == "flux_train_network.py"
    assert plan["model"]["family"] == "flux"
    # The preset's "put the full path to ... here" are no paths: placeholders to change.
    placeholders = {f.plan_key for f in result.filled if f.placeholder}
    assert {
        "model.base",
        "model.ae",
        "model.clip_l",
        "model.t5xxl",
        "dataset.train_dir",
    } <= placeholders
    assert result.record("ae").kind == "unset"
    assert plan["network"]["module"] == "networks.lora_flux"  # LoRA_type Flux1, L1857-1901
    flux = plan["flux"]
    assert flux["guidance_scale"] == 1.0  # float(guidance_scale), L2462
    assert flux["timestep_sampling"] == "sigmoid"
    assert flux["model_prediction_type"] == "raw"
    assert flux["discrete_flow_shift"] == 3.0  # given as sd-scripts' own default
    assert flux["apply_t5_attn_mask"] is True
    assert flux["t5xxl_max_token_length"] == 512
    assert plan["training"]["cache_text_encoder_outputs"] is True
    assert plan["training"]["fp8_base"] is True
    assert "max_token_length" not in plan["launch"].get("extra", {})  # not for Flux (L2276)
    assert plan["training"]["max_train_steps"] == 1000
    assert plan["training"]["save_every_n_steps"] == 50
    assert plan["network"]["train_unet_only"] is True


def test_flux_plan_is_written_and_checked(tmp_path: Path, run_cli: Any) -> None:
    target = tmp_path / "flux.toml"
    result = run_cli("import", _layout(tmp_path, "flux1D - adamw8bit fp8.json"), "-o", target)
    assert result.exit_code == 0, result.output
    text = target.read_text("utf-8")
    assert 'family = "flux" # ← flux1_checkbox' in text
    assert 'ae = "CHANGE-ME-ae.safetensors" # CHANGE ME' in text
    # it validates as a FLUX.1 plan; check names the model files still to give
    assert "model.ae: " in result.output
    assert "CHANGE-ME-ae.safetensors does not exist" in result.output
