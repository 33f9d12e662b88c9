"""The config TOML for `--config_file`: every training option, with sd-scripts' own types.

sd-scripts reads this file without argparse conversion (contract §3), so each value is written
with the exact Python type argparse would have produced, and every key is checked against the
parser snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan.options import coerce, options_for
from kohya_plan.render.dataset_toml import header_lines
from kohya_plan.render.toml_text import TomlValue, toml_table

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from kohya_plan.plan import Plan
    from kohya_plan.rundir import RunDir

_ATTENTION = {"sdpa": "sdpa", "xformers": "xformers", "mem_eff": "mem_eff_attn"}
# flux_train_utils.get_noisy_model_input_and_timesteps: what each timestep sampling reads
_SHIFTED = ("shift", "sigma")


def python_literal(value: TomlValue) -> str:
    """A value as `ast.literal_eval` reads it (sd-scripts parses optimizer args that way)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    return ",".join(python_literal(item) for item in value)


def key_value_args(values: Mapping[str, TomlValue], *, literal: bool) -> list[str] | None:
    """`{"k": v}` → `["k=v"]`; network args are plain strings, optimizer args Python literals."""
    if not values:
        return None
    out = []
    for key, value in values.items():
        if literal:
            text = python_literal(value)
        elif isinstance(value, bool):
            text = "True" if value else "False"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            text = ",".join(str(v) for v in value)
        out.append(f"{key}={text}")
    return out


def text_encoder_lr(plan: Plan) -> list[float] | None:
    """`--text_encoder_lr` as it takes effect: two values only where the network honours a
    second one (FLUX.1's networks.lora_flux); networks.lora keeps only the first."""
    values = plan.optimizer.text_encoder_lr_values
    if not values:
        return None
    if len(values) > 1 and plan.family.takes_text_encoder_lr_list(plan.network.module):
        return [float(v) for v in values]
    return [float(values[0])]


