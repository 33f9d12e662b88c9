"""The kohya_ss GUI's LoRA-tab JSON (bmaltais/kohya_ss, "Save" on the LoRA tab, and its presets).

The GUI turns the JSON into sd-scripts' config TOML, an accelerate command and the free-text
`additional_parameters`; this module reproduces that translation (kohya_gui/lora_gui.py
`train_model`, line numbers below are of commit 45088f04af78) so that the plan carries what the
GUI would have passed, and then maps it like any sd-scripts config. Where the GUI's own
behaviour differs from what the user likely meant (0 values it silently drops, its step
arithmetic, an empty caption extension), the record says so.

A preset holds only some keys; for the others the GUI keeps what its form shows. kohya-plan
assumes a freshly started GUI (its shipped defaults, `GUI_DEFAULTS`) and marks each such value.
The form itself is `kohya_ss_gui.Gui`, LoRA_type's translation `kohya_ss_network`. This module
stays long because it follows `train_model` step by step, in the GUI's order: splitting that one
translation further would scatter it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

from kohya_plan.workflows.importers.kohya_ss_fields import (
    FLUX_FIELDS,
    GUI_ONLY,
    INTS,
    LORA_TAB_KEYS,
    LORA_TYPES,
    MIGRATED,
    NONZERO,
    OTHER_FAMILIES,
    SAME_NAME,
    SD3_FIELDS,
    SETTINGS,
)
from kohya_plan.workflows.importers.kohya_ss_gui import Gui
from kohya_plan.workflows.importers.kohya_ss_network import network
from kohya_plan.workflows.importers.mapping import build_plan
from kohya_plan.workflows.importers.sd_scripts import (
    dataset_input,
    parse_launcher,
    parse_script_args,
    read_referenced,
    split_command,
)
from kohya_plan.workflows.importers.sources import Sources, resolve_path
from kohya_plan.workflows.importers.state import Builder, refuse
from kohya_plan.workflows.importers.values import Given, prompt_lines

if TYPE_CHECKING:
    from kohya_plan.workflows.importers.report import ImportResult


def load_json_object(text: str) -> dict[str, Any]:
    """The JSON object of a kohya_ss config; anything else is a clear error."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        refuse(
            "source",
            f"is not JSON ({exc.msg} at line {exc.lineno})",
            "give the .json file the GUI saved",
        )
    if not isinstance(data, dict):
        kind = "array" if isinstance(data, list) else type(data).__name__
        refuse(
            "source",
            f"is a JSON {kind}, not a kohya_ss config object",
            "give the .json file the GUI's Save button wrote ({...})",
        )
    return data


def refuse_other_tabs(data: dict[str, Any]) -> None:
    """DreamBooth, fine-tuning and textual-inversion configs are not LoRA configs."""
    for key in ("token_string", "init_word", "num_vectors_per_token"):
        if key in data:
            refuse(
                key,
                "makes this a textual-inversion config (the GUI's TI tab)",
                "kohya-plan imports the LoRA tab's configs",
            )
    for key in ("caption_metadata_filename", "latent_metadata_filename", "create_buckets"):
        if key in data:
            refuse(
                key,
                "makes this a fine-tuning config (the GUI's Finetune tab)",
                "kohya-plan imports the LoRA tab's configs",
            )
    if "LoRA_type" not in data and "network_dim" not in data:
        markers = [
            k for k in ("learning_rate_te", "learning_rate_te1", "train_text_encoder") if k in data
        ]
        what = (
            f"a DreamBooth config (the GUI's DreamBooth tab: {markers[0]})"
            if markers
            else "not a LoRA config (it has neither LoRA_type nor network_dim)"
        )
        refuse("LoRA_type", f"is missing: {what}", "kohya-plan imports the LoRA tab's configs")


