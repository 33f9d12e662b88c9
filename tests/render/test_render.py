"""Rendering details a user relies on: TOML that sd-scripts' reader and tomllib read the same,
argv shown exactly, every config key a real sd-scripts option of the right type."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import toml
from helpers import base_plan, make_images, write_diffusers, write_plan

from kohya_plan.loading import loads_toml
from kohya_plan.options import OPTION_FOR, options_for, value_problem
from kohya_plan.planning import check_plan, render_run
from kohya_plan.render.command import posix_display, powershell_display, powershell_quote
from kohya_plan.render.toml_text import toml_string, toml_value

TRICKY = [
    "plain",
    "with space",
    r"C:\Users\ユーザー\lora data\50_xunxian",
    r"\\server\share\a b",
    'quote " inside',
    "single ' quote",
    "中文 路径/数据",
    "tab\tand\nnewline",
    "trailing backslash\\",
    "emoji 🎨 and \x7f del",
    "$HOME `cmd` $(x) ;&|",
]


@pytest.mark.parametrize("text", TRICKY)
def test_toml_strings_read_back_identically(text: str) -> None:
    doc = f"key = {toml_string(text)}\nlist = {toml_value([text, text])}\n"
    assert toml.loads(doc) == loads_toml(doc) == {"key": text, "list": [text, text]}


@pytest.mark.parametrize("value", [1e-4, 5e-05, 0.1, 1.0, 3.3e-5, 123456789.0, 1e-10])
def test_toml_floats_stay_floats(value: float) -> None:
    doc = f"x = {toml_value(value)}\n"
    assert toml.loads(doc)["x"] == loads_toml(doc)["x"] == value
    assert isinstance(toml.loads(doc)["x"], float)


def test_toml_rejects_mixed_arrays() -> None:
    with pytest.raises(ValueError, match="one type"):
        toml_value([1, "x"])


@pytest.mark.parametrize("text", TRICKY)
def test_posix_display_round_trips(text: str) -> None:
    argv = ["/opt/py thon/bin/python", "-m", "accelerate.commands.launch", text, "--x", text]
    assert shlex.split(posix_display(argv)) == argv


@pytest.mark.parametrize("text", TRICKY)
def test_powershell_quoting_is_literal(text: str) -> None:
    quoted = powershell_quote(text)
    assert quoted.startswith("'")
    assert quoted.endswith("'")
    # Inside single quotes PowerShell expands nothing; only ' must be doubled.
    assert quoted[1:-1].replace("''", "").count("'") == 0
    assert quoted[1:-1].replace("''", "'") == text
    assert powershell_display(["a b", text]).startswith("& 'a b' ")


@pytest.fixture
def report(tmp_path: Path):
    make_images(tmp_path / "data" / "5_testchar", [(512, 512), (512, 768), (768, 512)])
    write_diffusers(tmp_path / "models")
    plan = write_plan(
        tmp_path,
        base_plan(
            model={"base": "models", "tokenizer_cache_dir": "tok"},
            network={"args": {"conv_dim": 4, "conv_alpha": 1}, "dropout": 0.1},
            optimizer={
                "args": {"weight_decay": 0.01},
                "warmup_steps": 20,
                "scheduler": "cosine_with_restarts",
            },
            training={
                "save_state": True,
                "gradient_checkpointing": True,
                "max_data_loader_n_workers": 2,
            },
            sampling={"every_n_epochs": 1, "at_first": True, "prompts": ["a --w 512 --h 512"]},
            output={"comment": "hello"},
            launch={"extra": {"noise_offset": 0.05, "min_snr_gamma": 5}},
        ),
    )
    return check_plan(plan)


def test_every_config_key_is_an_sd_scripts_option_with_a_fitting_value(report, tmp_path) -> None:
    rendered = render_run(report, tmp_path / "runs" / "r1")
    config = loads_toml(rendered.files["config.toml"])
    options = options_for("train_network.py")
    flat = {k: v for section in config.values() for k, v in section.items()}
    assert len(flat) == sum(len(s) for s in config.values()), "a key appears in two sections"
    for key, value in flat.items():
        assert key in options, key
        assert value_problem(options[key], value) is None, (key, value)
    # Values sd-scripts would default badly are always written (contract §0.2).
    for key in (
        "learning_rate",
        "save_precision",
        "network_module",
        "output_dir",
        "max_train_epochs",
        "network_dim",
        "network_alpha",
    ):
        assert key in flat, key
    assert isinstance(flat["network_alpha"], float)
    assert flat["resolution"] == "512,512"
    dataset = loads_toml(rendered.files["dataset.toml"])
    assert dataset["general"]["caption_extension"] == ".txt"


def test_option_table_names_real_options() -> None:
    """Every plan key becomes an option of some family's script; every option a family's plan
    can render exists in that family's own script (plan/fit.py refuses the others)."""
    from kohya_plan.families import FAMILIES

    every = set().union(*(options_for(f.script) for f in FAMILIES.values()))
    assert set(OPTION_FOR.values()) <= every
    shared = {o for k, o in OPTION_FOR.items() if not k.startswith(("flux.", "model."))}
    shared -= {"cache_text_encoder_outputs", "cache_text_encoder_outputs_to_disk"}
    assert shared <= set(options_for("train_network.py"))


