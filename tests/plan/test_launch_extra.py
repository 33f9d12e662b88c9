"""`launch.extra` carries only options that do what they say.

Refused, each with the way out: options sd-scripts takes from the dataset TOML (where
kohya-plan writes them, so the extra value would be ignored without a word), options that would
write a secret into the run folder, and options that make sd-scripts do something other than
train. The refusals come from `kohya_plan.options.extra_refusal`, derived from what the dataset
renderer writes and checked against sd-scripts' own config_util.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import sdlab
from helpers import base_plan, make_images, write_plan

from kohya_plan.inputs.facts import ResolvedSubset
from kohya_plan.loading import loads_toml, validate_plan
from kohya_plan.options import (
    DATASET_TOML_OPTIONS,
    IGNORED_WITH_DATASET_CONFIG,
    NOT_TRAINING_OPTIONS,
    SECRET_OPTIONS,
    extra_refusal,
    options_for,
)
from kohya_plan.plan import Plan
from kohya_plan.render.dataset_toml import render_dataset_toml

SCRIPTS = ("train_network.py", "sdxl_train_network.py", "flux_train_network.py")
# sd-scripts' config_util.ConfigSanitizer.ARGPARSE_OPTNAME_TO_CONFIG_OPTNAME, reversed
CONFIG_TO_ARGPARSE = {"batch_size": "train_batch_size", "num_repeats": "dataset_repeats"}


def _data(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)


def _check(tmp_path: Path, run_cli: Any, extra: dict[str, Any]) -> str:
    _data(tmp_path)
    plan = write_plan(tmp_path, base_plan(launch={"extra": extra}))
    before = sorted(tmp_path.rglob("*"))
    result = run_cli("make", plan)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert sorted(tmp_path.rglob("*")) == before, "a refused plan must write nothing"
    return result.output


def _every_dataset_key_rendered() -> set[str]:
    """The keys the dataset TOML holds when every optional plan key is set."""
    plan = validate_plan(
        base_plan(
            dataset={
                "caption_prefix": "a",
                "caption_suffix": "b",
                "keep_tokens": 1,
                "shuffle_caption": True,
            }
        ),
        Path.cwd(),
    )
    subset = ResolvedSubset(Path("/data/5_x"), 5, False, "x", (("keep_tokens", 1),))
    doc = loads_toml(render_dataset_toml(plan, [subset], "header"))
    keys = set(doc["general"])
    for dataset in doc["datasets"]:
        keys |= {k for k in dataset if k != "subsets"}
        for item in dataset["subsets"]:
            keys |= set(item)
    return keys


def test_every_option_the_dataset_toml_sets_is_refused_in_extra() -> None:
    """Derived: what the renderer writes (under sd-scripts' argparse names) cannot be extra."""
    rendered = {CONFIG_TO_ARGPARSE.get(k, k) for k in _every_dataset_key_rendered()}
    for script in SCRIPTS:
        options = options_for(script)
        for key in sorted(rendered & set(options)):
            assert extra_refusal(key) is not None, f"{script}: launch.extra.{key} is not refused"
    # and nothing is refused as "from the dataset TOML" that the renderer does not write
    assert set(DATASET_TOML_OPTIONS) - rendered == {"caption_extention"}  # the old spelling


def _has_plan_key(dotted: str) -> bool:
    model: Any = Plan
    for part in dotted.split(" ")[0].replace("[]", "").split("."):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return False
        annotation = fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", ()) if hasattr(a, "model_fields")]
        model = inner[0] if inner else annotation
    return True


def test_the_plan_keys_named_instead_exist() -> None:
    for option, plan_key in {**DATASET_TOML_OPTIONS, **IGNORED_WITH_DATASET_CONFIG}.items():
        assert _has_plan_key(plan_key), f"{option} points at {plan_key}, which is no plan key"


def test_sd_scripts_reads_those_options_from_the_dataset_toml() -> None:
    """Each refused option really is a key of sd-scripts' dataset config schema."""
    where = sdlab.sd_scripts_dir()
    if where is None:
        pytest.skip(
            f"no sd-scripts checkout to read library/config_util.py: {sdlab.SUBMODULE_HINT}"
        )
    tree = ast.parse((where / "library" / "config_util.py").read_text(encoding="utf-8"))
    schema_keys: set[str] = set()
    renames: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if not names:
                continue
            keys = [k for k in node.value.keys if k is not None]
            strings = [_string(k) for k in keys]
            if names[0].endswith("_SCHEMA") and names[0] != "ARGPARSE_SPECIFIC_SCHEMA":
                schema_keys |= {s for s in strings if s}
            if names[0] == "ARGPARSE_OPTNAME_TO_CONFIG_OPTNAME":
                values = [_string(v) for v in node.value.values]
                renames = {k: v for k, v in zip(strings, values, strict=True) if k and v}
    assert {v: k for k, v in renames.items()} == CONFIG_TO_ARGPARSE
    for option in DATASET_TOML_OPTIONS:
        if option == "caption_extention":
            continue  # argparse copies it into caption_extension (train_util.py)
        assert renames.get(option, option) in schema_keys, option


def _string(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and node.args:  # Required("image_dir")
        return _string(node.args[0])
    return None


@pytest.mark.parametrize("option", sorted(DATASET_TOML_OPTIONS))
def test_a_dataset_option_in_extra_names_the_plan_key(
    tmp_path: Path, run_cli: Any, option: str
) -> None:
    value = options_for("train_network.py")[option]
    sample: Any = {"bool": True, "int": 1, "float": 0.1}.get(value.type, ".txt")
    if value.action == "store_true":
        sample = True
    if value.is_list:
        sample = [512, 512]
    output = _check(tmp_path, run_cli, {option: sample})
    assert "launch.extra" in output
    assert DATASET_TOML_OPTIONS[option].split(" ")[0] in output, output


@pytest.mark.parametrize(("option", "env"), sorted(SECRET_OPTIONS.items()))
def test_a_secret_in_extra_is_refused_with_its_environment_variable(
    tmp_path: Path, run_cli: Any, option: str, env: str
) -> None:
    secret = "hf_SuperSecretValue1234567"
    output = _check(tmp_path, run_cli, {option: secret})
    assert env in output
    assert secret not in output, "the refusal must not print the secret"


def test_any_token_or_key_named_option_counts_as_a_secret() -> None:
    for name in ("hub_token", "api_key", "some_secret", "my_password"):
        refusal = extra_refusal(name)
        assert refusal is not None
        assert "secret" in refusal
    for harmless in (
        "keep_tokens",
        "max_token_length",
        "tokenizer_cache_dir",
        "keep_tokens_separator",
    ):
        assert extra_refusal(harmless) is None or harmless in DATASET_TOML_OPTIONS


@pytest.mark.parametrize("option", sorted(NOT_TRAINING_OPTIONS))
def test_options_that_do_not_train_are_refused_or_explained(
    tmp_path: Path, run_cli: Any, option: str
) -> None:
    value = options_for("train_network.py")[option]
    sample: Any = True if value.action == "store_true" else "x"
    output = _check(tmp_path, run_cli, {option: sample})
    assert re.search(rf"{option}.*—", output), output


@pytest.mark.parametrize("option", sorted(IGNORED_WITH_DATASET_CONFIG))
def test_folder_options_sd_scripts_ignores_name_the_plan_key(
    tmp_path: Path, run_cli: Any, option: str
) -> None:
    output = _check(tmp_path, run_cli, {option: "elsewhere"})
    assert "ignored by sd-scripts" in output
    assert IGNORED_WITH_DATASET_CONFIG[option] in output


def test_options_that_pass_through_stay_allowed(tmp_path: Path, run_cli: Any) -> None:
    """Dataset options kohya-plan does not write still reach sd-scripts (argparse fallback)."""
    _data(tmp_path)
    extra = {"noise_offset": 0.05, "caption_separator": ";", "caption_tag_dropout_rate": 0.1}
    plan = write_plan(tmp_path, base_plan(launch={"extra": extra}))
    result = run_cli("check", plan, "--no-hardware")
    assert result.exit_code == 0, result.output