def migrate(data: dict[str, Any], builder: Builder) -> dict[str, Any]:
    """`update_my_data`'s conversions (common_gui.py L379-509) of what an old GUI wrote."""
    values = dict(data)
    if "optimizer" not in values:
        values["optimizer"] = "AdamW8bit" if values.get("use_8bit_adam") else "AdamW"
        if "use_8bit_adam" in data:
            builder.notes.append(f"use_8bit_adam: optimizer {values['optimizer']} (old GUI key)")
    for keys, kind, bad in (
        (
            (
                "clip_skip",
                "epoch",
                "gradient_accumulation_steps",
                "keep_tokens",
                "lr_warmup",
                "max_data_loader_n_workers",
                "max_train_epochs",
                "save_every_n_epochs",
                "seed",
                "max_train_steps",
                "caption_dropout_every_n_epochs",
            ),
            int,
            0,
        ),
        (("lr_scheduler_num_cycles",), int, 1),
        (("max_token_length",), int, 75),
        (
            ("adaptive_noise_scale", "noise_offset", "learning_rate", "text_encoder_lr", "unet_lr"),
            float,
            0.0,
        ),
        (("lr_scheduler_power",), float, 1.0),
    ):
        for key in keys:
            if values.get(key) is not None:
                try:
                    values[key] = kind(values[key])
                except (TypeError, ValueError):
                    values[key] = bad
    if values.get("LoRA_type") == "LoCon":
        values["LoRA_type"] = "LyCORIS/LoCon"
    if values.get("save_model_as") not in (None, "safetensors", "ckpt"):
        values["save_model_as"] = "safetensors"
    if isinstance(values.get("xformers"), bool):
        values["xformers"] = "xformers" if values["xformers"] else "none"
    if values.pop("use_wandb", None) == "True":
        values["log_with"] = "wandb"
    if "lora_network_weights" in values:
        values["network_weights"] = values.pop("lora_network_weights")
    return values


def import_kohya_ss(text: str, sources: Sources) -> ImportResult:
    """A LoRA-tab JSON saved by the kohya_ss GUI (or one of its presets)."""
    data = load_json_object(text)
    refuse_other_tabs(data)
    builder = Builder("kohya_ss", sources)
    gui = Gui(data, migrate(data, builder), builder)
    script, family = _family(gui)
    _validate(gui)
    _steps(gui, sources)
    network(gui)
    _learning_rates(gui)
    _config_options(gui, script)
    launch = _accelerate(gui)
    _additional(gui, script)
    _prompts(gui)
    dataset = None
    named = gui.options.get("dataset_config")
    if named is not None:
        dataset_data, base = read_referenced(named, builder)
        dataset = dataset_input(dataset_data, base, prefix="dataset_config: ")
    build_plan(builder, gui.options, script=script, family=family, dataset=dataset, launch=launch)
    _account(gui)
    return builder.result(script)


def _family(gui: Gui) -> tuple[str, Given | None]:
    """The script the GUI picks (L1779-1792) and refusals of what kohya-plan does not plan."""
    for key, (name, _) in OTHER_FAMILIES.items():
        if gui[key]:
            refuse(key, f"is on: a {name} config", "kohya-plan plans SD1.5, SDXL and Flux")
    lora_type = gui["LoRA_type"]
    if lora_type not in LORA_TYPES:
        refuse(
            "LoRA_type",
            f"{lora_type!r} is not a LoRA type of the kohya_ss GUI",
            "use one of: " + ", ".join(sorted(LORA_TYPES)),
        )
    if lora_type in ("Anima", "Lumina", "HunyuanImage-2.1"):
        refuse(
            "LoRA_type",
            f"{lora_type!r} is a LoRA type for another model family",
            "kohya-plan plans SD1.5, SDXL and Flux",
        )
    if (
        gui["flux1_checkbox"]
        and lora_type not in ("Flux1", "Flux1 OFT")
        and "LyCORIS" not in lora_type
    ):
        refuse(
            "LoRA_type",
            f"{lora_type!r} with flux1_checkbox on (the GUI refuses it, L1461-1470)",
            "use Flux1, Flux1 OFT or a LyCORIS type",
        )
    if lora_type in ("Kohya LoHa", "Kohya LoKr") and not gui["sdxl"]:
        refuse(
            "LoRA_type",
            f"{lora_type!r} needs SDXL (the GUI refuses it, L1504-1512)",
            "turn on sdxl or use LyCORIS/LoHa or LyCORIS/LoKr",
        )
    if gui["sdxl"]:
        gui.record("flux1_checkbox", "unset", "off")
        return "sdxl_train_network.py", gui.given("sdxl")
    if gui["flux1_checkbox"]:
        gui.record("sdxl", "unset", "off")
        return "flux_train_network.py", gui.given("flux1_checkbox")
    for key in ("sdxl", "flux1_checkbox"):
        gui.record(key, "unset", "off: SD1.x (train_network.py)")
    return "train_network.py", None


