"""Offline without HF_HUB_OFFLINE: `make` fails fast and says how to work offline.

huggingface_hub retries each failed request five times with back-off (1+2+4+8+8 s): an offline
machine used to wait ~24 s per file before the error. Here the network is cut by replacing the
socket functions; what is counted is the attempts to reach the Hub and the back-off sleeps, not
the clock.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_plan

from kohya_plan.inputs.hub.fetch import hub_unreachable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class Cut:
    """The network, cut: every name lookup and connection fails, and is counted."""

    def __init__(self) -> None:
        self.attempts = 0
        self.sleeps = 0


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cut]:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    cut = Cut()

    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        cut.attempts += 1
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def connect(self: socket.socket, address: Any) -> None:
        cut.attempts += 1
        raise OSError(101, "Network is unreachable")

    def sleep(seconds: float) -> None:
        cut.sleeps += 1  # huggingface_hub's back-off between retries

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(time, "sleep", sleep)
    hub_unreachable.cache_clear()
    yield cut
    hub_unreachable.cache_clear()


def _plan(root: Path, base: str) -> Path:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    return write_plan(root, base_plan(model={"base": base}))


def test_make_of_an_uncached_hub_model_fails_at_once(
    tmp_path: Path, run_cli: Any, no_network: Cut
) -> None:
    plan = _plan(tmp_path, "someone/not-in-the-cache")
    before = sorted(tmp_path.rglob("*"))
    result = run_cli("make", plan)
    assert result.exit_code == 2, result.output
    assert "could not be reached" in result.output
    assert "HF_HUB_OFFLINE=1" in result.output  # how to work offline
    assert "hf download someone/not-in-the-cache" in result.output
    # One probe (and at most huggingface_hub's own one-off lookup), never a retry loop.
    assert no_network.attempts <= 2, no_network.attempts
    assert no_network.sleeps == 0
    assert sorted(tmp_path.rglob("*")) == before


def test_a_cached_model_is_made_from_the_cache_with_the_network_down(
    tmp_path: Path, run_cli: Any, no_network: Cut
) -> None:
    """The fake Hub cache holds the SD1.5 repo and the CLIP tokenizer: nothing is fetched."""
    plan = _plan(tmp_path, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    result = run_cli("make", plan)
    assert result.exit_code == 0, result.output
    assert no_network.attempts <= 2, no_network.attempts
    assert no_network.sleeps == 0


def test_with_hf_hub_offline_nothing_is_probed(
    tmp_path: Path, run_cli: Any, no_network: Cut, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan = _plan(tmp_path, "someone/not-in-the-cache")
    result = run_cli("make", plan)
    assert result.exit_code == 2
    assert "HF_HUB_OFFLINE is set" in result.output
    assert no_network.attempts == 0
