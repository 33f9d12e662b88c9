"""Every numeric command-line option refuses NaN, infinity, negative and absurd values: exit 2,
a message naming the option and the range, no traceback, nothing written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from helpers import base_plan, make_images, write_plan

if TYPE_CHECKING:
    from pathlib import Path

BAD = ["nan", "NaN", "inf", "-inf", "-1", "1e9", "abc", "1e999", ""]


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    return write_plan(tmp_path, base_plan())


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("launch", "--grace"),
        ("launch", "--stall-timeout"),
        ("stop", "--timeout"),
        ("lr-find", "--te-ratio"),
        ("lr-find", "--steps"),
        ("board", "--port"),
    ],
)
def test_a_bad_number_is_a_usage_error(
    tmp_path: Path, plan: Path, run_cli, command: str, option: str, value: str
) -> None:
    target = tmp_path if command in ("stop", "board") else plan
    result = run_cli(command, target, f"{option}={value}")
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nan", "not a finite duration"),
        ("-5", "out of range: give 0 s to 1 h"),
        ("2h", "out of range: give 0 s to 1 h"),
        ("soon", "give seconds (90), or 90s, 30m, 2h"),
    ],
)
def test_grace_says_what_it_takes(plan: Path, run_cli, value: str, message: str) -> None:
    result = run_cli("launch", plan, "--grace", value)
    assert result.exit_code == 2
    assert message in result.output


def test_stall_timeout_takes_units_and_zero(plan: Path, run_cli) -> None:
    from kohya_plan.cli import Seconds

    stall = Seconds(1, 7 * 86400, off=True)
    assert stall.convert("30m", None, None) == 1800.0
    assert stall.convert("1.5h", None, None) == 5400.0
    assert stall.convert("0", None, None) == 0.0
    assert stall.convert("90s", None, None) == 90.0
    result = run_cli("launch", plan, "--stall-timeout", "8d")
    assert result.exit_code == 2
    assert "is not a duration" in result.output
