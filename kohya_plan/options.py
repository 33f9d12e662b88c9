"""sd-scripts' own option table (a snapshot of its argparse parser at the pinned commit).

The snapshot is made by scripts/snapshot_sd_scripts_options.py from vendor/sd-scripts and
committed, so validation works where sd-scripts is not installed. `OPTION_FOR` maps each plan
key to the sd-scripts option it becomes: the renderer writes by it, the plan's `launch.extra`
check refuses what it already covers.
"""

from __future__ import annotations

import json
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