def _validate(gui: Gui) -> None:
    """The GUI's own refusals (L1454-1598, L2069-2107): such a config never trained."""
    for key in ("optimizer_args", "lr_scheduler_args"):
        if not SETTINGS.match(str(gui[key])):
            refuse(
                key,
                f"{gui[key]!r} is not 'key=value key=value' (the GUI refuses it)",
                "separate pairs by one space, no spaces around '='",
            )
    if int(float(gui["bucket_reso_steps"] or 0)) < 1:
        refuse("bucket_reso_steps", "is below 1 (the GUI refuses it)", "use 64")
    if not 0 <= float(gui["noise_offset"] or 0) <= 1:
        refuse("noise_offset", "is outside 0..1 (the GUI refuses it)", "e.g. 0.05")
    lrs = [float(gui[k] or 0) for k in ("learning_rate", "text_encoder_lr", "unet_lr")]
    if not any(lrs):
        refuse(
            "learning_rate",
            "and text_encoder_lr and unet_lr are all 0 (the GUI refuses it)",
            "set learning_rate, e.g. 0.0001",
        )
    if float(gui["text_encoder_lr"] or 0) == 0 and float(gui["t5xxl_lr"] or 0) > 0:
        refuse(
            "t5xxl_lr",
            "is set but text_encoder_lr is 0 (the GUI refuses it)",
            "set text_encoder_lr too",
        )


def _count_images(sources: Sources, folder: str) -> tuple[int, str] | None:
    """The GUI's own count (L1672-1708): Σ repeats × images over N_name subfolders."""
    base = type(sources.base_dir)(folder)
    entries = sources.list_dir(base)
    if entries is None:
        return None
    total = 0
    parts = []
    for name, is_dir in entries:
        if not is_dir:
            continue
        try:
            repeats = int(name.split("_")[0])
        except ValueError:
            continue
        files = sources.list_dir(base / name) or []
        images = sum(
            1 for f, d in files if not d and f.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))
        )
        total += repeats * images
        parts.append(f"{name}: {images} × {repeats}")
    return total, ", ".join(parts)


