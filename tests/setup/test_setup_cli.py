"""The setup, doctor and selftest commands as a person runs them, on a deliberately broken
environment: a venv with a too-old torch and no accelerate, a stale accelerate config, and
sd-scripts at another commit than kohya-plan's snapshot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from setup_fakes import make_mirror, make_wheel

from kohya_plan.options import sd_scripts_commit

if TYPE_CHECKING:
    from pathlib import Path

FAKE_TORCH = """__version__ = "2.4.1"
class version:
    cuda = None
    hip = None
class cuda:
    @staticmethod
    def is_available():
        return False
"""


def test_version_names_the_sd_scripts_commit(run_cli) -> None:
    from kohya_plan import __version__

    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == (
        f"kohya-plan {__version__} (for kohya-ss/sd-scripts {sd_scripts_commit()})"
    )


@pytest.mark.parametrize("command", ["setup", "doctor", "selftest"])
def test_commands_have_help_with_examples(run_cli, command: str) -> None:
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert f"kohya-plan {command}" in result.output


def test_setup_check_on_a_fresh_machine_reports_every_step_missing(tmp_path: Path, run_cli) -> None:
    home = tmp_path / "home"
    result = run_cli("setup", "--check", "--json", "--dir", home)
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["complete"] is False
    assert doc["commit"] == sd_scripts_commit()
    assert [s["name"] for s in doc["steps"]] == [
        "checkout",
        "venv",
        "torch",
        "requirements",
        "sd-scripts",
        "verify",
    ]
    assert {s["status"] for s in doc["steps"]} == {"needed"}
    assert not home.exists()


def test_bad_setup_input_exits_2_with_the_fix_and_no_traceback(tmp_path: Path, run_cli) -> None:
    result = run_cli("setup", "--dir", tmp_path, "--torch", "2.3.0", "--check")
    assert result.exit_code == 2
    assert "2.6 or later" in result.output
    assert "Traceback" not in result.output
    missing = run_cli("setup", "--dir", tmp_path, "--from", tmp_path / "nope")
    assert missing.exit_code == 2
    assert "no such folder" in missing.output
    plan = run_cli("doctor", tmp_path / "missing.toml")
    assert plan.exit_code == 2
    assert "no such plan file" in plan.output


def test_without_an_installation_check_advises_kohya_plan_setup(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import base_plan, make_images, write_plan

    from kohya_plan.inputs import trainer

    # An installed package: no vendor/sd-scripts beside it, no KOHYA_SD_SCRIPTS.
    monkeypatch.setattr(trainer, "checkout_root", lambda: tmp_path / "site-packages")
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    make_images(tmp_path / "data" / "5_x", [(512, 512)] * 2)
    data = base_plan()
    del data["launch"]
    result = run_cli("check", write_plan(tmp_path, data), "--json", "--no-hardware")
    doc = json.loads(result.output)
    advice = {a["id"]: a for a in doc["advice"] + doc["errors"]}
    assert not doc["sd_scripts"]["found"]
    assert "kohya-plan setup" in advice["sd-scripts-missing"]["fix"]
    assert "git submodule" not in advice["sd-scripts-missing"]["fix"]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real venv and checkout, broken in four ways."""
    if shutil.which("git") is None:
        pytest.skip("needs git (apt-get install git)")
    root = tmp_path_factory.mktemp("broken")
    mirror = make_mirror(root)
    wheels = root / "wheels"
    make_wheel(wheels, "torch", "2.4.1", FAKE_TORCH)
    make_wheel(wheels, "torchvision", "0.29.1")
    make_wheel(wheels, "transformers", "4.54.1")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "-f",
            str(wheels),
            "torch",
            "torchvision",
            "transformers",
        ],
        check=True,
    )
    checkout = root / "sd-scripts"
    subprocess.run(["git", "clone", "-q", str(mirror.path), str(checkout)], check=True)
    config = root / "hf" / "accelerate" / "default_config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\n"
        "num_processes: 2\ngpu_ids: 0,1\nmixed_precision: fp16\nuse_cpu: false\n"
    )
    return {"python": python, "sd_scripts": checkout, "hf_home": root / "hf", "config": config}


@pytest.mark.integration
def test_doctor_names_each_broken_piece_with_its_fix(
    broken: dict[str, Path], run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(broken["hf_home"]))
    args = ["doctor", "--python", broken["python"], "--sd-scripts", broken["sd_scripts"]]
    result = run_cli(*args, "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    found = {d["id"]: d for d in doc["diagnoses"]}
    assert found["accelerate-missing"]["status"] == "error"
    assert "pip install accelerate==1.6.0" in found["accelerate-missing"]["fix"]
    assert "2.4.1 is too old" in found["torch-version"]["message"]
    assert found["accelerate-config"]["status"] == "warn"
    assert str(broken["config"]) in found["accelerate-config"]["message"]
    assert "distributed_type" in found["accelerate-config"]["message"]
    assert found["sd-scripts-commit"]["status"] == "warn"
    assert f"checkout {sd_scripts_commit()}" in found["sd-scripts-commit"]["fix"]
    assert doc["probe"]["python"]["executable"] == str(broken["python"])

    screen = run_cli(*args)
    assert screen.exit_code == 1
    assert "✗ accelerate: not installed" in screen.output
    assert "fix: " in screen.output
    assert "problem(s) to fix before training" in screen.output


@pytest.mark.integration
def test_selftest_refuses_a_broken_installation_with_the_doctors_findings(
    broken: dict[str, Path], run_cli
) -> None:
    result = run_cli("selftest", "--python", broken["python"], "--sd-scripts", broken["sd_scripts"])
    assert result.exit_code == 1
    assert "cannot train yet" in result.output
    assert "accelerate: not installed" in result.output
    assert "Traceback" not in result.output
