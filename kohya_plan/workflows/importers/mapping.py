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

import ast
import difflib
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from kohya_plan.errors import PlanError, Problem

# The renderer's table, imported here only (it moves to kohya_plan/options.py).
from kohya_plan.render.config_toml import OPTION_FOR
from kohya_plan.workflows.importers.report import Filled, ImportResult, Kind, Record
from kohya_plan.workflows.importers.sources import Sources, resolve_path

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import PurePath

    from kohya_plan.options import Option

SCRIPT_FAMILY: dict[str, str] = {
    "train_network.py": "sd15",
    "sdxl_train_network.py": "sdxl",
    "flux_train_network.py": "flux",
}
# Scripts of sd-scripts that train something other than a LoRA: refused by name.
OTHER_SCRIPTS: dict[str, str] = {
    "train_db.py": "DreamBooth",
    "fine_tune.py": "fine-tuning",
    "sdxl_train.py": "SDXL fine-tuning",
    "flux_train.py": "Flux fine-tuning",
    "sd3_train.py": "SD3 fine-tuning",
    "train_textual_inversion.py": "textual inversion",
    "sdxl_train_textual_inversion.py": "SDXL textual inversion",
    "train_textual_inversion_XTI.py": "textual inversion (XTI)",
    "sd3_train_network.py": "SD3 LoRA",
    "lumina_train_network.py": "Lumina LoRA",
    "anima_train_network.py": "Anima LoRA",
    "hunyuan_image_train_network.py": "HunyuanImage LoRA",
    "train_control_net.py": "ControlNet",
    "sdxl_train_control_net.py": "SDXL ControlNet",
}
# sd-scripts option → plan key (the renderer's table inverted). A few options are derived by
# the renderer rather than copied; `build_plan` maps those itself.
PLAN_KEY_FOR: dict[str, str] = {option: key for key, option in OPTION_FOR.items()}
_DERIVED = {"sdpa", "logging_dir", "sample_prompts", "resolution"}
# The model files of the Flux family (plan keys arriving with model.family = "flux").
FAMILY_FILES: dict[str, str] = {"ae": "model.ae", "clip_l": "model.clip_l", "t5xxl": "model.t5xxl"}
_PATH_KEYS = {
    "model.tokenizer_cache_dir",
    "output.dir",
    "network.weights",
    *FAMILY_FILES.values(),
}
# Extra options that name files: relative paths are resolved like the plan's own paths.
_PATH_OPTIONS = {"resume", "log_tracker_config", "base_weights", "in_json", "conditioning_data_dir"}

# Dataset options: plan keys they become, and where sd-scripts reads them.
_DATASET_LEVEL = {
    "resolution": "dataset.resolution",
    "batch_size": "training.batch_size",
    "enable_bucket": "dataset.enable_bucket",
    "min_bucket_reso": "dataset.min_bucket_reso",
    "max_bucket_reso": "dataset.max_bucket_reso",
    "bucket_reso_steps": "dataset.bucket_reso_steps",
    "bucket_no_upscale": "dataset.bucket_no_upscale",
}
# Subset options the plan models both for all subsets ([dataset]) and per subset.
_SUBSET_LEVEL = (
    "caption_extension",
    "keep_tokens",
    "shuffle_caption",
    "flip_aug",
    "color_aug",
    "random_crop",
    "caption_prefix",
    "caption_suffix",
)
# Modelled for all subsets only.
_ALL_SUBSETS_ONLY = ("caption_dropout_rate",)
# argparse name → dataset config name (sd-scripts' ARGPARSE_OPTNAME_TO_CONFIG_OPTNAME).
_ARGPARSE_TO_CONFIG = {"train_batch_size": "batch_size", "dataset_repeats": "num_repeats"}
_SUBSET_OWN = ("image_dir", "num_repeats", "is_reg", "class_tokens")
# Dataset keys sd-scripts knows besides those (carried as sd-scripts options where the parser
# has one of that name: sd-scripts falls back to the command-line value for every subset).
_DATASET_OTHER = (
    "keep_tokens_separator",
    "secondary_separator",
    "caption_separator",
    "enable_wildcard",
    "face_crop_aug_range",
    "token_warmup_min",
    "token_warmup_step",
    "caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate",
    "custom_attributes",
    "resize_interpolation",
    "network_multiplier",
    "validation_seed",
    "validation_split",
    "cache_info",
    "alpha_mask",
)
# Every key a dataset config may hold (sd-scripts' ConfigSanitizer); others stop sd-scripts.
_DATASET_KEYS = frozenset(
    {*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY, *_SUBSET_OWN, *_DATASET_OTHER}
    | {"subsets", "metadata_file", "conditioning_data_dir"}
)
_ATTENTION_OPTIONS = ("mem_eff_attn", "xformers", "sdpa")  # sd-scripts' precedence
_ATTENTION_NAME = {"mem_eff_attn": "mem_eff", "xformers": "xformers", "sdpa": "sdpa"}