def _steps(gui: Gui, sources: Sources) -> None:
    """Length of the run: the GUI's epoch/step arithmetic (L1618-1747)."""
    b = gui.builder
    epoch = int(gui["epoch"] or 0)
    max_steps = int(gui["max_train_steps"] or 0)
    max_epochs = int(gui["max_train_epochs"] or 0)
    warmup_pct = float(gui["lr_warmup"] or 0)
    warmup_steps = float(gui["lr_warmup_steps"] or 0)
    if not max_epochs:
        gui.record("max_train_epochs", "unset", "0: not passed")
    if max_epochs:
        gui.option("max_train_epochs", "max_train_epochs", max_epochs)
        gui.record(
            "max_train_steps",
            "dropped",
            f"max_train_epochs ({max_epochs}) is set, so sd-scripts ignores max_train_steps",
        )
        gui.record("epoch", "dropped", f"max_train_epochs ({max_epochs}) decides the length")
    elif max_steps:
        gui.option("max_train_steps", "max_train_steps", max_steps)
        gui.record(
            "epoch",
            "dropped",
            f"max_train_steps ({max_steps}) decides the length; "
            "the GUI uses epoch only for the scheduler's cycles",
        )
        if gui["dataset_config"] and not warmup_steps and warmup_pct:
            # With a dataset config the percent becomes steps of max_train_steps (L1631-1650).
            warmup_steps = round(warmup_pct * max_steps / 100)
            warmup_pct = 0
    elif gui["dataset_config"]:
        gui.record(
            "max_train_steps",
            "unset",
            "0: the GUI passes no length with a dataset "
            "config, so sd-scripts ran its default 1600 steps",
        )
        gui.record("epoch", "dropped", "the GUI ignores epoch with a dataset config (L1618-1623)")
        gui.options["max_train_steps"] = Given(
            1600, "max_train_steps", not gui.in_file("max_train_steps")
        )
        b.notes.append(
            "dataset_config with max_train_steps 0: the GUI left sd-scripts at its "
            "default 1600 steps — set training.epochs to train by epochs"
        )
        warmup_steps = 0
    else:
        gui.record("max_train_steps", "unset", "0: the GUI computes it from epoch (see epoch)")
        counted = (
            _count_images(sources, resolve_path(str(gui["train_data_dir"]), sources).path)
            if gui["train_data_dir"]
            else None
        )
        batch = int(gui["train_batch_size"] or 1)
        accumulation = int(gui["gradient_accumulation_steps"] or 1)
        reg = 2 if gui["reg_data_dir"] else 1
        if counted is not None:
            total, parts = counted
            steps = math.ceil(total / batch / accumulation * epoch * reg)
            b.source_steps = steps
            how = (
                f"the GUI would pass max_train_steps = ceil({total} / {batch} / {accumulation} "
                f"× {epoch} × {reg}) = {steps} ({parts}; no buckets, no GPUs)"
            )
        else:
            how = "the GUI would compute max_train_steps from the images in train_data_dir"
        gui.options["max_train_epochs"] = gui.given("epoch", epoch)
        b.notes.append(
            f"epoch: {how}; the plan asks sd-scripts for {epoch} epochs instead, "
            "and `check` shows the steps sd-scripts counts"
        )
    lr_warmup = _resolve_warmup(warmup_pct, warmup_steps)
    source = "lr_warmup_steps" if warmup_steps > 0 else "lr_warmup"
    if lr_warmup:
        gui.options["lr_warmup_steps"] = gui.given(source, lr_warmup)
        other = "lr_warmup" if source == "lr_warmup_steps" else "lr_warmup_steps"
        gui.record(other, "dropped", f"{source} decides the warmup")
    else:
        gui.record("lr_warmup", "unset", "0: no warmup")
        gui.record("lr_warmup_steps", "unset", "0: no warmup")


def _resolve_warmup(percent: float, steps: float) -> int | float:
    """common_gui.py resolve_lr_warmup_steps (L1185-1226): steps win; a percent is a ratio."""
    if steps > 0:
        return int(steps)
    if percent != 0:
        return percent / 100
    return 0


