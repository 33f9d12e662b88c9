"""LoRA_Easy_Training_Scripts (derrian-distro) TOML: the UI's saved state.

One table per UI section, each with `args` (→ sd-scripts' config file) and `dataset_args`
(→ the dataset config's [general]), plus `[[subsets]]` and `[train_mode]`
(LETS: main_ui_files/MainUI.py `save_toml`). The backend turns it into sd-scripts' files
(LETS-backend: utils/validation.py `validate_args`, `validate_dataset_args`): empty and false
values are dropped, `network_args`/`optimizer_args`/`lr_scheduler_args` tables become
`key=value` lists, `algo`/`unit` pick the LyCORIS/DyLoRA module, `sdxl` and a filled
`[flux_args]` pick the script, `warmup_ratio` becomes warmup steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kohya_plan.workflows.importers.mapping import build_plan
from kohya_plan.workflows.importers.sd_scripts import load_toml
from kohya_plan.workflows.importers.state import Builder, DatasetBlock, DatasetInput, refuse
from kohya_plan.workflows.importers.values import Given

if TYPE_CHECKING:
    from kohya_plan.workflows.importers.report import ImportResult
    from kohya_plan.workflows.importers.sources import Sources

# LETS-only keys of its sections (the backend or the UI reads them, sd-scripts never does).
_LETS_ONLY = {
    "easy_name": "LETS's ${replace} name for output paths (already applied in them)",
    "save_toml": "LETS saves a copy of this file after training",
    "save_toml_location": "LETS saves a copy of this file after training",
    "tag_occurrence": "LETS writes a tag-count file",
    "tag_file_location": "LETS writes a tag-count file",
}
# validate_optimizer: LETS's own optimizers, shipped in its backend (custom_scheduler/).
_LETS_OPTIMIZERS = {
    "came": "LoraEasyCustomOptimizer.came.CAME",
    "compass": "LoraEasyCustomOptimizer.compass.Compass",
    "lpfadamw": "LoraEasyCustomOptimizer.lpfadamw.LPFAdamW",
    "rmsprop": "LoraEasyCustomOptimizer.rmsprop.RMSProp",
}
_BLOCK_LISTS = (
    "down_lr_weight",
    "up_lr_weight",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
)


def is_lets(data: dict[str, Any]) -> bool:
    """LETS' sectioned layout: [[subsets]], [train_mode], or sections with args/dataset_args."""
    if isinstance(data.get("subsets"), list) or isinstance(data.get("train_mode"), dict):
        return True
    return any(isinstance(v, dict) and ({"args", "dataset_args"} & set(v)) for v in data.values())