@dataclass(frozen=True, slots=True)
class Given:
    """One value as sd-scripts would receive it, and the source key it came from.

    `parts` names the source key behind each `key=value` of a list option (the kohya_ss GUI
    builds `network_args` from many fields); `default` marks the source tool's own default.
    """

    value: Any
    source: str
    default: bool = False
    parts: Mapping[str, str] | None = None


@dataclass
class DatasetBlock:
    """One `[[datasets]]` of a dataset config."""

    where: str
    params: dict[str, Given]
    subsets: list[dict[str, Given]]


@dataclass
class DatasetInput:
    """A dataset config (`--dataset_config`), its values attributed to their keys."""

    general: dict[str, Given]
    datasets: list[DatasetBlock]
    base_dir: PurePath
    """Folder its relative image_dir paths are taken against."""


@dataclass
class Builder:
    """Plan data being built, and one record per source key (the first one wins)."""

    format: str
    sources: Sources
    plan: dict[str, Any] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    filled: list[Filled] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_steps: int | None = None

    def record(
        self,
        source: str,
        kind: Kind,
        plan_key: str | None = None,
        value: Any = None,
        reason: str = "",
        *,
        default: bool = False,
    ) -> None:
        """What became of `source` (kept only if the key has no record yet)."""
        if source not in self.records:
            self.records[source] = Record(source, kind, plan_key, value, reason, default)

    def set(self, plan_key: str, value: Any, given: Given | None, reason: str = "") -> None:
        """Set a plan key; the source key behind it (if any) is recorded as mapped."""
        put(self.plan, plan_key, value)
        if given is not None:
            self.record(given.source, "mapped", plan_key, value, reason, default=given.default)

    def has(self, plan_key: str) -> bool:
        """Whether the plan key is set already."""
        node: Any = self.plan
        for part in plan_key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def fill(self, plan_key: str, value: Any, reason: str, *, placeholder: bool = False) -> None:
        """A plan key no source key gives: a placeholder to change, or sd-scripts' default."""
        put(self.plan, plan_key, value)
        self.filled.append(Filled(plan_key, value, reason, placeholder))

    def result(self, script: str) -> ImportResult:
        """The finished import."""
        return ImportResult(
            format=self.format,
            script=script,
            plan=self.plan,
            records=tuple(self.records.values()),
            filled=tuple(self.filled),
            notes=tuple(self.notes),
            source_steps=self.source_steps,
        )


def put(data: dict[str, Any], dotted: str, value: Any) -> None:
    """`put(d, "a.b", v)` sets `d["a"]["b"] = v`, creating tables on the way."""
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def refuse(field_name: str, message: str, fix: str = "") -> NoReturn:
    """Stop the import with an error naming the source key (exit 2, nothing written)."""
    raise PlanError([Problem(field_name, message, fix, id="import")]) from None


# --- options and values ---------------------------------------------------------------------


def script_options(script: str) -> dict[str, Option] | None:
    """The snapshot of `script`'s parser, or None while kohya-plan has none for it."""
    from kohya_plan.options import options_for

    try:
        return options_for(script)
    except KeyError:
        return None


def known_options(script: str) -> dict[str, Option]:
    """The options to type values with: the script's own, else train_network.py's (shared)."""
    from kohya_plan.options import options_for

    return script_options(script) or options_for("train_network.py")


class CannotCarry(Exception):
    """A value sd-scripts could not use as given (the message says why)."""


