"""The plan means exactly what it says: no silent coercion, sensible upper bounds.

pydantic's default (lax) mode reads `"32"` as 32, `true` as 1, `"yes"` as true and `1e3` as
1000 without a word; the plan's scalar types are strict, in the plan file and in `--set`,
and the message says which type was expected and shows the value as it was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_plan
from pydantic import BaseModel

from kohya_plan.plan import Plan
from kohya_plan.plan.slurm import SlurmSection

if TYPE_CHECKING:
    from pathlib import Path

_SCALARS = {"int", "float", "bool", "str"}


def lax_scalars(model: type[BaseModel]) -> list[str]:
    """Paths (in the core schema) of int/float/bool/str validators that are not strict."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if kind in ("lax-or-strict", "json-or-python"):
                return  # pydantic's own types (Path: a string is how a path is written)
            if isinstance(kind, str) and kind in _SCALARS and not node.get("strict"):
                found.append(f"{where} ({node['type']})")
            for key, child in node.items():
                if key in ("metadata", "cls", "ref", "serialization"):
                    continue
                walk(child, f"{where}.{key}" if key not in ("schema", "fields") else where)
        elif isinstance(node, list):
            for child in node:
                walk(child, where)

    walk(model.__pydantic_core_schema__, model.__name__)
    return found


def test_every_scalar_field_of_the_plan_is_strict() -> None:
    """A new field with a plain `int`/`bool`/`str`/`float` fails here: use plan.common's
    Int/Float/Bool/Text (or PositiveInt, ...)."""
    assert lax_scalars(Plan) == []
    assert lax_scalars(SlurmSection) == []


def test_the_schema_walk_finds_a_lax_field() -> None:
    class Lax(BaseModel):
        count: int = 1
        name: str | None = None

    assert len(lax_scalars(Lax)) == 2


def _data(root: Path) -> None:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)


# (plan key, value as TOML would give it, TOML text for --set, words the message must hold)
COERCIONS = [
    ("network.dim", "32", '"32"', ["expected a whole number", 'got "32"', "dim = 32"]),
    ("network.dim", True, "true", ["expected a whole number", "got true", "true is not 1"]),
    ("training.epochs", 1e3, "1e3", ["expected a whole number", "got 1000.0", "epochs = 1000"]),
    (
        "training.cache_latents",
        "yes",
        "yes",
        ["expected true or false", 'got "yes"', "cache_latents = true"],
    ),
    ("training.cache_latents", 1, "1", ["expected true or false", "got 1"]),
    ("dataset.shuffle_caption", "true", '"true"', ["expected true or false", 'got "true"']),
    ("optimizer.learning_rate", "1e-4", '"1e-4"', ["expected a number", "learning_rate = 1e-4"]),
    ("optimizer.learning_rate", True, "true", ["expected a number", "got true"]),
    ("output.name", 5, "5", ["expected text in quotes", "got 5", 'name = "5"']),
    ("model.clip_skip", 2.0, "2.0", ["expected a whole number", "got 2.0", "clip_skip = 2"]),
    ("training.seed", "42", '"42"', ["expected a whole number", 'got "42"']),
    ("launch.num_processes", 1.5, "1.5", ["expected a whole number", "got 1.5"]),
    ("optimizer.warmup_steps", True, "true", ["expected a number", "got true"]),
    ("dataset.resolution", "512", '"512"', ["dataset.resolution", 'got "512"']),
    ("sampling.at_first", "no", "no", ["expected true or false", "at_first = false"]),
    ("rules.allow", [1], "[1]", ["rules.allow[0]", "expected text in quotes"]),
]


def _with(key: str, value: Any) -> dict[str, Any]:
    section, name = key.split(".")
    return base_plan(**{section: {name: value}})


@pytest.mark.parametrize(("key", "value", "toml_text", "words"), COERCIONS)
def test_no_silent_coercion_in_the_plan_file(
    tmp_path: Path, run_cli, key: str, value: Any, toml_text: str, words: list[str]
) -> None:
    _data(tmp_path)
    plan = write_plan(tmp_path, _with(key, value))
    result = run_cli("check", plan, "--no-hardware")
    assert result.exit_code == 2, result.output
    assert key in result.output
    for word in words:
        assert word in result.output, result.output


@pytest.mark.parametrize(("key", "value", "toml_text", "words"), COERCIONS)
def test_no_silent_coercion_in_set(
    tmp_path: Path, run_cli, key: str, value: Any, toml_text: str, words: list[str]
) -> None:
    _data(tmp_path)
    plan = write_plan(tmp_path, base_plan())
    result = run_cli("check", plan, "--no-hardware", "--set", f"{key}={toml_text}")
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output, result.output


def test_what_toml_writes_naturally_still_validates(tmp_path: Path, run_cli) -> None:
    """Lists for tuples, strings for paths, integers for floats: no false alarms."""
    _data(tmp_path)
    plan = write_plan(
        tmp_path,
        base_plan(
            dataset={"resolution": [512, 512], "max_bucket_reso": 1024},
            optimizer={"learning_rate": 1, "unet_lr": 1, "text_encoder_lr": 0.5},
            sampling={"every_n_epochs": 1, "prompts": ["testchar --w 512 --h 512"]},
            rules={"allow": ["adaptive-lr"]},
            network={"dim": 32, "alpha": 16, "args": {"conv_dim": 4, "conv_alpha": 1.5}},
        ),
    )
    result = run_cli("check", plan, "--no-hardware", "--set", "optimizer.warmup_steps=0.1")
    assert result.exit_code == 0, result.output
    from kohya_plan.loading import load_plan

    loaded = load_plan(plan)
    assert loaded.dataset.resolution == (512, 512)
    assert loaded.optimizer.learning_rate == 1.0
    assert isinstance(loaded.optimizer.learning_rate, float)
    assert loaded.dataset.train_dir == tmp_path / "data"
    assert loaded.sampling.prompts == ("testchar --w 512 --h 512",)
    assert loaded.network.args == {"conv_dim": 4, "conv_alpha": 1.5}


# Upper bounds where sd-scripts or reality has one: the message gives the exact range.
BOUNDS = [
    ("network.dim", 2048, "from 1 to 1024"),
    ("training.batch_size", 1000, "from 1 to 256"),
    ("training.epochs", 100_000, "from 1 to 10000"),
    ("training.gradient_accumulation_steps", 4096, "from 1 to 1024"),
    ("training.seed", 2**32, "from 0 to 4294967295"),
    ("model.clip_skip", 13, "from 1 to 12"),
    ("optimizer.learning_rate", 100.0, "> 0 and <= 10"),
    ("dataset.caption_dropout_rate", 1.5, "from 0 to 1"),
    ("network.dropout", 1.0, ">= 0 and < 1"),
    ("dataset.max_bucket_reso", 100_000, "from 1 to 8192"),
    ("launch.num_processes", 5000, "from 1 to 1024"),
    ("launch.main_process_port", 70000, "from 1 to 65535"),
    ("dataset.resolution", 10_000, "64 to 8192 px"),
]


@pytest.mark.parametrize(("key", "value", "span"), BOUNDS)
def test_upper_bounds_name_the_exact_range(
    tmp_path: Path, run_cli, key: str, value: Any, span: str
) -> None:
    _data(tmp_path)
    plan = write_plan(tmp_path, _with(key, value))
    result = run_cli("check", plan, "--no-hardware")
    assert result.exit_code == 2, result.output
    assert key in result.output
    assert span in result.output, result.output
