"""Shared fixtures: the CLI runner, the guard that keeps unit tests from starting processes,
the lock that keeps heavy tests apart, an offline Hub, and golden-file refresh."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from kohya_plan.cli import cli

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Tests with one of these marks may start real processes; every other test is a unit test.
PROCESS_MARKS = frozenset({"integration", "sdscripts", "e2e", "slurm", "install", "browser"})
# Tests with one of these marks need gigabytes of RAM: they take HEAVY_LOCK one at a time,
# also across pytest processes (a developer's run and CI's, or two worktrees).
HEAVY_MARKS = frozenset({"sdscripts", "e2e", "slurm", "install"})
HEAVY_LOCK = Path(tempfile.gettempdir()) / "kohya-plan-heavy.lock"


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
def no_real_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests cannot start a process (cibuildwheel's mock_protection): a test that needs
    one says so with a mark (integration, sdscripts, e2e, slurm, install, browser)."""
    if PROCESS_MARKS.intersection(m.name for m in request.node.iter_markers()):
        return

    def refuse(*args: Any, **kwargs: Any) -> Any:
        msg = (
            f"unit test {request.node.nodeid} tried to start a process ({args[:1]!r}): "
            "mock it, or mark the test integration"
        )
        raise AssertionError(msg)

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse, raising=False)
    monkeypatch.setattr(os, "fork", refuse, raising=False)


@pytest.fixture(autouse=True)
def heavy_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    """One heavy test at a time on this machine (sd-scripts runs take 8-15 GB of RAM)."""
    if not HEAVY_MARKS.intersection(m.name for m in request.node.iter_markers()):
        yield
        return
    with HEAVY_LOCK.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.__stderr__.write(
                f"\n[{request.node.nodeid}] waiting for {HEAVY_LOCK}: another heavy test or "
                "sd-scripts run holds it (one at a time: they need most of the RAM)\n"
            )
            sys.__stderr__.flush()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def no_managed_installation(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test finds a `kohya-plan setup` installation of this machine's user: an empty home."""
    home = tmp_path_factory.mktemp("kohya-plan-home")
    monkeypatch.setenv("KOHYA_PLAN_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """kohya-plan's own cache (the deep check's verdicts) in a fresh folder, not the user's."""
    cache = tmp_path_factory.mktemp("kohya-plan-cache")
    monkeypatch.setenv("KOHYA_PLAN_CACHE_DIR", str(cache))
    return cache


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