def typed(option: Option | None, value: Any) -> tuple[Any, str]:
    """The value with the option's type, and a note when the source wrote it otherwise."""
    if option is None:
        return value, ""
    if option.is_list:
        if isinstance(value, list):
            items = [typed_scalar(option, item) for item in value]
            return [v for v, _ in items], next((n for _, n in items if n), "")
        item, note = typed_scalar(option, value)
        # sd-scripts accepts one text-encoder LR (backward compatibility); other list options
        # would be iterated character by character.
        return [item], note or (
            "" if option.dest == "text_encoder_lr" else "one value given for a list option"
        )
    if isinstance(value, list):
        msg = f"{option.dest} takes one value, got a list {value!r}"
        raise CannotCarry(msg)
    return typed_scalar(option, value)


def typed_scalar(option: Option, value: Any) -> tuple[Any, str]:
    """One value converted losslessly to what argparse would have made of it."""
    kind = "bool" if option.action in ("store_true", "store_false") else option.type
    text_note = f"written as text {value!r}; sd-scripts reads config values without conversion"
    if kind == "bool":
        if isinstance(value, bool):
            return value, ""
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", text_note
        if isinstance(value, int) and value in (0, 1):
            return bool(value), f"written as {value}"
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, ""
        if isinstance(value, float) and value.is_integer():
            return int(value), f"written as {value!r}"
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value), text_note
    elif kind in ("float", "int_or_float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if kind == "float" or not isinstance(value, float) or value < 1:
                return value, ""
            return (int(value), f"written as {value!r}") if value.is_integer() else (value, "")
        if isinstance(value, str):
            try:
                number = float(value.strip().removesuffix("%"))
            except ValueError:
                pass
            else:
                if value.strip().endswith("%") and kind == "int_or_float":
                    return number / 100, text_note
                if math.isfinite(number):
                    if kind == "int_or_float" and number >= 1 and number.is_integer():
                        return int(number), text_note
                    return number, text_note
    elif isinstance(value, str):
        return value, ""
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value), f"written as the number {value!r}"
    msg = f"{option.dest} takes {_expected(kind)}, got {value!r}"
    raise CannotCarry(msg)


def _expected(kind: str) -> str:
    return {
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
        "int_or_float": "a step count or a ratio",
    }.get(kind, "text")


def parse_key_values(items: list[str], *, literal: bool) -> tuple[dict[str, Any], list[str]]:
    """`["k=v", ...]` → `{k: v}` as sd-scripts reads them (and what could not be read).

    Optimizer and scheduler arguments go through `ast.literal_eval` in sd-scripts ("0.9,0.99"
    is a tuple); network arguments stay strings, so they become numbers here only where the
    number prints back as the same text (the renderer writes `str(value)`).
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or "=" in text:
            problems.append(f"{item!r} is not key=value (sd-scripts splits each on '=')")
            continue
        values[key.strip()] = _literal(text) if literal else _network_value(text)
    return values, problems


def _literal(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # sd-scripts would fail on it; as a string the renderer quotes it
    if isinstance(value, tuple):
        return list(value)
    return value


def _network_value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        if str(number) == text:
            return number
    return text


def split_resolution(value: Any) -> int | list[int] | None:
    """sd-scripts' resolution ("512", "768,512", 512 or [768, 512]) as the plan writes it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return [int(value[0]), int(value[1])] if value[0] != value[1] else [int(value[0])] * 2
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if all(re.fullmatch(r"\d+", p) for p in parts) and len(parts) in (1, 2):
            numbers = [int(p) for p in parts]
            return numbers[0] if len(numbers) == 1 else numbers
    return None


# --- the mapping ----------------------------------------------------------------------------


@dataclass
class _State:
    builder: Builder
    script: str
    options: dict[str, Given]
    known: dict[str, Option] | None
    types: dict[str, Option]
    used: set[str] = field(default_factory=set)

    def take(self, name: str) -> Given | None:
        """The option, marked as handled."""
        given = self.options.get(name)
        if given is not None:
            self.used.add(name)
        return given


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
    state = _State(builder, script, given_options, script_options(script), known_options(script))
    name = SCRIPT_FAMILY.get(script, "sd15")
    if name != "sd15" or family is not None:
        builder.set("model.family", name, family)
    else:
        builder.fill("model.family", name, f"{script}: SD1.x/2.x")
    _model(state)
    _network(state)
    _optimizer(state)
    _training(state)
    _sampling(state)
    _output(state)
    _dataset(state, dataset)
    _rest(state)
    _launch(state, launch or {})
    _implied_defaults(state)


