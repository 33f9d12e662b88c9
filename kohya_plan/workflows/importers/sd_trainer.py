"""SD-Trainer (Akegarasu/lora-scripts) TOML: what its web UI downloads or autosaves.

The file is flat sd-scripts keys (older ones use sd-scripts' own sections, which sd-scripts
flattens) plus a few keys of the UI itself: `model_train_type` picks the script
(mikazuki/app/api.py `trainer_mapping`), `gpu_ids` the GPUs (mikazuki/process.py), the
`positive_prompts`/`prompt_file` family the sample prompts (api.py `get_sample_prompts`).
Presets are `[metadata]` + `[data]`. Learning rates may be written as text ("1e-4"); they are
read as numbers. UI fields the frontend turns into `network_args` before training (its
`parseParams`) are rebuilt where `network_args` itself is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kohya_plan.workflows.importers.mapping import build_plan
from kohya_plan.workflows.importers.sd_scripts import flatten_config, load_toml
from kohya_plan.workflows.importers.state import Builder, refuse
from kohya_plan.workflows.importers.values import Given

if TYPE_CHECKING:
    from kohya_plan.workflows.importers.report import ImportResult
    from kohya_plan.workflows.importers.sources import Sources

TRAIN_TYPES = {
    "sd-lora": "train_network.py",
    "sdxl-lora": "sdxl_train_network.py",
    "flux-lora": "flux_train_network.py",
}
_OTHER_TYPES = {
    "sd-dreambooth": "DreamBooth",
    "sdxl-finetune": "SDXL fine-tuning",
    "flux-finetune": "Flux fine-tuning",
    "sd3-lora": "SD3 LoRA",
    "lumina2-lora": "Lumina LoRA",
}
# Keys only the UI reads (lora-gui-dist layout bundle: needDeleteParams, the preview switch).
_UI_ONLY = {
    "lycoris_algo",
    "conv_dim",
    "conv_alpha",
    "dropout",
    "dylora_unit",
    "lokr_factor",
    "train_norm",
    "down_lr_weight",
    "mid_lr_weight",
    "up_lr_weight",
    "block_lr_zero_threshold",
    "enable_block_weights",
    "enable_preview",
    "network_args_custom",
    "optimizer_args_custom",
    "enable_base_weight",
    "prodigy_d0",
    "prodigy_d_coef",
    "ui_custom_params",
}
_PROMPT_KEYS = (
    "positive_prompts",
    "negative_prompts",
    "sample_width",
    "sample_height",
    "sample_cfg",
    "sample_seed",
    "sample_steps",
    "randomly_choice_prompt",
)
MARKERS = frozenset({"model_train_type", "lr_restart_cycles", "prompt_file", *_PROMPT_KEYS})


def is_sd_trainer(data: dict[str, Any]) -> bool:
    """A flat SD-Trainer file (or preset) rather than a plain sd-scripts config."""
    if isinstance(data.get("metadata"), dict) and isinstance(data.get("data"), dict):
        return True
    flat = {k for v in data.values() if isinstance(v, dict) for k in v} | set(data)
    return bool(flat & MARKERS)


def import_sd_trainer(text: str, sources: Sources) -> ImportResult:
    """An SD-Trainer TOML (its downloaded/autosaved config, or a preset)."""
    builder = Builder("sd-trainer", sources)
    data = load_toml(text, "source")
    prefix = ""
    if isinstance(data.get("metadata"), dict) and isinstance(data.get("data"), dict):
        for key in data["metadata"]:
            builder.record(f"metadata.{key}", "dropped", reason="the preset's description")
        data, prefix = data["data"], "data."
    options = flatten_config(data, builder, prefix=prefix)
    script, family = _train_type(options)
    launch = _gpus(options)
    _prompts(options, builder)
    given = options.pop("lr_restart_cycles", None)
    if given is not None:
        builder.record(
            given.source,
            "dropped",
            reason="not an sd-scripts option (sd-scripts "
            "ignores it in a config file); old SD-Trainer scripts passed it as "
            "--lr_scheduler_num_cycles — set optimizer.scheduler_num_cycles",
        )
    _ui_network_args(options, builder)
    for key in sorted(_UI_ONLY & set(options)):
        item = options.pop(key)
        builder.record(
            item.source,
            "dropped",
            reason="an SD-Trainer UI field (its frontend "
            "turns it into network_args/optimizer_args before training)",
        )
    build_plan(builder, options, script=script, family=family, launch=launch)
    return builder.result(script)


def _train_type(options: dict[str, Given]) -> tuple[str, Given | None]:
    given = options.pop("model_train_type", None)
    if given is None:
        return "train_network.py", None
    kind = str(given.value)
    if kind in _OTHER_TYPES:
        refuse(
            given.source,
            f"{kind!r} is {_OTHER_TYPES[kind]}",
            "kohya-plan plans SD1.5, SDXL and Flux LoRA runs",
        )
    if kind not in TRAIN_TYPES:
        refuse(
            given.source,
            f"{kind!r} is not an SD-Trainer training type",
            "use one of: " + ", ".join(TRAIN_TYPES),
        )
    return TRAIN_TYPES[kind], given


def _gpus(options: dict[str, Given]) -> dict[str, Given]:
    """gpu_ids → CUDA_VISIBLE_DEVICES and, for several, --multi_gpu --num_processes N."""
    given = options.pop("gpu_ids", None)
    if given is None or not given.value:
        return {}
    ids = given.value if isinstance(given.value, list) else str(given.value).split(",")
    ids = [str(i).strip() for i in ids if str(i).strip()]
    launch = {"gpu_ids": Given(",".join(ids), given.source)}
    if len(ids) > 1:
        launch["num_processes"] = Given(len(ids), f"{given.source} (count)")
    return launch


def _prompts(options: dict[str, Given], builder: Builder) -> None:
    """The sample prompt as the backend builds it (api.py get_sample_prompts, L87-118)."""
    prompt_file = options.pop("prompt_file", None)
    if prompt_file is not None and str(prompt_file.value).strip():
        if "sample_prompts" in options:
            builder.record(
                options["sample_prompts"].source,
                "dropped",
                reason=f"{prompt_file.source} is used instead",
            )
        options["sample_prompts"] = Given(str(prompt_file.value).strip(), prompt_file.source)
    elif prompt_file is not None:
        builder.record(prompt_file.source, "unset", reason="empty")
    found = {k: options.pop(k) for k in _PROMPT_KEYS if k in options}
    if not found:
        return
    if "sample_prompts" in options:
        for item in found.values():
            builder.record(
                item.source,
                "dropped",
                reason="sample_prompts is given (the backend then ignores the prompt fields)",
            )
        return
    choice = found.pop("randomly_choice_prompt", None)
    if choice is not None and choice.value:
        builder.record(
            choice.source,
            "cannot",
            reason="a random caption as the prompt is picked "
            "at each start: kohya-plan needs the prompt written out",
        )
    elif choice is not None:
        builder.record(choice.source, "unset", reason="off")
    positive = found.get("positive_prompts")
    if positive is None or not str(positive.value).strip():
        for item in found.values():
            builder.record(item.source, "unset", reason="no positive prompt")
        return

    def value(key: str, default: Any) -> Any:
        item = found.get(key)
        return default if item is None else item.value

    line = (
        f"{positive.value} --n {value('negative_prompts', '')}  --w {value('sample_width', 512)} "
        f"--h {value('sample_height', 512)} --l {value('sample_cfg', 7)}  "
        f"--s {value('sample_steps', 24)}  --d {value('sample_seed', 2333)}"
    )
    line = " ".join(line.split())
    builder.set("sampling.prompts", [line], positive, "the prompt line SD-Trainer's backend builds")
    for key, item in found.items():
        if key != "positive_prompts":
            builder.record(item.source, "mapped", "sampling.prompts", [line])


def _ui_network_args(options: dict[str, Given], builder: Builder) -> None:
    """parseParams' network_args from the UI fields, when the file lacks network_args."""
    if "network_args" in options:
        return
    module = options.get("network_module")
    args: list[str] = []
    parts: dict[str, str] = {}

    def add(key: str, field: str) -> None:
        item = options.pop(field, None)
        if item is not None:
            text = "True" if item.value is True else str(item.value)
            args.append(f"{key}={text}")
            parts[key] = item.source

    if module is not None and module.value == "lycoris.kohya":
        for key, field in (
            ("conv_dim", "conv_dim"),
            ("conv_alpha", "conv_alpha"),
            ("dropout", "dropout"),
            ("algo", "lycoris_algo"),
        ):
            add(key, field)
        if options.get("lokr_factor") is not None and options["lokr_factor"].value:
            add("factor", "lokr_factor")
        if options.get("train_norm") is not None and options["train_norm"].value:
            add("train_norm", "train_norm")
    elif module is not None and module.value == "networks.dylora":
        add("unit", "dylora_unit")
    enabled = options.get("enable_block_weights")
    if enabled is not None and enabled.value:
        for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold"):
            add(key, key)
    custom = options.pop("network_args_custom", None)
    if custom is not None and isinstance(custom.value, list):
        for item in custom.value:
            args.append(str(item))
            parts[str(item).partition("=")[0]] = custom.source
    if args:
        source = next(iter(parts.values()))
        options["network_args"] = Given(args, source, parts=parts)
