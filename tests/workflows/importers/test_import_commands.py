"""Pasted training commands: POSIX, PowerShell (backtick) and cmd (^) continuations, quoting,
accelerate's flags, --config_file/--dataset_config, and options sd-scripts would refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kohya_plan.cli import cli
from kohya_plan.workflows.importers.sd_scripts import parse_script_args, split_command

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "importers"


def paste(text: str, *args: Any) -> Result:
    """`kohya-plan import - ARGS` with `text` on stdin."""
    argv = ["import", "-", *(str(a) for a in args)]
    return CliRunner().invoke(cli, argv, input=text, catch_exceptions=False)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        (
            "accelerate launch train_network.py --output_name 'my lora'",
            ["accelerate", "launch", "train_network.py", "--output_name", "my lora"],
        ),
        (
            "accelerate launch \\\n  train_network.py \\\n  --seed 1",
            ["accelerate", "launch", "train_network.py", "--seed", "1"],
        ),
        (
            "& 'C:\\py\\python.exe' -m accelerate.commands.launch `\n"
            "  'C:\\sd\\train_network.py' `\n"
            "  --output_dir 'D:\\out dir' --output_name 'it''s'",
            [
                "&",
                "C:\\py\\python.exe",
                "-m",
                "accelerate.commands.launch",
                "C:\\sd\\train_network.py",
                "--output_dir",
                "D:\\out dir",
                "--output_name",
                "it's",
            ],
        ),
        (
            'python train_network.py ^\n  --train_data_dir "C:\\data\\images" ^\n  --seed 3',
            ["python", "train_network.py", "--train_data_dir", "C:\\data\\images", "--seed", "3"],
        ),
    ],
    ids=["posix-quotes", "posix-continuation", "powershell", "cmd"],
)
def test_split_command(text: str, tokens: list[str]) -> None:
    assert split_command(text) == [tokens]


def test_several_commands_on_one_line_are_split() -> None:
    commands = split_command("cd sd-scripts && accelerate launch train_network.py --seed 1")
    assert commands == [
        ["cd", "sd-scripts"],
        ["accelerate", "launch", "train_network.py", "--seed", "1"],
    ]


def test_script_flags_are_typed_as_argparse_types_them() -> None:
    values = parse_script_args(
        [
            "--network_dim",
            "8",
            "--learning_rate",
            "1e-4",
            "--lr_warmup_steps",
            "10%",
            "--optimizer_args",
            "weight_decay=0.01",
            "betas=0.9,0.99",
            "--xformers",
            "--network_alp",
            "4",
        ],
        "train_network.py",
    )
    assert values["network_dim"].value == 8
    assert values["learning_rate"].value == 1e-4
    assert values["lr_warmup_steps"].value == 0.1  # sd-scripts' int_or_float: a percent
    assert values["optimizer_args"].value == ["weight_decay=0.01", "betas=0.9,0.99"]
    assert values["xformers"].value is True
    assert values["network_alpha"].value == 4.0  # argparse accepts unique abbreviations


def test_pasted_powershell_command_imports(tmp_path: Path) -> None:
    text = (FIXTURES / "command-powershell.txt").read_text("utf-8")
    target = tmp_path / "plan.toml"
    result = paste(text, "-o", target, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_source = {r["source"]: r for r in data["records"]}
    assert by_source["--output_name"]["value"] == "my lora"
    assert by_source["--train_data_dir"]["value"] == "D:/Training/images"
    assert by_source["--lr_warmup_steps"]["value"] == 0.1
    assert by_source["--optimizer_args"]["value"] == {"weight_decay": 0.01, "betas": [0.9, 0.99]}
    assert by_source["python"]["value"] == "C:\\kohya\\venv\\Scripts\\python.exe"
    assert by_source["script path"]["value"] == "C:/kohya/sd-scripts"
    assert by_source["accelerate --num_cpu_threads_per_process"]["plan_key"] == (
        "launch.num_cpu_threads_per_process"
    )
    assert by_source["--noise_offset"]["kind"] == "extra"
    text = target.read_text("utf-8")
    assert 'name = "my lora" # ← --output_name' in text
    assert 'attention = "xformers" # ← --xformers' in text


def test_command_with_config_file_and_dataset_config(tmp_path: Path, run_cli: Any) -> None:
    folder = tmp_path / "work"
    shutil.copytree(FIXTURES, folder)
    (folder / "images" / "20_style").mkdir(parents=True)
    target = tmp_path / "plan.toml"
    result = run_cli("import", folder / "command-posix.sh", "-o", target, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_source = {r["source"]: r for r in data["records"]}
    # Command-line flags win over the config file (argparse after read_config_from_file).
    assert by_source["--learning_rate"]["value"] == 2e-4
    assert by_source["config_file: training_arguments.learning_rate"]["kind"] == "dropped"
    assert by_source["sdxl_train_network.py"]["value"] == "sdxl"
    # networks.lora takes one text-encoder LR: train_network.py keeps the first
    te_lr = by_source["config_file: training_arguments.text_encoder_lr"]
    assert te_lr["value"] == 4e-5
    assert "keeps only the first of 4e-05, 2e-05" in te_lr["reason"]
    subset = by_source["dataset_config: datasets[0].subsets[0].image_dir"]
    assert Path(subset["value"]) == folder / "images" / "20_style"
    assert by_source["accelerate --num_processes"]["value"] == 2
    assert by_source["accelerate --gpu_ids"]["value"] == "0,1"
    assert by_source["accelerate --multi_gpu"]["kind"] == "dropped"
    assert by_source["dataset_config: general.keep_tokens_separator"]["plan_key"] == (
        "launch.extra.keep_tokens_separator"
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("accelerate launch train_network.py --learnig_rate 1e-4", "--learnig_rate"),
        ("accelerate launch train_network.py --network_dim eight", "--network_dim"),
        ("accelerate launch train_network.py --lr_scheduler", "--lr_scheduler"),
        ("accelerate launch train_db.py --learning_rate 1e-6", "train_db.py"),
        ("echo hello", "command"),
    ],
    ids=["unknown-option", "not-a-number", "no-value", "dreambooth-script", "no-script"],
)
def test_bad_command_exits_2_naming_the_option(tmp_path: Path, text: str, named: str) -> None:
    target = tmp_path / "plan.toml"
    result = paste(text, "-o", target, "--format", "command")
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output
    assert not target.exists()


def test_unknown_option_suggests_the_real_one(tmp_path: Path) -> None:
    text = "accelerate launch train_network.py --learnig_rate 1e-4"
    result = paste(text, "-o", tmp_path / "p.toml")
    assert 'did you mean "--learning_rate"?' in result.output


def test_a_multi_machine_command_keeps_its_machine_flags(tmp_path: Path) -> None:
    text = (
        "accelerate launch --config_file acc.yaml --multi_gpu --num_processes 8 --num_machines 2 "
        "--machine_rank 1 --main_process_ip 10.0.0.1 --main_process_port 29555 --same_network "
        "--rdzv_backend static --rdzv_conf timeout=60 train_network.py "
        "--pretrained_model_name_or_path org/model --train_data_dir /data --output_name x"
    )
    result = paste(text, "-o", tmp_path / "plan.toml", "--json")
    assert result.exit_code == 0, result.output
    by_source = {r["source"]: r for r in json.loads(result.output)["records"]}
    expected = {
        "accelerate --machine_rank": ("launch.machine_rank", 1),
        "accelerate --main_process_ip": ("launch.main_process_ip", "10.0.0.1"),
        "accelerate --same_network": ("launch.same_network", True),
        "accelerate --rdzv_backend": ("launch.rdzv_backend", "static"),
        "accelerate --rdzv_conf": ("launch.rdzv_timeout", 60),
        "accelerate --num_processes": ("launch.num_processes", 8),
    }
    for source, (key, value) in expected.items():
        assert (by_source[source]["plan_key"], by_source[source]["value"]) == (key, value)
    assert by_source["accelerate --config_file"]["kind"] == "dropped"