def _flux_options(plan: Plan) -> dict[str, TomlValue | None]:
    f = plan.flux
    if f is None:
        return {}
    shifted = f.timestep_sampling in ("sigmoid", "shift", "flux_shift")
    return {
        "model_type": f.model_type,
        "guidance_scale": f.guidance_scale,
        "timestep_sampling": f.timestep_sampling,
        # written only where flux_train_utils reads them
        "sigmoid_scale": f.sigmoid_scale if shifted else None,
        # shift uses it directly, sigma through the scheduler's shifted sigmas
        "discrete_flow_shift": f.discrete_flow_shift if f.timestep_sampling in _SHIFTED else None,
        "model_prediction_type": f.model_prediction_type,
        "t5xxl_max_token_length": f.t5xxl_max_token_length,
        "apply_t5_attn_mask": f.apply_t5_attn_mask or None,
        "blocks_to_swap": f.blocks_to_swap or None,
        "cpu_offload_checkpointing": f.cpu_offload_checkpointing or None,
    }


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def config_sections(
    plan: Plan,
    *,
    model: str,
    tokenizer_cache_dir: Path | None,
    files: RunDir,
    model_files: Mapping[str, str] | None = None,
) -> dict[str, dict[str, TomlValue]]:
    """The config file's content, by section (sd-scripts flattens one level of tables).

    `model_files` are the family's other model files as sd-scripts gets them (local paths);
    options the family ignores are left out (`check` says so), every key is one of the
    family script's options.
    """
    extra_files = dict(model_files or {})
    m, n, o, t, s, out, la = (
        plan.model,
        plan.network,
        plan.optimizer,
        plan.training,
        plan.sampling,
        plan.output,
        plan.launch,
    )
    ds = la.deepspeed
    w, h = plan.dataset.size
    sections: dict[str, dict[str, TomlValue | None]] = {
        "model": {
            "pretrained_model_name_or_path": model,
            "clip_skip": m.clip_skip,
            "tokenizer_cache_dir": str(tokenizer_cache_dir) if tokenizer_cache_dir else None,
            "vae": m.vae,
            "v_parameterization": m.v_parameterization or None,
            **{
                spec.option: extra_files.get(spec.key, getattr(m, spec.key))
                for spec in plan.family.model_files
            },
        },
        "network": {
            "network_module": n.module,
            "network_dim": n.dim,
            "network_alpha": float(n.alpha),
            "network_dropout": n.dropout,
            "network_args": key_value_args(n.args, literal=False),
            "network_train_unet_only": n.train_unet_only or None,
            "network_train_text_encoder_only": n.train_text_encoder_only or None,
            "network_weights": n.weights,
        },
        "optimizer": {
            "optimizer_type": o.type,
            "learning_rate": o.learning_rate,
            "unet_lr": o.unet_lr,
            "text_encoder_lr": text_encoder_lr(plan),
            "lr_scheduler": o.scheduler,
            "lr_scheduler_num_cycles": o.scheduler_num_cycles,
            "lr_scheduler_power": o.scheduler_power,
            "lr_scheduler_min_lr_ratio": o.min_lr_ratio,
            "lr_warmup_steps": o.warmup_steps,
            "max_grad_norm": o.max_grad_norm,
            "optimizer_args": key_value_args(o.args, literal=True),
            "lr_scheduler_args": key_value_args(o.scheduler_args, literal=True),
        },
        "training": {
            "resolution": f"{w},{h}",
            "max_train_epochs": t.epochs,
            "max_train_steps": t.max_train_steps if t.epochs is None else None,
            "gradient_accumulation_steps": t.gradient_accumulation_steps,
            "mixed_precision": t.mixed_precision,
            "seed": t.seed,
            "cache_latents": t.cache_latents or None,
            "cache_latents_to_disk": t.cache_latents_to_disk or None,
            "gradient_checkpointing": t.gradient_checkpointing or None,
            "cache_text_encoder_outputs": t.cache_text_encoder_outputs or None,
            "cache_text_encoder_outputs_to_disk": t.cache_text_encoder_outputs_to_disk or None,
            "no_half_vae": t.no_half_vae or None,
            "full_fp16": t.full_fp16 or None,
            "full_bf16": t.full_bf16 or None,
            "fp8_base": t.fp8_base or None,
            "max_data_loader_n_workers": t.max_data_loader_n_workers,
            "persistent_data_loader_workers": t.persistent_data_loader_workers or None,
        },
        "saving": {
            "output_dir": str(out.dir),
            "output_name": out.name,
            "save_model_as": out.save_model_as,
            "save_precision": out.save_precision,
            "save_every_n_epochs": t.save_every_n_epochs or None,
            "save_every_n_steps": t.save_every_n_steps,
            "save_last_n_epochs": t.save_last_n_epochs,
            "save_state": t.save_state or None,
            "training_comment": out.comment,
        },
        "flux": _flux_options(plan),
        "sampling": {},
        "logging": {"logging_dir": str(files.logging_dir) if t.tensorboard else None},
        "distributed": {
            "ddp_timeout": la.ddp_timeout,
            "ddp_gradient_as_bucket_view": la.ddp_gradient_as_bucket_view or None,
            "ddp_static_graph": la.ddp_static_graph or None,
            "deepspeed": True if ds is not None else None,
            "zero_stage": ds.zero_stage if ds is not None else None,
            "offload_optimizer_device": ds.offload_optimizer_device if ds is not None else None,
            "offload_optimizer_nvme_path": _path(ds.offload_optimizer_nvme_path)
            if ds is not None
            else None,
            "offload_param_device": ds.offload_param_device if ds is not None else None,
            "offload_param_nvme_path": _path(ds.offload_param_nvme_path)
            if ds is not None
            else None,
        },
        "extra": dict(plan.launch.extra),
    }
    if t.attention in _ATTENTION:
        sections["training"][_ATTENTION[t.attention]] = True
    if s.enabled:
        sections["sampling"] = {
            "sample_prompts": str(files.prompts),
            "sample_every_n_epochs": s.every_n_epochs,
            # sd-scripts ignores steps when epochs are set; write only what takes effect.
            "sample_every_n_steps": s.every_n_steps if s.every_n_epochs is None else None,
            "sample_at_first": s.at_first or None,
            "sample_sampler": s.sampler,
        }
    ignored = plan.family.ignored_options
    options = options_for(plan.script_name)
    rendered: dict[str, dict[str, TomlValue]] = {}
    for name, values in sections.items():
        kept = {k: v for k, v in values.items() if v is not None and k not in ignored}
        unknown = sorted(set(kept) - set(options))
        if unknown:  # the plan's validator refuses these: reaching here is a bug
            msg = f"{plan.script_name} has no option {', '.join(unknown)} (plan/fit.py missed it)"
            raise AssertionError(msg)
        if kept:
            rendered[name] = {k: coerce(options[k], v) for k, v in kept.items()}
    return rendered


def render_config_toml(
    plan: Plan,
    *,
    model: str,
    tokenizer_cache_dir: Path | None,
    files: RunDir,
    header: str,
    model_files: Mapping[str, str] | None = None,
) -> str:
    """Config TOML text, grouped by concern; sd-scripts ignores the section names."""
    lines = header_lines(header)
    sections = config_sections(
        plan,
        model=model,
        tokenizer_cache_dir=tokenizer_cache_dir,
        files=files,
        model_files=model_files,
    )
    for name, values in sections.items():
        if lines and lines[-1] != "":
            lines.append("")
        lines += [f"[{name}]", *toml_table(values)]
    return "\n".join(lines) + "\n"


def render_prompts(plan: Plan, header: str) -> str:
    """The sample-prompt file (.txt: one prompt per line; '#' lines are skipped by sd-scripts)."""
    lines = header_lines(header)
    lines += list(plan.sampling.prompts)
    return "\n".join(lines) + "\n"
