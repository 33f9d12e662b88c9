"""sd-scripts options → plan keys: the core every importer ends in.

Each format first turns its file into what sd-scripts would have received: a dict of option
name → value (`Given`, with the source key it came from), an optional dataset config, and the
accelerate flags. `build_plan` then maps that onto plan keys — the inverse of the renderer's
`OPTION_FOR` table — so the plan renders the same effective values. sd-scripts options the
plan does not model go to `launch.extra` (checked against the option snapshot of the plan's
own script); what cannot be carried is said, with the reason.

Pure: files a source names (dataset TOML, prompt file) are read through the injected `Sources`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kohya_plan.families import FAMILIES, family

# The renderer's table, imported here only.
from kohya_plan.options import OPTION_FOR
from kohya_plan.workflows.importers.datasets import map_dataset
from kohya_plan.workflows.importers.sources import resolve_path
from kohya_plan.workflows.importers.state import (
    Builder,
    State,
    carry_extra,
    map_direct,
    map_flag,
    pure_path,
    refuse,
    resolved,
    take_typed,
)
from kohya_plan.workflows.importers.values import (
    OTHER_SCRIPTS,
    SCRIPT_FAMILY,
    Given,
    bare_word,
    known_options,
    parse_key_values,
    prompt_lines,
    script_options,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kohya_plan.families import Family
    from kohya_plan.workflows.importers.state import DatasetInput

# sd-scripts option → plan key (the renderer's table inverted). A few options are derived by
# the renderer rather than copied; `build_plan` maps those itself.
PLAN_KEY_FOR: dict[str, str] = {option: key for key, option in OPTION_FOR.items()}

_DERIVED = {"sdpa", "logging_dir", "sample_prompts", "resolution"}

_ATTENTION_OPTIONS = ("mem_eff_attn", "xformers", "sdpa")  # sd-scripts' precedence

_ATTENTION_NAME = {"mem_eff_attn": "mem_eff", "xformers": "xformers", "sdpa": "sdpa"}


def build_plan(
    builder: Builder,
    options: Mapping[str, Given],
    *,
    script: str,
    family: Given | None = None,
    dataset: DatasetInput | None = None,
    launch: Mapping[str, Given] | None = None,
) -> None:
    """Map what sd-scripts would receive onto plan keys (see the module docstring)."""
    if script in OTHER_SCRIPTS:
        refuse(script, f"is a {OTHER_SCRIPTS[script]} script", "kohya-plan plans LoRA runs")
    given_options = {}
    for name, given in options.items():
        if isinstance(given.value, (str, list)) and not given.value:
            # sd-scripts tests these with `if args.x:`, so "" and [] mean "not given".
            builder.record(
                given.source,
                "unset",
                reason="empty: sd-scripts treats it as not given",
                default=given.default,
            )
        else:
            given_options[name] = given
    state = State(builder, script, given_options, script_options(script), known_options(script))
    name = SCRIPT_FAMILY.get(script, "sd15")
    if name != "sd15" or family is not None:
        builder.set("model.family", name, family)
    else:
        builder.fill("model.family", name, f"the script is {script} (SD1.x/2.x)")
    _model(state)
    _network(state)
    _optimizer(state)
    _training(state)
    _family_options(state)
    _sampling(state)
    _output(state)
    map_dataset(state, dataset)
    _distributed(state)
    _rest(state)
    _launch(state, launch or {})
    _implied_defaults(state)


def _model_ref(state: State, given: Given) -> str:
    """A local file or folder (made absolute) or a Hub repo id (kept)."""
    from kohya_plan.inputs.hub.refs import is_hub_ref

    text = str(given.value).strip()
    resolved = resolve_path(text, state.builder.sources)
    if state.builder.sources.exists(pure_path(state, resolved.path)) or not is_hub_ref(text):
        return resolved.path
    return text


def _model(state: State) -> None:
    b = state.builder
    for name, plan_key in (("pretrained_model_name_or_path", "model.base"), ("vae", "model.vae")):
        taken = take_typed(state, name)
        if taken is not None:
            given, value = taken
            b.set(plan_key, _model_ref(state, Given(value, given.source)), given)
    fam = _family(state)
    for name, why in fam.ignored_options.items():
        ignored = state.take(name)
        if ignored is not None:
            b.record(ignored.source, "dropped", reason=why, default=ignored.default)
    map_direct(state, "clip_skip", "model.clip_skip")
    map_direct(state, "tokenizer_cache_dir", "model.tokenizer_cache_dir")
    map_flag(state, "v_parameterization", "model.v_parameterization")
    for spec in fam.model_files:
        map_direct(state, spec.option, f"model.{spec.key}")


def _family(state: State) -> Family:
    return family(SCRIPT_FAMILY.get(state.script, "sd15"))


def _network(state: State) -> None:
    b = state.builder
    map_direct(state, "network_module", "network.module")
    map_direct(state, "network_dim", "network.dim")
    map_direct(state, "network_alpha", "network.alpha")
    map_direct(state, "network_dropout", "network.dropout")
    map_direct(state, "network_weights", "network.weights")
    map_flag(state, "network_train_unet_only", "network.train_unet_only")
    map_flag(state, "network_train_text_encoder_only", "network.train_text_encoder_only")
    taken = take_typed(state, "network_args")
    if taken is None:
        return
    given, items = taken
    values, problems = parse_key_values(items, literal=False)
    for text in problems:
        b.record(given.source, "cannot", reason=text)
    if given.parts is None:
        b.set("network.args", values, given)
        return
    b.set("network.args", values, None)
    for key, value in values.items():
        source = given.parts.get(key, given.source)
        b.record(source, "mapped", f"network.args.{key}", value, default=given.default)


def _optimizer(state: State) -> None:
    b = state.builder
    map_direct(state, "optimizer_type", "optimizer.type")
    map_direct(state, "learning_rate", "optimizer.learning_rate")
    map_direct(state, "unet_lr", "optimizer.unet_lr")
    taken = take_typed(state, "text_encoder_lr")
    if taken is not None:
        given, value = taken
        if not value:
            b.record(given.source, "unset", reason="an empty list: no text-encoder LR given")
        elif len(set(value)) == 1:
            b.set("optimizer.text_encoder_lr", value[0], given)
        else:
            _text_encoder_lrs(state, given, value)
    map_direct(state, "lr_scheduler", "optimizer.scheduler")
    map_direct(state, "lr_scheduler_num_cycles", "optimizer.scheduler_num_cycles")
    map_direct(state, "lr_scheduler_power", "optimizer.scheduler_power")
    map_direct(state, "lr_scheduler_min_lr_ratio", "optimizer.min_lr_ratio")
    taken = take_typed(state, "lr_warmup_steps")
    if taken is not None:
        given, value = taken
        if isinstance(value, float) and value >= 1:
            b.record(
                given.source, "cannot", reason=f"{value!r} is a ratio of the whole run or more"
            )
        else:
            b.set("optimizer.warmup_steps", value, given)
    map_direct(state, "max_grad_norm", "optimizer.max_grad_norm")
    for name, plan_key in (
        ("optimizer_args", "optimizer.args"),
        ("lr_scheduler_args", "optimizer.scheduler_args"),
    ):
        taken = take_typed(state, name)
        if taken is None:
            continue
        given, items = taken
        values, problems = parse_key_values(items, literal=True)
        for text in problems:
            b.notes.append(f"{given.source}: {text} — left out")
        unreadable = [k for k, v in values.items() if isinstance(v, str) and bare_word(items, k)]
        reason = ""
        if unreadable:
            reason = (
                f"{', '.join(unreadable)}: not a Python literal, sd-scripts would fail to read "
                "it — written as a quoted string"
            )
        if values:
            b.set(plan_key, values, given, reason)
        else:
            b.record(given.source, "unset", reason="empty")


def _text_encoder_lrs(state: State, given: Given, value: list[float]) -> None:
    """Two values (SDXL: TE1, TE2; Flux: CLIP-L, T5-XXL) only where the network takes both:
    train_network.py keeps the first value for a network without per-encoder LRs."""
    b = state.builder
    fam = _family(state)
    module = b.plan.get("network", {}).get("module", "networks.lora")
    if len(fam.text_encoders) > 1 and fam.takes_text_encoder_lr_list(module):
        b.set("optimizer.text_encoder_lr", value[:2], given)
        for extra in value[2:]:
            b.notes.append(f"{given.source}: value {extra!r} beyond the second is unused")
        return
    b.set(
        "optimizer.text_encoder_lr",
        value[0],
        given,
        f"{module} takes one text-encoder LR: train_network.py keeps only the first of "
        f"{', '.join(f'{v:g}' for v in value)}",
    )


def _family_options(state: State) -> None:
    """[flux] and the other keys of options only some scripts have (typed, by OPTION_FOR)."""
    b = state.builder
    for plan_key, option in OPTION_FOR.items():
        if plan_key.startswith("flux.") or plan_key in _FAMILY_FLAGS:
            if state.known is not None and option not in state.known:
                continue  # not this script's: carried (and refused) as an extra
            if plan_key in _FAMILY_FLAGS:
                map_flag(state, option, plan_key)
            else:
                map_direct(state, option, plan_key)
    if _family(state).name == "flux":
        for plan_key, value, reason in _FLUX_SD_DEFAULTS:
            if not b.has(plan_key):
                b.fill(plan_key, value, reason)


_FAMILY_FLAGS = (
    "training.cache_text_encoder_outputs",
    "training.cache_text_encoder_outputs_to_disk",
    "training.no_half_vae",
    "training.full_fp16",
    "training.full_bf16",
    "training.fp8_base",
)
# flux_train_network.py's own defaults where kohya-plan's [flux] defaults differ: an import
# trains as the source would have (the check then says what the docs recommend).
_FLUX_SD_DEFAULTS: tuple[tuple[str, Any, str], ...] = (
    ("flux.guidance_scale", 3.5, "not given: flux_train_network.py's default 3.5"),
    ("flux.timestep_sampling", "sigma", "not given: flux_train_network.py's default"),
    ("flux.model_prediction_type", "sigma_scaled", "not given: flux_train_network.py's default"),
)


_DEEPSPEED_OPTIONS = (
    "zero_stage",
    "offload_optimizer_device",
    "offload_optimizer_nvme_path",
    "offload_param_device",
    "offload_param_nvme_path",
)


def _distributed(state: State) -> None:
    """DDP's options and DeepSpeed's (the ZeRO options count only with --deepspeed)."""
    b = state.builder
    map_direct(state, "ddp_timeout", "launch.ddp_timeout")
    map_flag(state, "ddp_gradient_as_bucket_view", "launch.ddp_gradient_as_bucket_view")
    map_flag(state, "ddp_static_graph", "launch.ddp_static_graph")
    taken = take_typed(state, "deepspeed")
    on = False
    if taken is not None:
        given, value = taken
        if value:
            b.set("launch.deepspeed", {}, given)
            on = True
        else:
            b.record(given.source, "unset", reason="false: sd-scripts' default")
    for name in _DEEPSPEED_OPTIONS:
        if on:
            map_direct(state, name, f"launch.deepspeed.{name}")
        elif (dropped := state.take(name)) is not None:
            b.record(
                dropped.source,
                "dropped",
                reason="sd-scripts uses it only with --deepspeed",
                default=dropped.default,
            )


def _training(state: State) -> None:
    b = state.builder
    epochs = map_direct(state, "max_train_epochs", "training.epochs")
    taken = take_typed(state, "max_train_steps")
    if taken is not None:
        given, value = taken
        if epochs is not None:
            b.record(
                given.source,
                "dropped",
                reason=f"max_train_epochs ({epochs}) is set, so sd-scripts ignores max_train_steps",
                default=given.default,
            )
        else:
            b.set("training.max_train_steps", value, given)
    for name in (
        "gradient_accumulation_steps",
        "mixed_precision",
        "save_every_n_epochs",
        "save_every_n_steps",
        "save_last_n_epochs",
        "seed",
        "max_data_loader_n_workers",
    ):
        map_direct(state, name, PLAN_KEY_FOR[name])
    for name in (
        "save_state",
        "cache_latents",
        "cache_latents_to_disk",
        "gradient_checkpointing",
        "persistent_data_loader_workers",
    ):
        taken = take_typed(state, name)
        if taken is not None:
            b.set(PLAN_KEY_FOR[name], bool(taken[1]), taken[0])
    _attention(state)
    _logging(state)


def _attention(state: State) -> None:
    b = state.builder
    on = []
    for name in _ATTENTION_OPTIONS:
        taken = take_typed(state, name)
        if taken is None:
            continue
        given, value = taken
        if value:
            on.append((name, given))
        else:
            b.record(given.source, "unset", reason="false: not used")
    if on:
        winner, given = on[0]
        b.set("training.attention", _ATTENTION_NAME[winner], given)
        for name, other in on[1:]:
            b.record(
                other.source,
                "dropped",
                reason=f"sd-scripts uses {winner} when {name} is also set",
                default=other.default,
            )


def _logging(state: State) -> None:
    b = state.builder
    given = state.take("logging_dir")
    if given is not None:
        b.set(
            "training.tensorboard",
            True,
            given,
            f"kohya-plan writes the logs into each run folder's logs/ (was {given.value!r})",
        )
    with_ = state.take("log_with")
    if with_ is not None and with_.value == "tensorboard":
        b.record(with_.source, "dropped", reason="TensorBoard is what logging_dir gives")
    elif with_ is not None:
        state.options["log_with"] = with_  # an extra (wandb)
        state.used.discard("log_with")


def _sampling(state: State) -> None:
    b = state.builder
    epochs = map_direct(state, "sample_every_n_epochs", "sampling.every_n_epochs")
    taken = take_typed(state, "sample_every_n_steps")
    if taken is not None:
        given, value = taken
        if epochs is not None:
            b.record(
                given.source,
                "dropped",
                reason="sample_every_n_epochs is set, so sd-scripts ignores the steps",
                default=given.default,
            )
        else:
            b.set("sampling.every_n_steps", value, given)
    taken = take_typed(state, "sample_at_first")
    if taken is not None:
        b.set("sampling.at_first", bool(taken[1]), taken[0])
    map_direct(state, "sample_sampler", "sampling.sampler")
    prompts = state.take("sample_prompts")
    if prompts is not None:
        _prompt_file(state, prompts)


def _prompt_file(state: State, given: Given) -> None:
    b = state.builder
    path = resolved(state, given)
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in ("toml", "json"):
        b.record(
            given.source,
            "cannot",
            reason=f"a .{suffix} prompt file: kohya-plan writes one prompt per line (.txt)",
        )
        return
    try:
        text = b.sources.read_text(pure_path(state, path))
    except (OSError, UnicodeDecodeError) as exc:
        b.record(given.source, "cannot", reason=f"prompt file {path} cannot be read ({exc})")
        return
    b.set("sampling.prompts", prompt_lines(text), given, f"read from {path}")


def _output(state: State) -> None:
    map_direct(state, "output_dir", "output.dir")
    map_direct(state, "output_name", "output.name")
    map_direct(state, "save_precision", "output.save_precision")
    map_direct(state, "save_model_as", "output.save_model_as")
    map_direct(state, "training_comment", "output.comment")


def _rest(state: State) -> None:
    for name, given in list(state.options.items()):
        if name in state.used:
            continue
        state.used.add(name)
        if name in ("config_file", "dataset_config"):
            state.builder.record(given.source, "dropped", reason="read: its values are mapped")
        elif name == "output_config":
            state.builder.record(
                given.source,
                "cannot",
                reason="makes sd-scripts write a config and exit without training",
            )
        elif state.known is not None and name not in state.known:
            carry_extra(state, name, given)  # says it is not this script's option
        elif name in PLAN_KEY_FOR or name in _DERIVED:
            state.builder.record(given.source, "cannot", reason="not representable")
        else:
            carry_extra(state, name, given)


_LAUNCH_KEYS = {
    "num_processes": "launch.num_processes",
    "num_machines": "launch.num_machines",
    "num_cpu_threads_per_process": "launch.num_cpu_threads_per_process",
    "gpu_ids": "launch.gpu_ids",
    "main_process_port": "launch.main_process_port",
    "machine_rank": "launch.machine_rank",
    "main_process_ip": "launch.main_process_ip",
    "rdzv_backend": "launch.rdzv_backend",
    "same_network": "launch.same_network",
}


def _launch(state: State, launch: Mapping[str, Given]) -> None:
    b = state.builder
    for name, given in launch.items():
        value = given.value
        if name in _LAUNCH_KEYS:
            b.set(_LAUNCH_KEYS[name], value, given)
        elif name == "rdzv_conf" and str(value).startswith("timeout="):
            seconds = str(value).removeprefix("timeout=")
            if seconds.isdigit():
                b.set("launch.rdzv_timeout", int(seconds), given)
            else:
                b.record(given.source, "cannot", reason=f"timeout {seconds!r} is not seconds")
        elif name == "config_file":
            b.record(
                given.source,
                "dropped",
                reason="kohya-plan writes the run's own accelerate config and passes every flag",
                default=given.default,
            )
        elif name == "mixed_precision":
            b.record(
                given.source,
                "dropped",
                reason="sd-scripts hands its own --mixed_precision "
                "to accelerate, which wins over the launcher's",
                default=given.default,
            )
        elif name == "multi_gpu":
            b.record(
                given.source,
                "dropped",
                reason="kohya-plan adds --multi_gpu itself when launch.num_processes > 1",
                default=given.default,
            )
        elif name == "dynamo_backend" and str(value).lower() == "no":
            b.record(
                given.source,
                "dropped",
                reason="kohya-plan always launches with --dynamo_backend no",
                default=given.default,
            )
        else:
            b.record(
                given.source,
                "cannot",
                reason="kohya-plan passes accelerate only the flags its [launch] keys "
                "stand for (processes, machines, ranks, rendezvous, GPUs, threads)",
                default=given.default,
            )


# Plan keys whose kohya-plan default differs from what sd-scripts does when the option is
# not given: such a plan key is set to sd-scripts' behaviour, so the import trains the same.
_SD_DEFAULTS: tuple[tuple[str, Any, str], ...] = (
    ("dataset.caption_extension", ".caption", "sd-scripts' default caption extension"),
    ("dataset.enable_bucket", False, "sd-scripts buckets only with enable_bucket"),
    ("training.mixed_precision", "no", "sd-scripts' default: full precision"),
    ("training.cache_latents", False, "sd-scripts caches latents only with cache_latents"),
    ("training.attention", "none", "no xformers/sdpa/mem_eff_attn given"),
    ("training.save_every_n_epochs", 0, "no save_every_n_epochs: only the final file is saved"),
    ("training.tensorboard", False, "the source writes no logs (set true for TensorBoard)"),
    ("optimizer.type", "AdamW", "sd-scripts' default optimizer"),
    ("optimizer.learning_rate", 2e-6, "sd-scripts' default learning rate"),
    ("optimizer.scheduler", "constant", "sd-scripts' default scheduler"),
    ("network.alpha", 1.0, "sd-scripts' default network_alpha"),
    ("output.save_precision", "float", "no save_precision: sd-scripts saves fp32"),
    ("output.name", "last", "no output_name: sd-scripts names the file last.safetensors"),
)


def _implied_defaults(state: State) -> None:
    b = state.builder
    for plan_key, value, reason in _SD_DEFAULTS:
        if not b.has(plan_key):
            b.fill(plan_key, value, reason)
    if not b.has("network.dim"):
        module = b.plan.get("network", {}).get("module", "networks.lora")
        if module == "networks.lora":
            b.fill("network.dim", 4, "no network_dim: networks.lora uses 4")
    if not b.has("training.epochs") and not b.has("training.max_train_steps"):
        b.fill(
            "training.max_train_steps",
            1600,
            "no max_train_epochs or max_train_steps: sd-scripts silently runs 1600 steps — "
            "set training.epochs instead",
        )
    if not b.has("output.dir"):
        b.fill("output.dir", "output", "no output_dir: a folder beside the plan")
    if not b.has("training.seed"):
        b.notes.append("no seed: sd-scripts picks a random one each run; the plan fixes 42")
    sampling = b.plan.get("sampling", {})
    if sampling.get("prompts") and not b.has("sampling.sampler"):
        b.fill("sampling.sampler", "ddim", "no sample_sampler: sd-scripts' default")
    if not b.has("model.base"):
        b.fill(
            "model.base",
            "CHANGE-ME-base-model.safetensors",
            "the source names no base model — give a checkpoint file or Hub id",
            placeholder=True,
        )
    fam = FAMILIES.get(b.plan.get("model", {}).get("family", ""))
    for spec in fam.model_files if fam else ():
        if not b.has(f"model.{spec.key}"):
            b.fill(
                f"model.{spec.key}",
                f"CHANGE-ME-{spec.key}.safetensors",
                f"{fam.label if fam else ''} needs {spec.what} and the source names none",
                placeholder=True,
            )
    dataset = b.plan.get("dataset", {})
    if not dataset.get("train_dir") and not any(
        not s.get("is_reg") for s in dataset.get("subsets", ())
    ):
        b.fill(
            "dataset.train_dir",
            "CHANGE-ME-images",
            "the source names no training images — the parent of your N_name folders",
            placeholder=True,
        )
