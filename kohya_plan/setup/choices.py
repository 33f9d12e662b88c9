"""Pure decisions of `kohya-plan setup`: which torch, which installer commands, which lines.

Nothing here touches the disk or starts a process, so every rule is tested directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kohya_plan.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

Device = Literal["auto", "cuda", "cpu"]
InstallerKind = Literal["uv", "pip"]

# The pair this kohya-plan release was tested with (its selftest and e2e tests ran on it).
DEFAULT_TORCH = "2.14.1"
# sd-scripts' README at the pinned commit: "PyTorch 2.6.0 or later is required".
MIN_TORCH = (2, 6)
PYTORCH_INDEX = "https://download.pytorch.org/whl"
# CUDA builds PyTorch publishes for Windows (PyPI's Windows wheels are CPU-only), newest last.
_WINDOWS_CUDA_TAGS = ((12, 4), (12, 6), (12, 8), (13, 0))
# kohya-plan's own additions to sd-scripts' requirements: DAdaptation for `lr-find`
# (sd-scripts imports it only when a DAdapt* optimizer is chosen, and does not list it).
EXTRAS = ("dadaptation==3.2",)
GITHUB_URL = "https://github.com/kohya-ss/sd-scripts.git"

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[+.].*)?$")
_EDITABLE = re.compile(r"^\s*(-e|--editable)(\s|=|\.|$)")
_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(?:==\s*([^\s;,#]+))?"
)


def normalize(name: str) -> str:
    """A distribution name as package indexes compare it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """(major, minor[, patch]) of a version like 2.14.1+cu130; () when it is not one."""
    match = _VERSION.match(version.strip())
    if match is None:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def torchvision_for(torch: str) -> str:
    """The torchvision release made for a torch release (2.X.Y → 0.(X+15).Y)."""
    parts = release(torch)
    if len(parts) < 2 or parts[0] != 2:
        msg = f"--torch {torch}: give a PyTorch 2 release such as {DEFAULT_TORCH}"
        raise UsageError(msg)
    patch = parts[2] if len(parts) > 2 else 0
    return f"0.{parts[1] + 15}.{patch}"


@dataclass(frozen=True, slots=True)
class TorchChoice:
    """The torch and torchvision to install, from which index, and why."""

    torch: str
    torchvision: str
    index_url: str | None
    why: str

    @property
    def specs(self) -> list[str]:
        return [f"torch=={self.torch}", f"torchvision=={self.torchvision}"]

    @property
    def key(self) -> str:
        """What a finished torch step is remembered by."""
        return " ".join(self.specs) + (f" @ {self.index_url}" if self.index_url else "")


def choose_torch(
    *,
    version: str | None,
    device: Device,
    system: str,
    gpus: int,
    driver_cuda: tuple[int, int] | None,
    index_url: str | None = None,
) -> TorchChoice:
    """The torch build for this machine.

    `system` is platform.system(); `gpus` the NVIDIA GPUs nvidia-smi lists; `driver_cuda`
    the newest CUDA the driver runs (nvidia-smi's "CUDA Version"). On Linux PyPI's wheels
    are CUDA builds that also run on the CPU, so they are the default; `--cpu` takes
    PyTorch's much smaller CPU-only build instead.
    """
    torch = version or DEFAULT_TORCH
    parts = release(torch)
    if len(parts) >= 2 and parts[:2] < MIN_TORCH:
        msg = (
            f"--torch {torch}: sd-scripts needs PyTorch {MIN_TORCH[0]}.{MIN_TORCH[1]} or later "
            f"— leave --torch out for {DEFAULT_TORCH}"
        )
        raise UsageError(msg)
    vision = torchvision_for(torch)
    if device == "auto":
        device = "cuda" if gpus else "cpu"
        found = f"{gpus} NVIDIA GPU(s) found" if gpus else "no NVIDIA GPU found"
        if device == "cpu" and system == "Linux" and index_url is None:
            why = (
                f"{found}: PyPI's default build (it runs on the CPU too; `--cpu` takes "
                "PyTorch's smaller CPU-only build)"
            )
            return TorchChoice(torch, vision, None, why)
    else:
        found = f"--{device}"
    if index_url is not None:
        return TorchChoice(torch, vision, index_url, f"{found}: the index given (--torch-index)")
    if system == "Darwin":
        return TorchChoice(torch, vision, None, f"{found}: PyPI's macOS build (MPS or CPU)")
    if device == "cpu":
        return TorchChoice(
            torch, vision, f"{PYTORCH_INDEX}/cpu", f"{found}: PyTorch's CPU-only build"
        )
    if system == "Windows":
        tag = _windows_cuda_tag(driver_cuda)
        url = f"{PYTORCH_INDEX}/cu{tag[0]}{tag[1]}"
        return TorchChoice(torch, vision, url, f"{found}: PyTorch's CUDA {tag[0]}.{tag[1]} build")
    return TorchChoice(torch, vision, None, f"{found}: PyPI's CUDA build")