def import_lets(text: str, sources: Sources) -> ImportResult:
    """A LoRA_Easy_Training_Scripts TOML."""
    builder = Builder("lets", sources)
    data = load_toml(text, "source")
    mode = data.get("train_mode", {})
    if isinstance(mode, dict) and mode.get("train_mode", "lora") != "lora":
        refuse(
            "train_mode.train_mode",
            f"{mode['train_mode']!r} is not LoRA training",
            "kohya-plan plans LoRA runs",
        )
    if "train_mode" in data:
        builder.record("train_mode.train_mode", "dropped", reason="lora: LoRA training")
    options: dict[str, Given] = {}
    general: dict[str, Given] = {}
    module: Given | None = None
    flux = False
    for section, table in data.items():
        if section in ("subsets", "train_mode") or not isinstance(table, dict):
            continue
        if section == "textual_inversion_args" and table.get("args"):
            refuse(f"{section}.args", "is textual inversion", "kohya-plan plans LoRA runs")
        args = table.get("args", {})
        if section == "flux_args" and args:
            flux = True
        for key, value in args.items():
            source = f"{section}.args.{key}"
            module = _arg(builder, options, key, value, source) or module
        for key, value in table.get("dataset_args", {}).items():
            source = f"{section}.dataset_args.{key}"
            if not value or (key == "max_token_length" and value == 75):
                builder.record(source, "unset", reason="empty or off: LETS drops it")
                continue
            general[key] = Given(value, source)
        for key in set(table) - {"args", "dataset_args"}:
            builder.record(f"{section}.{key}", "dropped", reason="not read by LETS's backend")
    if module is not None:
        options["network_module"] = module
    elif "network_module" not in options:
        name = "networks.lora_flux" if "guidance_scale" in options else "networks.lora"
        options["network_module"] = Given(name, "network_args (none)", default=True)
    sdxl = options.pop("sdxl", None)
    script = "flux_train_network.py" if flux else "train_network.py"
    family = None
    if sdxl is not None and sdxl.value:
        script, family = "sdxl_train_network.py", sdxl
    elif flux:
        family = Given("flux", "flux_args")
    subsets = []
    for index, subset in enumerate(data.get("subsets", [])):
        row = {}
        for key, value in subset.items():
            source = f"subsets[{index}].{key}"
            if key == "name":
                builder.record(source, "dropped", reason="LETS's label of the subset")
            elif not value:
                builder.record(source, "unset", reason="empty or off: LETS drops it")
            else:
                row[key] = Given(value, source)
        subsets.append(row)
    dataset = DatasetInput(general, [DatasetBlock("datasets[0]", {}, subsets)], sources.base_dir)
    build_plan(builder, options, script=script, family=family, dataset=dataset)
    builder.notes.append("LETS starts sd-scripts with plain python; kohya-plan uses accelerate")
    return builder.result(script)


def _arg(
    builder: Builder, options: dict[str, Given], key: str, value: Any, source: str
) -> Given | None:
    """One `args` entry as validate_args passes it; returns a network module it implies."""
    module = None
    if key in _LETS_ONLY:
        builder.record(source, "dropped", reason=_LETS_ONLY[key])
    elif key == "fa":
        if value:
            module = Given("networks.lora_fa", source)
        else:
            builder.record(source, "unset", reason="off")
    elif key == "network_args" and isinstance(value, dict):
        items, parts = [], {}
        for k, v in value.items():
            if k == "algo":
                module = Given("lycoris.kohya", source)
            elif k == "unit":
                module = Given("networks.dylora", source)
            if k == "preset" and v == "":
                continue
            text = ",".join(str(x) for x in v) if k in _BLOCK_LISTS and isinstance(v, list) else v
            items.append(f"{k}={text}")
            parts[k] = f"{source}.{k}"
        if items:
            options["network_args"] = Given(items, source, parts=parts)
    elif key in ("optimizer_args", "lr_scheduler_args") and isinstance(value, dict):
        items = [
            f"{k}={str(v).capitalize() if v in ('true', 'false') else v}" for k, v in value.items()
        ]
        if items:
            options[key] = Given(items, source)
        else:
            builder.record(source, "unset", reason="empty")
    elif key == "warmup_ratio":
        # LETS rounds ratio × its bucket-exact steps; sd-scripts takes a ratio itself (int()).
        options["lr_warmup_steps"] = Given(float(value), source)
    elif key == "lr_scheduler_type" and str(value).startswith("LoraEasyCustomOptimizer"):
        builder.record(
            source,
            "cannot",
            reason=f"{value}: LETS's own scheduler, shipped with its backend, not with sd-scripts",
        )
    elif key == "optimizer_type" and str(value).lower() in _LETS_OPTIMIZERS:
        options[key] = Given(_LETS_OPTIMIZERS[str(value).lower()], source)
        builder.notes.append(
            f"{source}: {value} is LETS's own optimizer — install its "
            "LoraEasyCustomOptimizer package into sd-scripts' Python"
        )
    elif not value:
        builder.record(source, "unset", reason="empty, 0 or off: LETS drops it")
    elif isinstance(value, str) and value.lower() in ("true", "false"):
        if value.lower() == "true":
            options[key] = Given(True, source)
        else:
            builder.record(source, "unset", reason="false: LETS drops it")
    else:
        if key in options:
            builder.record(options[key].source, "dropped", reason=f"overridden by {source}")
        options[key] = Given(value, source)
    return module