def _learning_rates(gui: Gui) -> None:
    """text_encoder_lr list, unet_lr and the train-only flags (L2069-2121)."""
    te = float(gui["text_encoder_lr"] or 0)
    t5 = float(gui["t5xxl_lr"] or 0)
    unet = float(gui["unet_lr"] or 0)
    gui.option("learning_rate", "learning_rate", float(gui["learning_rate"] or 0))
    if te > 0:
        lrs = [te, t5] if t5 > 0 else [te, te]
        gui.options["text_encoder_lr"] = gui.given("text_encoder_lr", lrs)
        if t5 > 0:
            gui.record("t5xxl_lr", "mapped", "the T5-XXL entry of optimizer.text_encoder_lr")
    else:
        gui.record(
            "text_encoder_lr",
            "unset",
            "0: not passed; with unet_lr set the GUI trains "
            "the U-Net only (network_train_unet_only)"
            if unet
            else "0: not passed",
        )
        gui.record("t5xxl_lr", "unset", "0: not passed")
    if te > 0 and t5 <= 0:
        gui.record("t5xxl_lr", "unset", "0: the T5-XXL uses text_encoder_lr")
    if unet:
        gui.options["unet_lr"] = gui.given("unet_lr", unet)
    elif te:
        gui.record(
            "unet_lr",
            "unset",
            "0: not passed; with text_encoder_lr set the GUI trains "
            "the text encoder only (network_train_text_encoder_only)",
        )
    else:
        gui.record("unet_lr", "unset", "0: not passed (learning_rate applies)")
    unet_only = te == 0 and unet != 0
    te_only = te != 0 and unet == 0
    if unet_only:
        gui.options["network_train_unet_only"] = gui.given("text_encoder_lr", True)
    if te_only:
        gui.options["network_train_text_encoder_only"] = gui.given("unet_lr", True)


def _config_options(gui: Gui, script: str) -> None:
    """The rest of config_toml_data (L2147-2556), as sd-scripts receives it."""
    sdxl, flux = script.startswith("sdxl"), script.startswith("flux")
    for key in SAME_NAME:
        gui.option(key, key)
    for key in NONZERO:
        value = gui[key]
        gui.option(key, key, None if value in ("", None) else value)
    for key in INTS:
        gui.option(key, key, int(float(gui[key] or 0)))
    gui.option("optimizer_type", "optimizer")
    gui.option("resolution", "max_resolution")
    gui.option(
        "persistent_data_loader_workers",
        "persistent_data_loader_workers",
        int(bool(gui["persistent_data_loader_workers"])),
    )
    gui.option("seed", "seed", int(gui["seed"] or 0))
    gui.option(
        "lr_scheduler_num_cycles",
        "lr_scheduler_num_cycles",
        int(gui["lr_scheduler_num_cycles"])
        if gui["lr_scheduler_num_cycles"] != ""
        else int(gui["epoch"]),
    )
    gui.option("lr_scheduler_type", "lr_scheduler_type")
    gui.option("v2", "v2")
    gui.option("vae", "vae")
    clip_skip = int(float(gui["clip_skip"] or 0))
    gui.option("clip_skip", "clip_skip", clip_skip)
    if not flux:
        gui.option("max_token_length", "max_token_length", int(gui["max_token_length"]))
    elif "max_token_length" in gui.data:
        gui.record("max_token_length", "dropped", "the GUI does not pass it for Flux")
    gui.options["max_data_loader_n_workers"] = gui.given(
        "max_data_loader_n_workers", int(gui["max_data_loader_n_workers"] or 0)
    )  # always passed, even 0 (L2568)
    for key in ("lr_scheduler_args", "optimizer_args"):
        tokens = str(gui[key]).replace('"', "").split()
        if tokens:
            gui.options[key] = gui.given(key, tokens)
        else:
            gui.record(key, "unset", "empty")
    attention = gui["xformers"]
    if attention in ("xformers", "sdpa"):
        gui.options[attention] = gui.given("xformers", True)
    else:
        gui.record("xformers", "unset", f"{attention!r}: no xformers/sdpa")
    if gui["wandb_run_name"] and gui["log_with"] in ("wandb", "all"):
        gui.options["wandb_run_name"] = gui.given("wandb_run_name")
    else:
        gui.record("wandb_run_name", "dropped", "only used with log_with wandb")
    _noise(gui)
    _train_inpainting(gui, flux)
    _family_options(gui, sdxl=sdxl, flux=flux)


