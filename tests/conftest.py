"""Shared fixtures: the CLI runner, plan/dataset builders, and golden-file refresh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from kohya_plan.cli import cli

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/golden/* from the current output instead of comparing.",
    )


@pytest.fixture(autouse=True)
def offline_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reaches the Hugging Face Hub: a private, offline HF_HOME holding a fake SD1.5
    repo and the CLIP tokenizer (what the templates and most test plans name)."""
    import huggingface_hub.constants
    from helpers import fake_hub

    home = tmp_path_factory.mktemp("hf-home")  # not in tmp_path: tests list that folder
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    fake_hub(home)
    return home


@pytest.fixture(autouse=True)
def no_managed_installation(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test finds a `kohya-plan setup` installation of this machine's user: an empty home."""
    home = tmp_path_factory.mktemp("kohya-plan-home")
    monkeypatch.setenv("KOHYA_PLAN_HOME", str(home))
    return home


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Invoke `kohya-plan ARGS...`; exceptions propagate so a traceback fails the test."""
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke
