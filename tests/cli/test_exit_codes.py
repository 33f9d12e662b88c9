"""Exit codes by kind, and the traceback that only --debug shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from click.testing import CliRunner

from kohya_plan import errors, templates
from kohya_plan.cli import cli

if TYPE_CHECKING:
    import pytest


def _broken(*args: object, **kwargs: object) -> object:
    msg = "the templates folder vanished"
    raise RuntimeError(msg)


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "list_templates", _broken)
    result = CliRunner().invoke(cli, ["templates"])
    assert result.exit_code == errors.EXIT_INTERNAL == 1
    assert "kohya-plan failed unexpectedly (RuntimeError: the templates folder vanished)" in (
        result.output
    )
    assert "--debug" in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "list_templates", _broken)
    result = CliRunner().invoke(cli, ["--debug", "templates"])
    assert isinstance(result.exception, RuntimeError)
    assert result.exit_code == 1


def test_debug_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "list_templates", _broken)
    monkeypatch.setenv("KOHYA_PLAN_DEBUG", "1")
    result = CliRunner().invoke(cli, ["templates"])
    assert isinstance(result.exception, RuntimeError)


def test_a_plan_error_is_exit_2_and_debug_keeps_its_type(tmp_path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("[model]\nbase = 1\n")
    result = CliRunner().invoke(cli, ["check", str(plan)])
    assert result.exit_code == errors.EXIT_USAGE == 2
    assert "model.base" in result.output
    result = CliRunner().invoke(cli, ["--debug", "check", str(plan)])
    assert isinstance(result.exception, errors.PlanError)


def test_help_documents_the_exit_codes() -> None:
    text = CliRunner().invoke(cli, ["--help"]).output
    for code in ("0 ", "1 ", "2 ", "3 ", "130"):
        assert f"\n    {code}" in text