def _noise(gui: Gui) -> None:
    """noise_offset_type gates which noise options pass (L2148-2152, L2282-2296, L2315-2326)."""
    original = gui["noise_offset_type"] == "Original"
    for key in ("noise_offset", "adaptive_noise_scale", "noise_offset_random_strength"):
        if original:
            gui.option(key, key)
        else:
            gui.record(key, "dropped", "noise_offset_type is Multires: the GUI does not pass it")
    for key in ("multires_noise_iterations", "multires_noise_discount"):
        if original:
            gui.record(key, "dropped", "noise_offset_type is Original: the GUI does not pass it")
        else:
            gui.option(key, key)


def _train_inpainting(gui: Gui, flux: bool) -> None:
    if gui["train_inpainting"] and not flux:
        gui.option("train_inpainting", "train_inpainting")
        for key in ("cache_latents", "cache_latents_to_disk"):
            gui.options.pop(key, None)
            gui.record(key, "dropped", "train_inpainting: the GUI turns latent caching off")
    else:
        gui.record("train_inpainting", "unset", "off")


def _family_options(gui: Gui, *, sdxl: bool, flux: bool) -> None:
    """SDXL/Flux fields, passed only for their family (L2155-2177, L2446-2490)."""
    if sdxl:
        if gui["sdxl_cache_text_encoder_outputs"]:
            gui.options["cache_text_encoder_outputs"] = gui.given(
                "sdxl_cache_text_encoder_outputs", True
            )
        if gui["sdxl_no_half_vae"]:
            gui.options["no_half_vae"] = gui.given("sdxl_no_half_vae", True)
    for key in ("sdxl_cache_text_encoder_outputs", "sdxl_no_half_vae"):
        if not sdxl:
            gui.record(key, "dropped", "an SDXL field; sdxl is off")
        elif not gui[key]:
            gui.record(key, "unset", "off")
    if not flux:
        for key in FLUX_FIELDS:
            gui.record(key, "dropped", "a Flux field; flux1_checkbox is off")
        gui.record("fp8_base_unet", "dropped", "a Flux field; flux1_checkbox is off")
        return
    chroma = str(gui["model_type"]).lower() == "chroma"
    if gui["flux1_cache_text_encoder_outputs"]:
        gui.options["cache_text_encoder_outputs"] = gui.given(
            "flux1_cache_text_encoder_outputs", True
        )
    if gui["flux1_cache_text_encoder_outputs_to_disk"]:
        gui.options["cache_text_encoder_outputs_to_disk"] = gui.given(
            "flux1_cache_text_encoder_outputs_to_disk", True
        )
    for key in (
        "ae",
        "t5xxl",
        "split_mode",
        "mem_eff_save",
        "apply_t5_attn_mask",
        "cpu_offload_checkpointing",
        "blocks_to_swap",
        "single_blocks_to_swap",
        "double_blocks_to_swap",
        "model_prediction_type",
        "timestep_sampling",
        "fp8_base_unet",
    ):
        gui.option(key, key)
    if not chroma:
        gui.option("clip_l", "clip_l")
    gui.option(
        "t5xxl_max_token_length", "t5xxl_max_token_length", int(gui["t5xxl_max_token_length"])
    )
    gui.option("guidance_scale", "guidance_scale", float(gui["guidance_scale"]))
    gui.option("discrete_flow_shift", "discrete_flow_shift", float(gui["discrete_flow_shift"]))
    if gui["show_timesteps"]:
        gui.option("show_timesteps", "show_timesteps")
        gui.option("show_timesteps_resolution", "show_timesteps_resolution")
    else:
        gui.record("show_timesteps", "unset", "empty")
        gui.record("show_timesteps_resolution", "dropped", "only used with show_timesteps")
    if chroma:
        gui.options["model_type"] = gui.given("model_type", "chroma")
        gui.options["apply_t5_attn_mask"] = gui.given("model_type", True)
        gui.options["guidance_scale"] = gui.given("guidance_scale", float(gui["guidance_scale"]))
    else:
        gui.record("model_type", "dropped", "flux: sd-scripts' default model type")