def _path(state: _State, given: Given) -> str:
    resolved = resolve_path(str(given.value), state.builder.sources)
    if resolved.note:
        state.builder.notes.append(f"{given.source}: {resolved.note}")
    return resolved.path


def _model_ref(state: _State, given: Given) -> str:
    """A local file or folder (made absolute) or a Hub repo id (kept)."""
    from kohya_plan.hub import is_hub_ref

    text = str(given.value).strip()
    resolved = resolve_path(text, state.builder.sources)
    if state.builder.sources.exists(_pure(state, resolved.path)) or not is_hub_ref(text):
        return resolved.path
    return text


def _pure(state: _State, text: str) -> PurePath:
    return type(state.builder.sources.base_dir)(text)


def _value(state: _State, name: str) -> tuple[Given, Any] | None:
    """Take an option and type it; a value sd-scripts cannot use is recorded and skipped."""
    given = state.take(name)
    if given is None:
        return None
    try:
        value, note = typed(state.types.get(name), given.value)
    except CannotCarry as exc:
        state.builder.record(given.source, "cannot", reason=str(exc), default=given.default)
        return None
    if note:
        state.builder.notes.append(f"{given.source}: {note}")
    return given, value


def _direct(state: _State, name: str, plan_key: str, reason: str = "") -> Any:
    taken = _value(state, name)
    if taken is None:
        return None
    given, value = taken
    if plan_key in _PATH_KEYS and isinstance(value, str):
        value = _path(state, Given(value, given.source))
    state.builder.set(plan_key, value, given, reason)
    return value


def _model(state: _State) -> None:
    b = state.builder
    for name, plan_key in (("pretrained_model_name_or_path", "model.base"), ("vae", "model.vae")):
        taken = _value(state, name)
        if taken is not None:
            given, value = taken
            b.set(plan_key, _model_ref(state, Given(value, given.source)), given)
    _direct(state, "clip_skip", "model.clip_skip")
    _direct(state, "tokenizer_cache_dir", "model.tokenizer_cache_dir")
    _flag(state, "v_parameterization", "model.v_parameterization")
    for name, plan_key in FAMILY_FILES.items():
        _direct(state, name, plan_key)


def _flag(state: _State, name: str, plan_key: str) -> None:
    taken = _value(state, name)
    if taken is None:
        return
    given, value = taken
    if value:
        state.builder.set(plan_key, True, given)
    else:
        state.builder.record(given.source, "unset", reason="false: sd-scripts' default")


def _network(state: _State) -> None:
    b = state.builder
    _direct(state, "network_module", "network.module")
    _direct(state, "network_dim", "network.dim")
    _direct(state, "network_alpha", "network.alpha")
    _direct(state, "network_dropout", "network.dropout")
    _direct(state, "network_weights", "network.weights")
    _flag(state, "network_train_unet_only", "network.train_unet_only")
    _flag(state, "network_train_text_encoder_only", "network.train_text_encoder_only")
    taken = _value(state, "network_args")
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


