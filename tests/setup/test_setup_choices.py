"""The pure decisions of `kohya-plan setup`: torch build, requirement lines, installer argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_plan.errors import UsageError
from kohya_plan.setup.choices import (
    DEFAULT_TORCH,
    PYTORCH_INDEX,
    Installer,
    build_problem,
    choose_torch,
    parse_cuda_version,
    requirement_pins,
    requirements_without_editable,
    torchvision_for,
    unmet,
)

SD_REQUIREMENTS = """accelerate==1.6.0
diffusers[torch]==0.32.1
# albumentations==1.3.0
bitsandbytes
Lion_Pytorch==0.2.3  # a comment
numpy
# for kohya_ss library
-e .
"""


@pytest.mark.parametrize(
    ("torch", "vision"), [("2.14.1", "0.29.1"), ("2.6.0", "0.21.0"), ("2.9", "0.24.0")]
)
def test_torchvision_follows_the_torch_release(torch: str, vision: str) -> None:
    assert torchvision_for(torch) == vision


def test_torch_before_2_6_is_refused_with_the_default_named() -> None:
    with pytest.raises(UsageError, match=r"2\.6 or later.*" + DEFAULT_TORCH.replace(".", r"\.")):
        choose_torch(version="2.5.1", device="auto", system="Linux", gpus=1, driver_cuda=None)


def test_linux_without_gpu_takes_pypi_and_mentions_the_cpu_build() -> None:
    choice = choose_torch(version=None, device="auto", system="Linux", gpus=0, driver_cuda=None)
    assert choice.specs == [
        f"torch=={DEFAULT_TORCH}",
        f"torchvision=={torchvision_for(DEFAULT_TORCH)}",
    ]
    assert choice.index_url is None
    assert "no NVIDIA GPU" in choice.why
    assert "--cpu" in choice.why


def test_cpu_flag_takes_pytorchs_cpu_index() -> None:
    choice = choose_torch(version="2.9.1", device="cpu", system="Linux", gpus=2, driver_cuda=None)
    assert choice.index_url == f"{PYTORCH_INDEX}/cpu"
    assert choice.specs == ["torch==2.9.1", "torchvision==0.24.1"]


def test_windows_cuda_picks_the_newest_build_the_driver_runs() -> None:
    choice = choose_torch(
        version=None, device="auto", system="Windows", gpus=1, driver_cuda=(12, 7)
    )
    assert choice.index_url == f"{PYTORCH_INDEX}/cu126"
    with pytest.raises(UsageError, match="update the driver"):
        choose_torch(version=None, device="cuda", system="Windows", gpus=1, driver_cuda=(11, 8))


def test_linux_cuda_uses_pypi_and_an_index_given_wins() -> None:
    assert (
        choose_torch(version=None, device="cuda", system="Linux", gpus=1, driver_cuda=(13, 0))
    ).index_url is None
    url = "https://mirror.example/whl/cu124"
    choice = choose_torch(
        version=None, device="auto", system="Linux", gpus=0, driver_cuda=None, index_url=url
    )
    assert choice.index_url == url
    assert url in choice.key


def test_cuda_version_is_read_from_nvidia_smis_banner() -> None:
    banner = "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |"
    assert parse_cuda_version(banner) == (12, 4)
    assert parse_cuda_version("no banner") is None


def test_requirements_lose_only_the_editable_line() -> None:
    text = requirements_without_editable(SD_REQUIREMENTS)
    assert "-e ." not in text
    assert "accelerate==1.6.0" in text
    assert text.count("\n") == SD_REQUIREMENTS.count("\n") - 1


def test_pins_normalize_names_and_keep_unpinned_ones() -> None:
    pins = requirement_pins(SD_REQUIREMENTS)
    assert pins == {
        "accelerate": "1.6.0",
        "diffusers": "0.32.1",
        "bitsandbytes": None,
        "lion-pytorch": "0.2.3",
        "numpy": None,
    }


def test_unmet_names_missing_and_wrong_versions_and_ignores_local_labels() -> None:
    pins = {"accelerate": "1.6.0", "torch": "2.14.1", "numpy": None, "diffusers": "0.32.1"}
    installed = {"accelerate": "1.7.0", "torch": "2.14.1+cu130", "numpy": "2.4.6"}
    assert unmet(pins, installed) == ["accelerate 1.7.0 (wants 1.6.0)", "diffusers missing"]


def test_pip_and_uv_argv() -> None:
    python = Path("/v/bin/python")
    pip = Installer("pip", find_links=("/w",), no_index=True)
    assert pip.install_argv(python, ["torch==2.14.1"], index_url="https://x") == [
        "/v/bin/python",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-index",
        "--find-links",
        "/w",
        "torch==2.14.1",
    ]
    uv = Installer("uv", uv="/usr/bin/uv")
    assert uv.install_argv(python, ["x"], editable=Path("/sd"), index_url="https://i") == [
        "/usr/bin/uv",
        "pip",
        "install",
        "--python",
        "/v/bin/python",
        "--index-url",
        "https://i",
        "-e",
        "/sd",
        "x",
    ]
    assert uv.venv_argv("python3.11", Path("/v")) == [
        "/usr/bin/uv",
        "venv",
        "--python",
        "python3.11",
        "/v",
    ]
    assert pip.venv_argv("python3.11", Path("/v")) == ["python3.11", "-m", "venv", "/v"]


def test_a_torch_of_the_right_version_but_another_build_is_named() -> None:
    """`setup --cpu` over a CUDA torch of the same version: "already right" would be a lie
    (pip itself counts it as installed, so the step reinstalls it)."""
    cpu = choose_torch(version=None, device="cpu", system="Linux", gpus=0, driver_cuda=None)
    cuda_torch = {"torch": "2.14.1+cu130", "torchvision": "0.29.1+cu130"}
    problem = build_problem(cpu, cuda_torch)
    assert problem is not None
    assert "torch 2.14.1+cu130 is the +cu130 build, wants +cpu" in problem
    assert build_problem(cpu, {"torch": "2.14.1+cpu"}) is None
    assert "a build without a tag (PyPI's)" in (build_problem(cpu, {"torch": "2.14.1"}) or "")
    # PyPI's default index names no build: any build of the version is right
    auto = choose_torch(version=None, device="auto", system="Linux", gpus=0, driver_cuda=None)
    assert auto.index_url is None
    assert build_problem(auto, cuda_torch) is None


def test_a_wrong_build_is_reinstalled() -> None:
    python = Path("/v/bin/python")
    pip = Installer("pip").install_argv(python, ["torch==2.14.1"], reinstall=("torch",))
    assert pip[-3:] == ["--force-reinstall", "--no-deps", "torch==2.14.1"]
    uv = Installer("uv", uv="/bin/uv").install_argv(python, ["torch==2.14.1"], reinstall=("torch",))
    assert uv[-3:] == ["--reinstall-package", "torch", "torch==2.14.1"]
    assert "--force-reinstall" not in Installer("pip").install_argv(python, ["torch==2.14.1"])