def _accelerate(gui: Gui) -> dict[str, Given]:
    """AccelerateLaunch.run_cmd (class_accelerate_launch.py L151-204)."""
    launch: dict[str, Given] = {}
    for key in (
        "num_processes",
        "num_machines",
        "num_cpu_threads_per_process",
        "main_process_port",
    ):
        value = int(float(gui[key] or 0))
        if value > 0:
            launch[key] = gui.given(key, value)
        else:
            gui.record(key, "unset", "0: not passed to accelerate")
    if gui["gpu_ids"]:
        launch["gpu_ids"] = gui.given("gpu_ids")
    else:
        gui.record("gpu_ids", "unset", "empty: not passed")
    if gui["multi_gpu"]:
        launch["multi_gpu"] = gui.given("multi_gpu", True)
    else:
        gui.record("multi_gpu", "unset", "off")
    if gui["dynamo_backend"]:
        launch["dynamo_backend"] = gui.given("dynamo_backend")
    # mixed_precision goes to accelerate too; sd-scripts' own option is what counts (mapped).
    extra = str(gui["extra_accelerate_launch_args"]).replace('"', "").strip()
    if extra:
        flags, _, _ = parse_launcher(["launch", *extra.split()], gui.builder)
        for name, given in flags.items():
            launch[name] = Given(given.value, f"extra_accelerate_launch_args ({given.source})")
        gui.record("extra_accelerate_launch_args", "dropped", "its flags are listed one by one")
    else:
        gui.record("extra_accelerate_launch_args", "unset", "empty")
    return launch


def _additional(gui: Gui, script: str) -> None:
    """additional_parameters: free-text flags after --config_file (common_gui.py L1318-1355)."""
    text = str(gui["additional_parameters"]).replace('"', "").strip()
    if not text:
        gui.record("additional_parameters", "unset", "empty")
        return
    tokens = [t for command in split_command(text) for t in command]
    flags = parse_script_args(
        tokens, script, source_prefix="additional_parameters: ", what="additional_parameters"
    )
    for name, given in flags.items():
        if name in gui.options:
            gui.record(
                gui.options[name].source,
                "dropped",
                f"overridden by {given.source} (command-line flags win over the config)",
            )
        gui.options[name] = given
    gui.record("additional_parameters", "dropped", "its options are listed one by one")


def _prompts(gui: Gui) -> None:
    """sample_prompts holds the prompts themselves; the GUI writes them to a file (L2360)."""
    text = str(gui["sample_prompts"])
    lines = prompt_lines(text)
    if lines:
        gui.builder.set("sampling.prompts", lines, gui.given("sample_prompts"))
    else:
        gui.record("sample_prompts", "unset", "empty")


def _account(gui: Gui) -> None:
    """Every key of the file has a record; values the file lacks are marked as the GUI's."""
    records = gui.builder.records
    for source, record in records.items():
        if source in LORA_TAB_KEYS and not gui.in_file(source) and not record.default:
            records[source] = dataclasses.replace(record, default=True)
    for key in gui.data:
        if key in GUI_ONLY:
            gui.builder.record(key, "dropped", reason=GUI_ONLY[key])
        elif key in MIGRATED:
            gui.builder.record(key, "dropped", reason=f"an old GUI key, read as {MIGRATED[key]}")
        elif key == "LyCORIS_preset":
            gui.builder.record(key, "dropped", reason="only used by LyCORIS types")
        elif key in SD3_FIELDS or any(
            key == k or key.startswith(p) for k, (_, p) in OTHER_FAMILIES.items()
        ):
            gui.builder.record(key, "dropped", reason="a field of a model family that is off")
        elif key not in LORA_TAB_KEYS:
            gui.builder.record(
                key,
                "dropped",
                reason="not a field of the GUI's LoRA tab (a stale "
                "name: the GUI ignores it when loading)",
            )
        else:
            gui.builder.record(key, "dropped", reason="not used for this configuration")