def _optimizer(state: _State) -> None:
    b = state.builder
    _direct(state, "optimizer_type", "optimizer.type")
    _direct(state, "learning_rate", "optimizer.learning_rate")
    _direct(state, "unet_lr", "optimizer.unet_lr")
    taken = _value(state, "text_encoder_lr")
    if taken is not None:
        given, value = taken
        if not value:
            b.record(given.source, "unset", reason="an empty list: no text-encoder LR given")
        elif len(set(value)) == 1:
            b.set("optimizer.text_encoder_lr", value[0], given)
        else:
            # Two text encoders (SDXL: TE1, TE2; Flux: CLIP-L, T5-XXL).
            b.set("optimizer.text_encoder_lr", value[:2], given)
            for extra in value[2:]:
                b.notes.append(f"{given.source}: value {extra!r} beyond the second is unused")
    _direct(state, "lr_scheduler", "optimizer.scheduler")
    _direct(state, "lr_scheduler_num_cycles", "optimizer.scheduler_num_cycles")
    _direct(state, "lr_scheduler_power", "optimizer.scheduler_power")
    _direct(state, "lr_scheduler_min_lr_ratio", "optimizer.min_lr_ratio")
    taken = _value(state, "lr_warmup_steps")
    if taken is not None:
        given, value = taken
        if isinstance(value, float) and value >= 1:
            b.record(
                given.source, "cannot", reason=f"{value!r} is a ratio of the whole run or more"
            )
        else:
            b.set("optimizer.warmup_steps", value, given)
    _direct(state, "max_grad_norm", "optimizer.max_grad_norm")
    for name, plan_key in (
        ("optimizer_args", "optimizer.args"),
        ("lr_scheduler_args", "optimizer.scheduler_args"),
    ):
        taken = _value(state, name)
        if taken is None:
            continue
        given, items = taken
        values, problems = parse_key_values(items, literal=True)
        for text in problems:
            b.notes.append(f"{given.source}: {text} — left out")
        unreadable = [k for k, v in values.items() if isinstance(v, str) and _bare_word(items, k)]
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


def _bare_word(items: list[str], key: str) -> bool:
    for item in items:
        k, _, text = str(item).partition("=")
        if k.strip() == key:
            try:
                ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return True
    return False


def _training(state: _State) -> None:
    b = state.builder
    epochs = _direct(state, "max_train_epochs", "training.epochs")
    taken = _value(state, "max_train_steps")
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
        _direct(state, name, PLAN_KEY_FOR[name])
    for name in (
        "save_state",
        "cache_latents",
        "cache_latents_to_disk",
        "gradient_checkpointing",
        "persistent_data_loader_workers",
    ):
        taken = _value(state, name)
        if taken is not None:
            b.set(PLAN_KEY_FOR[name], bool(taken[1]), taken[0])
    _attention(state)
    _logging(state)


def _attention(state: _State) -> None:
    b = state.builder
    on = []
    for name in _ATTENTION_OPTIONS:
        taken = _value(state, name)
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


def _logging(state: _State) -> None:
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


def _sampling(state: _State) -> None:
    b = state.builder
    epochs = _direct(state, "sample_every_n_epochs", "sampling.every_n_epochs")
    taken = _value(state, "sample_every_n_steps")
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
    taken = _value(state, "sample_at_first")
    if taken is not None:
        b.set("sampling.at_first", bool(taken[1]), taken[0])
    _direct(state, "sample_sampler", "sampling.sampler")
    prompts = state.take("sample_prompts")
    if prompts is not None:
        _prompt_file(state, prompts)


def _prompt_file(state: _State, given: Given) -> None:
    b = state.builder
    path = _path(state, given)
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in ("toml", "json"):
        b.record(
            given.source,
            "cannot",
            reason=f"a .{suffix} prompt file: kohya-plan writes one prompt per line (.txt)",
        )
        return
    try:
        text = b.sources.read_text(_pure(state, path))
    except (OSError, UnicodeDecodeError) as exc:
        b.record(given.source, "cannot", reason=f"prompt file {path} cannot be read ({exc})")
        return
    b.set("sampling.prompts", prompt_lines(text), given, f"read from {path}")