def _windows_cuda_tag(driver_cuda: tuple[int, int] | None) -> tuple[int, int]:
    if driver_cuda is None:
        return _WINDOWS_CUDA_TAGS[-2]
    fitting = [tag for tag in _WINDOWS_CUDA_TAGS if tag <= driver_cuda]
    if not fitting:
        oldest = _WINDOWS_CUDA_TAGS[0]
        msg = (
            f"the NVIDIA driver runs CUDA {driver_cuda[0]}.{driver_cuda[1]}, older than any "
            f"PyTorch build here (CUDA {oldest[0]}.{oldest[1]} and later) — update the driver, "
            "or give an index with --torch-index"
        )
        raise UsageError(msg)
    return fitting[-1]


def parse_cuda_version(nvidia_smi_text: str) -> tuple[int, int] | None:
    """The driver's CUDA version from nvidia-smi's banner ("CUDA Version: 12.4")."""
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", nvidia_smi_text)
    return (int(match.group(1)), int(match.group(2))) if match else None


# --- requirements -----------------------------------------------------------------------------


def requirements_without_editable(text: str) -> str:
    """sd-scripts' requirements.txt less its `-e .` line (it is installed on its own, last)."""
    lines = [line for line in text.splitlines() if not _EDITABLE.match(line)]
    return "\n".join(lines) + "\n"


def requirement_pins(text: str) -> dict[str, str | None]:
    """Normalized name → pinned version (None when unpinned) for each requirement line."""
    pins: dict[str, str | None] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _REQUIREMENT.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(3)
    return pins


def unmet(pins: dict[str, str | None], installed: dict[str, str]) -> list[str]:
    """Requirements the installed distributions (normalized name → version) do not meet."""
    problems = []
    for name, want in pins.items():
        got = installed.get(name)
        if got is None:
            problems.append(f"{name} missing")
        elif want is not None and got.split("+")[0] != want.split("+")[0]:
            problems.append(f"{name} {got} (wants {want})")
    return problems


_BUILD_TAG = re.compile(r"^(cpu|cu\d+|rocm[\d.]+)$")


def build_problem(choice: TorchChoice, installed: dict[str, str]) -> str | None:
    """Why the installed torch is not the build `choice` asks for (None when it is, or when
    the choice names no build: PyPI's default index).

    PyTorch's indexes tag their wheels (``2.14.1+cpu``, ``+cu128``); a torch of the right
    version from another index is a different build (a CUDA torch where ``--cpu`` was asked
    for is ~2 GB more; a CPU torch where a GPU should train cannot use it).
    """
    if choice.index_url is None:
        return None
    tag = choice.index_url.rstrip("/").rsplit("/", 1)[-1]
    if not _BUILD_TAG.match(tag):
        return None  # another index (--torch-index): its own naming
    got = installed.get("torch")
    if got is None:
        return None  # `unmet` says it is missing
    local = got.partition("+")[2]
    if local == tag:
        return None
    build = f"the +{local} build" if local else "a build without a tag (PyPI's)"
    return f"torch {got} is {build}, wants +{tag} ({choice.why})"


# --- installer commands -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Installer:
    """uv when it is on PATH (much faster), else pip inside the venv."""

    kind: InstallerKind
    uv: str | None = None
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def venv_argv(self, base_python: str, venv: Path) -> list[str]:
        """Create a virtual environment at `venv` for `base_python`."""
        if self.kind == "uv":
            assert self.uv is not None
            return [self.uv, "venv", "--python", base_python, str(venv)]
        return [base_python, "-m", "venv", str(venv)]

    def install_argv(
        self,
        python: Path,
        packages: Sequence[str] = (),
        *,
        requirements: Path | None = None,
        editable: Path | None = None,
        index_url: str | None = None,
        reinstall: Sequence[str] = (),
    ) -> list[str]:
        """Install into the venv whose interpreter is `python` (`reinstall`: these packages
        even where the same version is installed, e.g. torch from another build)."""
        if self.kind == "uv":
            assert self.uv is not None
            argv = [self.uv, "pip", "install", "--python", str(python)]
            for name in reinstall:
                argv += ["--reinstall-package", name]
        else:
            argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
            if reinstall:
                # pip has no per-package form; the packages given are the ones reinstalled
                argv += ["--force-reinstall", "--no-deps"]
        if self.no_index:
            argv.append("--no-index")
        elif index_url is not None:
            argv += ["--index-url", index_url]
        for link in self.find_links:
            argv += ["--find-links", link]
        if requirements is not None:
            argv += ["-r", str(requirements)]
        if editable is not None:
            argv += ["-e", str(editable)]
        return argv + list(packages)
