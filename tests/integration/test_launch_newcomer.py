"""What a newcomer hits at `launch`, with real processes: an interpreter without accelerate (or
torch, or sd-scripts' requirements) is named with the command that fixes it, not "exit status
1"; a run that failed at step 0 prints no loss remarks."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import base_plan, make_images, write_plan

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parent / "fake_trainer.py"
LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
LOSS_REMARK = "loss alone says little"


def _project(tmp_path: Path, python: str) -> Path:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("# never reached\n")
    return write_plan(tmp_path, base_plan(launch={"sd_scripts": str(sd), "python": python}))


def _summary(tmp_path: Path) -> dict:
    (run_dir,) = (tmp_path / "runs").iterdir()
    return json.loads((run_dir / "summary.json").read_text())


def test_an_interpreter_without_accelerate_is_named_with_the_fix(tmp_path: Path, run_cli) -> None:
    """A bare virtual environment: stdlib only, so `-m accelerate.commands.launch` fails."""
    venv = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    result = run_cli("launch", _project(tmp_path, str(python)), "--plain")
    assert result.exit_code == 3, result.output
    summary = _summary(tmp_path)
    assert summary["cause"]["kind"] == "missing_package"
    assert "accelerate" in summary["cause"]["message"]
    assert "Cause: missing_package" in result.output
    assert "kohya-plan setup" in result.output
    assert "scripts/setup-sd-scripts" in result.output
    assert "Cause: exit: exit status 1" not in result.output
    assert LOSS_REMARK not in result.output  # it never took a step


@pytest.mark.parametrize(
    ("fixture", "module"), [("run16_no_torch", "torch"), ("run17_no_requirement", "voluptuous")]
)
def test_a_missing_requirement_is_named_with_the_fix(
    tmp_path: Path, run_cli, fixture: str, module: str
) -> None:
    """Real output of accelerate without torch, and of sd-scripts without voluptuous."""
    wrapper = tmp_path / "fake-python"
    args = [sys.executable, str(FAKE), "--replay", str(LOGS / f"{fixture}.stderr.txt")]
    wrapper.write_text("#!/bin/sh\nexec " + shlex.join([*args, "--exit-code", "1"]) + "\n")
    wrapper.chmod(0o755)
    result = run_cli("launch", _project(tmp_path, str(wrapper)), "--plain")
    assert result.exit_code == 3, result.output
    summary = _summary(tmp_path)
    assert summary["cause"]["kind"] == "missing_package"
    assert f"No module named '{module}'" in summary["cause"]["message"]
    assert "kohya-plan setup" in summary["cause"]["advice"]
    assert "see the lines below" not in result.output
    assert LOSS_REMARK not in result.output
    assert "avr_loss" not in result.output