def test_dry_run_prints_argv_and_files_and_writes_nothing(report, run_cli, tmp_path) -> None:
    before = sorted(tmp_path.rglob("*"))
    result = run_cli("make", report.plan_path, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert sorted(doc["files"]) == ["config.toml", "dataset.toml", "prompts.txt"]
    argv = doc["argv"]
    assert argv[:3] == ["/opt/sd/bin/python", "-m", "accelerate.commands.launch"]
    assert argv[-4:-2] == ["--config_file", doc["run_dir"] + "/config.toml"]
    assert argv[argv.index("--dataset_config") + 1] == doc["run_dir"] + "/dataset.toml"
    assert sorted(tmp_path.rglob("*")) == before
    text = run_cli("make", report.plan_path, "--dry-run")
    assert (
        shlex.join(argv).replace(doc["run_dir"], "X").split()[6:12]
        == text.stdout.splitlines()[-1].split()[6:12]
    )


def test_make_writes_a_new_folder_every_time(report, run_cli, tmp_path) -> None:
    first = run_cli("make", report.plan_path, "--json")
    second = run_cli("make", report.plan_path, "--json")
    assert first.exit_code == second.exit_code == 0
    a, b = json.loads(first.stdout)["run_dir"], json.loads(second.stdout)["run_dir"]
    assert a != b
    files = sorted(p.name for p in Path(a).iterdir())
    assert files == sorted(
        [
            "plan.toml",
            "plan.source.toml",
            "dataset.toml",
            "config.toml",
            "prompts.txt",
            "command.sh",
            "command.ps1",
            "accelerate.json",
            "check.json",
            "launch.json",
        ]
    )
    launch = json.loads((Path(a) / "launch.json").read_text())
    assert launch["argv"] == json.loads(first.stdout)["argv"]
    # The resolved plan validates again to the same plan.
    again = check_plan(Path(a) / "plan.toml")
    assert again.plan == report.plan


def test_check_json_has_the_documented_keys(report, run_cli) -> None:
    result = run_cli("check", report.plan_path, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    for item in doc["advice"] + doc["errors"]:
        assert {"id", "field", "message"} <= set(item)
    steps = doc["steps"]
    assert {"batches_per_epoch", "epochs", "total_optimization_steps", "tutorial_formula"} <= set(
        steps
    )
    # 3 images x 5 repeats, three different aspect buckets, batch 1.
    assert steps["batches_per_epoch"] == 15
    assert steps["total_optimization_steps"] == 150
    assert steps["tutorial_formula"] == 150
    (subset,) = doc["dataset"]["subsets"]
    assert subset["repeats"] == 5
    assert subset["images"] == 3
    assert subset["is_reg"] is False
    assert doc["lora"]["parameters"] == 589_824 * 32


def test_set_overrides_typed_as_toml(report, run_cli) -> None:
    result = run_cli(
        "check",
        report.plan_path,
        "--json",
        "--set",
        "training.epochs=3",
        "--set",
        "training.batch_size=2",
    )
    doc = json.loads(result.stdout)
    assert doc["steps"]["epochs"] == 3
    # batch 2 over three single-image buckets (x5 repeats): ceil(5/2) * 3 = 9 batches.
    assert doc["steps"]["batches_per_epoch"] == 9


@pytest.mark.integration  # starts a Python (or git) subprocess
def test_cli_import_stays_light() -> None:
    code = (
        "import sys, kohya_plan.cli; "
        "heavy = [m for m in ('tensorboard', 'huggingface_hub', 'psutil', 'rich', 'pydantic') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
