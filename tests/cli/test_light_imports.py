"""The command line starts fast: importing it loads none of the heavy libraries, and the
modules that use them import them only inside the functions that need them."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # each test starts a fresh Python

HEAVY = ("jinja2", "matplotlib", "tomlkit", "tensorboard", "huggingface_hub", "rich.progress")


def loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    """Which of `names` a fresh Python has in sys.modules after running `statement`."""
    code = f"import sys; {statement}; print([m for m in {names!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert loaded_after("import kohya_plan.cli", HEAVY) == []


@pytest.mark.parametrize(
    "module",
    [
        "kohya_plan.report",
        "kohya_plan.report.charts",
        "kohya_plan.report.html",
        "kohya_plan.workflows.lrfind.chart",
        "kohya_plan.workflows.lrfind.run",
        "kohya_plan.workflows.lrfind.search",
    ],
)
def test_chart_template_and_toml_libraries_load_only_when_used(module: str) -> None:
    assert loaded_after(f"import {module}", ("jinja2", "matplotlib", "tomlkit")) == []


def test_the_heavy_libraries_are_there_when_used() -> None:
    """(So that the tests above can fail: the names are the modules that really get loaded.)"""
    statement = (
        "from kohya_plan.report import render_report, ReportData; "
        "render_report(ReportData(run_dir='x', output_name='x', outcome='not launched', "
        "generated_at='now', loss_points=((1, 1.0), (2, 0.5))))"
    )
    assert loaded_after(statement, ("jinja2", "matplotlib")) == ["jinja2", "matplotlib"]
    statement = (
        "from kohya_plan.workflows.lrfind.search import new_plan_text; "
        "new_plan_text('[model]\\n', {'type': 'Lion'}, 'n')"
    )
    assert loaded_after(statement, ("tomlkit",)) == ["tomlkit"]