def prompt_lines(text: str) -> list[str]:
    """Prompt lines as sd-scripts reads a .txt file (blank lines and # comments skipped)."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _output(state: _State) -> None:
    _direct(state, "output_dir", "output.dir")
    _direct(state, "output_name", "output.name")
    _direct(state, "save_precision", "output.save_precision")
    _direct(state, "save_model_as", "output.save_model_as")
    _direct(state, "training_comment", "output.comment")


# --- the dataset ----------------------------------------------------------------------------


def _dataset(state: _State, dataset: DatasetInput | None) -> None:
    b = state.builder
    argparse_values = {
        _ARGPARSE_TO_CONFIG.get(name, name): given
        for name, given in state.options.items()
        if name not in state.used
    }
    if dataset is None:
        _folders(state)
        _dataset_values(
            state,
            {
                k: argparse_values[k]
                for k in (*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY)
                if k in argparse_values
            },
        )
        return
    for name in ("train_data_dir", "reg_data_dir", "in_json"):
        given = state.take(name)
        if given is not None:
            b.record(
                given.source,
                "dropped",
                reason="sd-scripts ignores it when a dataset config is given",
                default=given.default,
            )
    if not dataset.datasets:
        refuse("datasets", "the dataset config has no [[datasets]]", "add one")
    first = dataset.datasets[0]
    level: dict[str, Given] = {}
    for key in (*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY, *_DATASET_OTHER):
        chain = [g for g in (first.params.get(key), dataset.general.get(key)) if g is not None]
        argparse_given = argparse_values.get(key)
        if argparse_given is not None:
            chain.append(argparse_given)
        if not chain:
            continue
        level[key] = chain[0]
        for other in chain[1:]:
            b.record(
                other.source,
                "dropped",
                reason=f"overridden by {chain[0].source} ({chain[0].value!r})",
                default=other.default,
            )
            _mark_used(state, other)
    _dataset_values(state, {k: v for k, v in level.items() if k not in _DATASET_OTHER})
    subsets = [(first.where, s) for s in first.subsets]
    for block in dataset.datasets[1:]:
        subsets += _merge_block(state, dataset, first, block)
    others = {k: v for k, v in level.items() if k in _DATASET_OTHER}
    _unknown_dataset_keys(state, dataset)
    _subsets(state, dataset, subsets, others)


def _mark_used(state: _State, given: Given) -> None:
    for name, item in state.options.items():
        if item is given:
            state.used.add(name)


def _folders(state: _State) -> None:
    b = state.builder
    for name, plan_key in (
        ("train_data_dir", "dataset.train_dir"),
        ("reg_data_dir", "dataset.reg_dir"),
    ):
        given = state.take(name)
        if given is not None:
            b.set(plan_key, _path(state, given), given, "the parent of N_name folders")
    given = state.take("in_json")
    if given is not None:
        refuse(
            given.source,
            "is a fine-tuning metadata file",
            "kohya-plan plans LoRA runs "
            "from image folders; use a dataset config with image_dir subsets",
        )


def _dataset_values(state: _State, level: Mapping[str, Given]) -> None:
    """Dataset-wide values (already chosen by sd-scripts' precedence) onto plan keys."""
    b = state.builder
    types = state.types
    for key, given in level.items():
        _mark_used(state, given)
        if key == "resolution":
            value = split_resolution(given.value)
            if value is None:
                b.record(given.source, "cannot", reason=f"{given.value!r} is not W or W,H")
            else:
                b.set("dataset.resolution", value, given)
            continue
        option = types.get("train_batch_size" if key == "batch_size" else key)
        try:
            typed_value, note = typed(option, given.value)
        except CannotCarry as exc:
            b.record(given.source, "cannot", reason=str(exc), default=given.default)
            continue
        if note:
            b.notes.append(f"{given.source}: {note}")
        plan_key = _DATASET_LEVEL.get(key, f"dataset.{key}")
        if key == "caption_dropout_rate":
            typed_value = float(typed_value)
        b.set(plan_key, typed_value, given)


def _merge_block(
    state: _State, dataset: DatasetInput, first: DatasetBlock, block: DatasetBlock
) -> list[tuple[str, dict[str, Given]]]:
    """Subsets of a further [[datasets]], if it trains exactly like the first one."""
    keys = (*_DATASET_LEVEL, *_SUBSET_LEVEL, *_ALL_SUBSETS_ONLY, *_DATASET_OTHER)

    def effective(item: DatasetBlock, key: str) -> Any:
        given = item.params.get(key) or dataset.general.get(key)
        return None if given is None else given.value

    differs = [k for k in keys if effective(block, k) != effective(first, k)]
    if not differs:
        for given in block.params.values():
            state.builder.record(given.source, "dropped", reason=f"the same as {first.where}")
        return [(block.where, s) for s in block.subsets]
    what = ", ".join(f"{k} = {effective(block, k)!r}" for k in differs)
    reason = (
        f"a second [[datasets]] with {what} (the first has "
        + ", ".join(f"{effective(first, k)!r}" for k in differs)
        + "): kohya-plan renders one dataset, so its subsets are not trained"
    )
    for given in block.params.values():
        state.builder.record(given.source, "cannot", reason=reason)
    for subset in block.subsets:
        for given in subset.values():
            state.builder.record(given.source, "cannot", reason=f"in {block.where}: {reason}")
    return []


def _subsets(
    state: _State,
    dataset: DatasetInput,
    subsets: list[tuple[str, dict[str, Given]]],
    others: dict[str, Given],
) -> None:
    b = state.builder
    rows: list[dict[str, Any]] = []
    for index, (_, subset) in enumerate(subsets):
        where = f"dataset.subsets[{index}]"
        for marker, what in (
            ("metadata_file", "a fine-tuning"),
            ("conditioning_data_dir", "a ControlNet"),
        ):
            if marker in subset:
                refuse(
                    subset[marker].source,
                    f"makes this {what} subset",
                    "kohya-plan plans LoRA subsets of images with captions",
                )
        row: dict[str, Any] = {}
        image_dir = subset.get("image_dir")
        if image_dir is None:
            refuse(f"{where}.image_dir", "is missing (sd-scripts requires it)", "add image_dir")
        resolved = resolve_path(str(image_dir.value), b.sources, dataset.base_dir)
        if resolved.note:
            b.notes.append(f"{image_dir.source}: {resolved.note}")
        row["image_dir"] = resolved.path
        b.record(image_dir.source, "mapped", f"{where}.image_dir", resolved.path)
        for key, plan_name in (
            ("num_repeats", "repeats"),
            ("is_reg", "is_reg"),
            ("class_tokens", "class_tokens"),
            *((k, k) for k in _SUBSET_LEVEL),
        ):
            given = subset.get(key)
            if given is None:
                continue
            option = state.types.get(key)
            try:
                value, _ = typed(option, given.value) if option else (given.value, "")
            except CannotCarry as exc:
                b.record(given.source, "cannot", reason=str(exc))
                continue
            row[plan_name] = value
            b.record(given.source, "mapped", f"{where}.{plan_name}", value)
        rows.append(row)
    b.set("dataset.subsets", rows, None)
    # Per-subset values the plan models only for all subsets, and options it does not model.
    for key in (*_ALL_SUBSETS_ONLY, *_DATASET_OTHER):
        per_subset = [(s.get(key), where) for where, s in subsets]
        given_here = [g for g, _ in per_subset if g is not None]
        if not given_here:
            if key in others and not _is_option(state, others[key]):
                _carry(state, key, others[key])  # an option of the config is mapped in order
            continue
        fallback = others.get(key)
        values = {
            repr(g.value if g is not None else (fallback.value if fallback else None))
            for g, _ in per_subset
        }
        if len(values) == 1:
            first = given_here[0]
            if key in _ALL_SUBSETS_ONLY:
                b.set(f"dataset.{key}", float(first.value), first, "the same in every subset")
            else:
                _carry(state, key, first, "the same in every subset")
            for other in given_here[1:]:
                b.record(other.source, "dropped", reason=f"the same as {first.source}")
            if fallback is not None:
                b.record(fallback.source, "dropped", reason=f"the same as {first.source}")
        else:
            for given in given_here:
                b.record(
                    given.source,
                    "cannot",
                    reason=f"{key} differs between subsets; kohya-plan sets it for all subsets",
                )
            if fallback is not None:
                b.record(fallback.source, "cannot", reason=f"{key} differs between subsets")


def _is_option(state: _State, given: Given) -> bool:
    return any(item is given for item in state.options.values())


def _unknown_dataset_keys(state: _State, dataset: DatasetInput) -> None:
    """Keys sd-scripts' dataset-config schema does not have: it would stop at start."""
    items = [*dataset.general.values()]
    for block in dataset.datasets:
        items += block.params.values()
        for subset in block.subsets:
            items += subset.values()
    for given in items:
        key = given.source.rsplit(".", 1)[-1]
        if key not in _DATASET_KEYS:
            state.builder.record(
                given.source,
                "cannot",
                reason="not a dataset-config key: sd-scripts would stop ('extra keys not allowed')",
            )


def _carry(state: _State, name: str, given: Given, reason: str = "") -> None:
    """A dataset value as the sd-scripts option of the same name (the fallback for subsets)."""
    config_to_argparse = {v: k for k, v in _ARGPARSE_TO_CONFIG.items()}
    option = config_to_argparse.get(name, name)
    _mark_used(state, given)
    if state.known is not None and option not in state.known:
        state.builder.record(
            given.source,
            "cannot",
            reason=f"a dataset-config key the plan does "
            f"not model, and {state.script} has no option {option} to carry it",
        )
        return
    _extra(state, option, given, reason)


# --- everything else ------------------------------------------------------------------------


def _rest(state: _State) -> None:
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
        elif name in PLAN_KEY_FOR or name in _DERIVED:
            state.builder.record(given.source, "cannot", reason="not representable")
        else:
            _extra(state, name, given)


def _extra(state: _State, name: str, given: Given, reason: str = "") -> None:
    """An sd-scripts option the plan does not model: into launch.extra, checked."""
    from kohya_plan.options import value_problem

    b = state.builder
    option = (state.known or state.types).get(name)
    if option is None and state.known is not None:
        close = difflib.get_close_matches(name, state.known, n=1, cutoff=0.7)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        b.record(
            given.source,
            "cannot",
            reason=f"not a {state.script} option — sd-scripts ignores it silently{hint}",
            default=given.default,
        )
        return
    if option is None:
        b.notes.append(
            f"{given.source}: not checked — kohya-plan has no option snapshot of {state.script} yet"
        )
        put(b.plan, f"launch.extra.{name}", given.value)
        b.record(
            given.source,
            "extra",
            f"launch.extra.{name}",
            given.value,
            reason,
            default=given.default,
        )
        return
    try:
        value, note = typed(option, given.value)
    except CannotCarry as exc:
        b.record(given.source, "cannot", reason=str(exc), default=given.default)
        return
    if note:
        b.notes.append(f"{given.source}: {note}")
    if name in _PATH_OPTIONS:
        value = (
            [_path(state, Given(v, given.source)) for v in value]
            if isinstance(value, list)
            else _path(state, Given(value, given.source))
        )
    if (name, value) in (("max_token_length", 75), ("max_timestep", 1000)):
        b.record(
            given.source,
            "dropped",
            reason=f"{value} is what sd-scripts uses when it is not set",
            default=given.default,
        )
        return
    if value == option.default or (option.action == "store_true" and value is False):
        b.record(
            given.source,
            "dropped",
            reason=f"{value!r} is sd-scripts' default",
            default=given.default,
        )
        return
    trouble = value_problem(option, value)
    if trouble is not None:
        b.record(given.source, "cannot", reason=trouble, default=given.default)
        return
    put(b.plan, f"launch.extra.{name}", value)
    b.record(given.source, "extra", f"launch.extra.{name}", value, reason, default=given.default)


_LAUNCH_KEYS = {
    "num_processes": "launch.num_processes",
    "num_machines": "launch.num_machines",
    "num_cpu_threads_per_process": "launch.num_cpu_threads_per_process",
    "gpu_ids": "launch.gpu_ids",
    "main_process_port": "launch.main_process_port",
}


def _launch(state: _State, launch: Mapping[str, Given]) -> None:
    b = state.builder
    for name, given in launch.items():
        value = given.value
        if name in _LAUNCH_KEYS:
            b.set(_LAUNCH_KEYS[name], value, given)
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
                reason="kohya-plan passes only num_processes, "
                "num_machines, gpu_ids, main_process_port and num_cpu_threads_per_process "
                "to accelerate",
                default=given.default,
            )


# --- what sd-scripts does when nothing is said ----------------------------------------------

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


def _implied_defaults(state: _State) -> None:
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
    if b.plan.get("model", {}).get("family") == "flux":
        for plan_key in FAMILY_FILES.values():
            if not b.has(plan_key):
                b.fill(
                    plan_key,
                    f"CHANGE-ME-{plan_key.split('.')[1]}.safetensors",
                    "Flux needs this model file and the source names none",
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
