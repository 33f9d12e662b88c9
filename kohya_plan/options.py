"""sd-scripts' own option table (a snapshot of its argparse parser at the pinned commit).

The snapshot is made by scripts/snapshot_sd_scripts_options.py from vendor/sd-scripts and
committed, so validation works where sd-scripts is not installed. `OPTION_FOR` maps each plan
key to the sd-scripts option it becomes: the renderer writes by it, the plan's `launch.extra`
check refuses what it already covers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True, slots=True)
class Option:
    """One argparse option of an sd-scripts training script."""

    dest: str
    type: str
    nargs: str | int | None
    default: Any
    choices: tuple[Any, ...] | None
    action: str

    @property
    def is_list(self) -> bool:
        """Options declared with nargs take a TOML array in the config file."""
        return self.nargs in ("*", "+") or (isinstance(self.nargs, int) and self.nargs > 1)


@cache
def _snapshot() -> dict[str, Any]:
    text = resources.files("kohya_plan").joinpath("data/sd_scripts_options.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def sd_scripts_commit() -> str:
    """The sd-scripts commit the snapshot was made from."""
    return str(_snapshot()["sd_scripts_commit"])


@cache
def options_for(script: str = "train_network.py") -> dict[str, Option]:
    """Options of one training script, by dest name."""
    raw = _snapshot()["scripts"][script]
    return {
        dest: Option(
            dest=dest,
            type=str(spec.get("type")),
            nargs=spec.get("nargs"),
            default=spec.get("default"),
            choices=tuple(spec["choices"]) if spec.get("choices") else None,
            action=str(spec.get("action", "store")),
        )
        for dest, spec in raw.items()
    }


def value_problem(option: Option, value: Any) -> str | None:
    """Why `value` would not work for `option` in a config file (no conversion happens there)."""
    if option.is_list:
        if not isinstance(value, list):
            return f"{option.dest} takes a list — write {option.dest} = [{_example(option)}]"
        problems = [_scalar_problem(option, item) for item in value]
        return next((p for p in problems if p), None)
    if isinstance(value, list):
        return f"{option.dest} takes one value, not a list"
    return _scalar_problem(option, value)


def _example(option: Option) -> str:
    return {"int": "1", "float": "0.1"}.get(option.type, '"..."')


def _scalar_problem(option: Option, value: Any) -> str | None:
    kind = option.type
    if option.action in ("store_true", "store_false") or kind == "bool":
        ok = isinstance(value, bool)
        expected = "true or false"
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "a whole number"
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number"
    elif kind == "int_or_float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a step count or a ratio below 1"
    else:
        ok = isinstance(value, str)
        expected = "text"
    if not ok:
        return f"{option.dest} takes {expected}, got {value!r}"
    if option.choices and value not in option.choices:
        choices = ", ".join(repr(c) for c in option.choices if c is not None)
        return f"{option.dest} takes one of {choices}, got {value!r}"
    return None


def coerce(option: Option, value: Any) -> Any:
    """The Python type argparse would have produced (ints become floats for float options)."""
    if option.type in ("float",) and not isinstance(value, bool):
        if isinstance(value, list):
            return [float(v) for v in value]
        if isinstance(value, int):
            return float(value)
    return value


# Plan key → sd-scripts option: the table behind the README's "tutorial setting" table and
# the conformance tests. Options kohya-plan derives itself (paths of the run) are listed too.
OPTION_FOR: dict[str, str] = {
    "model.base": "pretrained_model_name_or_path",
    "model.clip_skip": "clip_skip",
    "model.tokenizer_cache_dir": "tokenizer_cache_dir",
    "model.vae": "vae",
    "model.v_parameterization": "v_parameterization",
    "model.ae": "ae",
    "model.clip_l": "clip_l",
    "model.t5xxl": "t5xxl",
    "network.dim": "network_dim",
    "network.alpha": "network_alpha",
    "network.module": "network_module",
    "network.dropout": "network_dropout",
    "network.args": "network_args",
    "network.train_unet_only": "network_train_unet_only",
    "network.train_text_encoder_only": "network_train_text_encoder_only",
    "network.weights": "network_weights",
    "optimizer.type": "optimizer_type",
    "optimizer.learning_rate": "learning_rate",
    "optimizer.unet_lr": "unet_lr",
    "optimizer.text_encoder_lr": "text_encoder_lr",
    "optimizer.scheduler": "lr_scheduler",
    "optimizer.scheduler_num_cycles": "lr_scheduler_num_cycles",
    "optimizer.scheduler_power": "lr_scheduler_power",
    "optimizer.min_lr_ratio": "lr_scheduler_min_lr_ratio",
    "optimizer.warmup_steps": "lr_warmup_steps",
    "optimizer.max_grad_norm": "max_grad_norm",
    "optimizer.args": "optimizer_args",
    "optimizer.scheduler_args": "lr_scheduler_args",
    "training.epochs": "max_train_epochs",
    "training.max_train_steps": "max_train_steps",
    "training.batch_size": "train_batch_size",
    "training.gradient_accumulation_steps": "gradient_accumulation_steps",
    "training.mixed_precision": "mixed_precision",
    "training.save_every_n_epochs": "save_every_n_epochs",
    "training.save_every_n_steps": "save_every_n_steps",
    "training.save_last_n_epochs": "save_last_n_epochs",
    "training.save_state": "save_state",
    "training.seed": "seed",
    "training.cache_latents": "cache_latents",
    "training.cache_latents_to_disk": "cache_latents_to_disk",
    "training.gradient_checkpointing": "gradient_checkpointing",
    "training.cache_text_encoder_outputs": "cache_text_encoder_outputs",
    "training.cache_text_encoder_outputs_to_disk": "cache_text_encoder_outputs_to_disk",
    "training.no_half_vae": "no_half_vae",
    "training.full_fp16": "full_fp16",
    "training.full_bf16": "full_bf16",
    "training.fp8_base": "fp8_base",
    "training.attention": "sdpa",
    "training.max_data_loader_n_workers": "max_data_loader_n_workers",
    "training.persistent_data_loader_workers": "persistent_data_loader_workers",
    "training.tensorboard": "logging_dir",
    "sampling.every_n_epochs": "sample_every_n_epochs",
    "sampling.every_n_steps": "sample_every_n_steps",
    "sampling.at_first": "sample_at_first",
    "sampling.sampler": "sample_sampler",
    "sampling.prompts": "sample_prompts",
    "output.dir": "output_dir",
    "output.name": "output_name",
    "output.save_precision": "save_precision",
    "output.save_model_as": "save_model_as",
    "output.comment": "training_comment",
    "dataset.resolution": "resolution",
    "flux.model_type": "model_type",
    "flux.guidance_scale": "guidance_scale",
    "flux.timestep_sampling": "timestep_sampling",
    "flux.sigmoid_scale": "sigmoid_scale",
    "flux.discrete_flow_shift": "discrete_flow_shift",
    "flux.model_prediction_type": "model_prediction_type",
    "flux.t5xxl_max_token_length": "t5xxl_max_token_length",
    "flux.apply_t5_attn_mask": "apply_t5_attn_mask",
    "flux.blocks_to_swap": "blocks_to_swap",
    "flux.cpu_offload_checkpointing": "cpu_offload_checkpointing",
    "launch.ddp_timeout": "ddp_timeout",
    "launch.ddp_gradient_as_bucket_view": "ddp_gradient_as_bucket_view",
    "launch.ddp_static_graph": "ddp_static_graph",
    "launch.deepspeed": "deepspeed",
    "launch.deepspeed.zero_stage": "zero_stage",
    "launch.deepspeed.offload_optimizer_device": "offload_optimizer_device",
    "launch.deepspeed.offload_optimizer_nvme_path": "offload_optimizer_nvme_path",
    "launch.deepspeed.offload_param_device": "offload_param_device",
    "launch.deepspeed.offload_param_nvme_path": "offload_param_nvme_path",
}


def owned_options() -> frozenset[str]:
    """sd-scripts options the plan sets through its own keys (launch.extra must not repeat them)."""
    derived = {"dataset_config", "config_file", "xformers", "mem_eff_attn", "sdpa"}
    return frozenset(OPTION_FOR.values()) | derived | {"train_data_dir", "reg_data_dir"}


# --- what launch.extra may not carry ---------------------------------------------------------
# sd-scripts takes these from the dataset TOML, where kohya-plan always writes them: with
# --dataset_config, an option of the same name only fills keys the file leaves out
# (config_util.BlueprintGenerator: subset → dataset → general → argparse namespace), so
# `launch.extra.keep_tokens` would be ignored without a word. Option → the plan key instead.
# (`dataset_repeats` is argparse's name for the file's `num_repeats`; `caption_extention` its
# old misspelling of caption_extension.) tests/render checks this table against the renderer.
DATASET_TOML_OPTIONS: dict[str, str] = {
    "caption_extension": "dataset.caption_extension",
    "caption_extention": "dataset.caption_extension",
    "shuffle_caption": "dataset.shuffle_caption",
    "keep_tokens": "dataset.keep_tokens",
    "flip_aug": "dataset.flip_aug",
    "color_aug": "dataset.color_aug",
    "random_crop": "dataset.random_crop",
    "caption_dropout_rate": "dataset.caption_dropout_rate",
    "caption_prefix": "dataset.caption_prefix",
    "caption_suffix": "dataset.caption_suffix",
    "enable_bucket": "dataset.enable_bucket",
    "min_bucket_reso": "dataset.min_bucket_reso",
    "max_bucket_reso": "dataset.max_bucket_reso",
    "bucket_reso_steps": "dataset.bucket_reso_steps",
    "bucket_no_upscale": "dataset.bucket_no_upscale",
    "dataset_repeats": "dataset.subsets[].repeats (or the N of an N_name folder)",
    "resolution": "dataset.resolution",
    "train_batch_size": "training.batch_size",
}

IGNORED_WITH_DATASET_CONFIG: dict[str, str] = {
    "train_data_dir": "dataset.train_dir",
    "reg_data_dir": "dataset.reg_dir",
}
"""train_network.py: "ignoring the following options because config file is found"."""

SECRET_OPTIONS: dict[str, str] = {
    "huggingface_token": "HF_TOKEN",
    "wandb_api_key": "WANDB_API_KEY",
}
"""Options that hold a secret → the environment variable their library reads instead."""

_SECRET_NAME = re.compile(r"(?:^|_)(?:token|api_key|key|secret|password|passwd)$")

# Options that make sd-scripts do something other than train this plan's dataset.
NOT_TRAINING_OPTIONS: dict[str, str] = {
    "debug_dataset": (
        "makes sd-scripts show the dataset's images one by one and train nothing — "
        "`kohya-plan check` shows the dataset, its buckets and the exact step count"
    ),
    "output_config": (
        "makes sd-scripts write its options into --config_file and exit (here it would stop "
        "at once, as config.toml exists) — the run folder's config.toml is that file already"
    ),
    "dataset_class": (
        "replaces sd-scripts' dataset with a class of your own, so the dataset checks and "
        "the step count would not hold — not supported by kohya-plan"
    ),
    "in_json": (
        "is ignored by sd-scripts when a dataset config is given (kohya-plan always gives one) "
        "— kohya-plan trains folders of images with caption files beside them"
    ),
    "console_log_file": (
        "sends sd-scripts' log to a file instead of its output, so train.log, the progress "
        "and the summary would miss it — train.log in the run folder keeps everything"
    ),
    "use_8bit_adam": (
        'is an old switch that clashes with optimizer_type — set optimizer.type = "AdamW8bit"'
    ),
    "use_lion_optimizer": (
        'is an old switch that clashes with optimizer_type — set optimizer.type = "Lion"'
    ),
}


def extra_refusal(key: str) -> str | None:
    """Why `launch.extra` may not carry option `key`, and what to do instead (None: it may).

    Pure and script-independent, so every place that checks launch.extra asks here: options
    sd-scripts would take from the dataset TOML instead (silently ignored), options that put a
    secret into the run folder's files, and options that make sd-scripts do something other
    than train. The text reads "'key' … — fix".
    """
    if key in DATASET_TOML_OPTIONS:
        return (
            f"{key!r} is read from the dataset TOML, where kohya-plan writes it, so "
            f"sd-scripts would ignore this value — set {DATASET_TOML_OPTIONS[key]} instead"
        )
    if key in IGNORED_WITH_DATASET_CONFIG:
        return (
            f"{key!r} is ignored by sd-scripts when a dataset config is given (kohya-plan "
            f"always gives one) — set {IGNORED_WITH_DATASET_CONFIG[key]} instead"
        )
    if key in SECRET_OPTIONS or _SECRET_NAME.search(key):
        env = SECRET_OPTIONS.get(key)
        where = f"set the environment variable {env}" if env else "pass it in the environment"
        login = " (or log in with `hf auth login`)" if key == "huggingface_token" else ""
        return (
            f"{key!r} would write a secret into the run folder's config.toml — {where} "
            f"before `kohya-plan launch` instead{login}"
        )
    if key in NOT_TRAINING_OPTIONS:
        return f"{key!r} {NOT_TRAINING_OPTIONS[key]}"
    return None
