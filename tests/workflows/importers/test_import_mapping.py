"""The shared core: sd-scripts options → plan keys (the renderer's OPTION_FOR table inverted),
sd-scripts' behaviour for what a source leaves out, value typing, and path resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kohya_plan.families import FAMILIES
from kohya_plan.loading import validate_plan
from kohya_plan.options import OPTION_FOR, options_for
from kohya_plan.workflows.importers.mapping import build_plan
from kohya_plan.workflows.importers.sd_scripts import import_config
from kohya_plan.workflows.importers.sources import memory_sources, resolve_path
from kohya_plan.workflows.importers.state import Builder
from kohya_plan.workflows.importers.values import Given, parse_key_values, typed

OPTIONS = options_for("train_network.py")
SAMPLES: dict[str, Any] = {
    "resolution": "768,512",
    "network_args": ["conv_dim=8"],
    "optimizer_args": ["weight_decay=0.01"],
    "lr_scheduler_args": ["step_rules=1:10"],
    "text_encoder_lr": [1e-5],
    "sample_prompts": "prompts.txt",
    "logging_dir": "logs",
    "optimizer_type": "Lion",
    "lr_scheduler": "cosine",
    "mixed_precision": "bf16",
    "save_precision": "bf16",
    "save_model_as": "ckpt",
    "sample_sampler": "ddim",
    "max_grad_norm": 0.5,
    "zero_stage": 3,
    "offload_optimizer_device": "cpu",
    "offload_param_device": "nvme",
}
# DeepSpeed's ZeRO options count only with --deepspeed (sd-scripts ignores them otherwise).
WITH_DEEPSPEED = {
    "zero_stage",
    "offload_optimizer_device",
    "offload_optimizer_nvme_path",
    "offload_param_device",
    "offload_param_nvme_path",
}


def _script(option: str) -> str:
    """The first family script that has the option (train_network.py for the shared ones)."""
    return next(f.script for f in FAMILIES.values() if option in options_for(f.script))


def _sample(option: str) -> Any:
    if option in SAMPLES:
        return SAMPLES[option]
    spec = options_for(_script(option))[option]
    if spec.choices:
        return spec.choices[0]
    if spec.action == "store_true":
        return True
    return {"int": 3, "float": 0.5, "int_or_float": 0.25}.get(spec.type, "value")


def _build(
    options: dict[str, Any],
    files: dict[str, str] | None = None,
    script: str = "train_network.py",
) -> Builder:
    builder = Builder("test", memory_sources(files or {}))
    given = {name: Given(value, name) for name, value in options.items()}
    build_plan(builder, given, script=script)
    return builder


@pytest.mark.parametrize("option", sorted(set(OPTION_FOR.values())))
def test_every_option_the_renderer_writes_maps_back_to_its_plan_key(option: str) -> None:
    value = _sample(option)
    given = {option: value, **({"deepspeed": True} if option in WITH_DEEPSPEED else {})}
    files = {"/src/prompts.txt": "a cat --w 512\n"}
    builder = _build(given, files, script=_script(option))
    record = builder.records[option]
    assert record.kind == "mapped", record
    plan_key = {v: k for k, v in OPTION_FOR.items()}[option]
    if option == "sdpa":
        assert record.plan_key == "training.attention"
    else:
        assert record.plan_key is not None
        assert record.plan_key.startswith(plan_key), (record.plan_key, plan_key)


def test_empty_config_trains_as_sd_scripts_would() -> None:
    plan = _build({"pretrained_model_name_or_path": "org/model"}).plan
    assert plan["dataset"]["caption_extension"] == ".caption"
    assert plan["dataset"]["enable_bucket"] is False
    assert plan["training"]["mixed_precision"] == "no"
    assert plan["training"]["attention"] == "none"
    assert plan["training"]["max_train_steps"] == 1600
    assert plan["optimizer"]["type"] == "AdamW"
    assert plan["optimizer"]["learning_rate"] == 2e-6
    assert plan["network"]["alpha"] == 1.0
    assert plan["network"]["dim"] == 4
    assert plan["output"]["save_precision"] == "float"
    assert plan["output"]["name"] == "last"


def test_imported_plan_validates_once_placeholders_are_filled() -> None:
    builder = _build({"learning_rate": 1e-4, "network_dim": 8, "network_alpha": 4})
    data = builder.plan
    data["model"]["base"] = "org/model"
    data["dataset"]["train_dir"] = "/data"
    plan = validate_plan(data, Path("/src"))
    assert plan.network.dim == 8


def test_unknown_config_key_is_reported_not_carried() -> None:
    builder = _build({"learnig_rate": 1e-4})
    record = builder.records["learnig_rate"]
    assert record.kind == "cannot"
    assert "ignores it silently" in record.reason
    assert '"learning_rate"' in record.reason
    assert "learnig_rate" not in builder.plan.get("launch", {}).get("extra", {})


def test_attention_follows_sd_scripts_precedence() -> None:
    builder = _build({"xformers": True, "mem_eff_attn": True, "sdpa": True})
    assert builder.plan["training"]["attention"] == "mem_eff"
    assert builder.records["xformers"].kind == "dropped"
    assert builder.records["sdpa"].kind == "dropped"


def test_steps_are_ignored_when_epochs_are_set() -> None:
    builder = _build({"max_train_epochs": 4, "max_train_steps": 999})
    assert builder.plan["training"] == {**builder.plan["training"], "epochs": 4}
    assert "max_train_steps" not in builder.plan["training"]
    assert builder.records["max_train_steps"].kind == "dropped"


def test_values_sd_scripts_cannot_use_are_said() -> None:
    builder = _build({"lr_warmup_steps": 1.5, "max_token_length": 100, "seed": "x"})
    assert builder.records["lr_warmup_steps"].kind == "cannot"
    assert builder.records["max_token_length"].kind == "cannot"
    assert builder.records["seed"].kind == "cannot"


@pytest.mark.parametrize(
    ("items", "literal", "expected"),
    [
        (
            ["betas=0.9,0.99", "decouple=True", "eps=1e-8"],
            True,
            {"betas": [0.9, 0.99], "decouple": True, "eps": 1e-8},
        ),
        (
            ["conv_dim=8", "dropout=0.1", "algo=locon", "use_tucker=False", "scale=1e-4"],
            False,
            {"conv_dim": 8, "dropout": 0.1, "algo": "locon", "use_tucker": False, "scale": "1e-4"},
        ),
    ],
    ids=["optimizer-literals", "network-strings"],
)
def test_key_value_lists(items: list[str], literal: bool, expected: dict[str, Any]) -> None:
    values, problems = parse_key_values(items, literal=literal)
    assert values == expected
    assert problems == []


def test_key_value_list_problems() -> None:
    _, problems = parse_key_values(["a=b=c", "plain"], literal=True)
    assert len(problems) == 2


def test_text_numbers_are_read_as_numbers() -> None:
    assert typed(OPTIONS["learning_rate"], "1e-4")[0] == 1e-4
    assert typed(OPTIONS["network_dim"], 8.0) == (8, "written as 8.0")
    assert typed(OPTIONS["lr_warmup_steps"], "5%")[0] == 0.05
    assert typed(OPTIONS["text_encoder_lr"], 1e-5) == ([1e-5], "")


def test_paths_relative_to_the_source_or_its_parents() -> None:
    sources = memory_sources({"/gui/test/img/10_a/x.png": ""}, base_dir="/gui/test/config")
    assert resolve_path("./test/img", sources).path == "/gui/test/img"
    assert resolve_path(".\\test\\img", sources).path == "/gui/test/img"
    assert resolve_path("./test/output", sources).path == "/gui/test/output"
    assert resolve_path("out", sources).path == "/gui/test/config/out"
    assert resolve_path("C:\\data\\img", sources).path == "C:/data/img"
    assert resolve_path("/abs/dir", sources).path == "/abs/dir"


def test_dataset_values_follow_sd_scripts_precedence() -> None:
    dataset = (
        "[general]\nshuffle_caption = true\nkeep_tokens = 2\n"
        "[[datasets]]\nresolution = [768, 512]\nkeep_tokens = 1\n"
        '  [[datasets.subsets]]\n  image_dir = "a"\n  num_repeats = 3\n  keep_tokens = 4\n'
        '  [[datasets.subsets]]\n  image_dir = "b"\n  caption_dropout_rate = 0.1\n'
    )
    config = 'resolution = "512,512"\ncaption_extension = ".txt"\n'
    result = import_config(config, memory_sources({}), dataset_text=dataset)
    ds = result.plan["dataset"]
    assert ds["resolution"] == [768, 512]
    assert result.record("resolution").kind == "dropped"  # the dataset config wins
    assert ds["keep_tokens"] == 1  # datasets[0] over [general]
    assert ds["caption_extension"] == ".txt"  # the config's value is sd-scripts' fallback
    assert ds["subsets"][0] == {"image_dir": "/src/a", "repeats": 3, "keep_tokens": 4}
    # caption_dropout_rate only in one subset: kohya-plan sets it for all subsets only
    assert result.record("datasets[0].subsets[1].caption_dropout_rate").kind == "cannot"


def test_help_has_examples(run_cli: Any) -> None:
    result = run_cli("import", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "kohya-plan import my_lora.json" in result.output


def test_cli_formats_are_the_importers_formats(run_cli: Any) -> None:
    from kohya_plan.workflows.importers import FORMATS

    help_text = run_cli("import", "--help").output
    assert all(name in help_text for name in FORMATS)


def test_zero_options_without_deepspeed_are_dropped_as_sd_scripts_ignores_them() -> None:
    builder = _build({"zero_stage": 3, "ddp_timeout": 5})
    assert builder.records["zero_stage"].kind == "dropped"
    assert "launch" not in builder.plan or "deepspeed" not in builder.plan["launch"]
    assert builder.plan["launch"]["ddp_timeout"] == 5
    with_it = _build({"zero_stage": 3, "deepspeed": True, "offload_param_device": "cpu"})
    assert with_it.plan["launch"]["deepspeed"] == {"zero_stage": 3, "offload_param_device": "cpu"}
