"""This machine's GPUs, RAM and disk (the advice about a plan on them is `checks.hardware`).

`parse_nvidia_smi` is pure; `detect` is the I/O edge (nvidia-smi through `kohya_plan.run`,
psutil, the output folder's disk).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20
NVIDIA_SMI = "nvidia-smi"
QUERY_FIELDS = ("index", "name", "memory.total", "memory.free", "compute_cap")
# Drivers before R510 do not know compute_cap (`Field "compute_cap" is not a valid field`).
QUERY_FIELDS_OLD = QUERY_FIELDS[:-1]
SMI_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Gpu:
    """One NVIDIA GPU as nvidia-smi reports it (memory in MiB; None where it says N/A)."""

    index: int
    name: str
    memory_mib: int | None
    free_mib: int | None
    compute_capability: tuple[int, int] | None

    @property
    def memory_gib(self) -> float | None:
        return None if self.memory_mib is None else self.memory_mib / 1024

    @property
    def capability_text(self) -> str | None:
        cap = self.compute_capability
        return None if cap is None else f"{cap[0]}.{cap[1]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "memory_mib": self.memory_mib,
            "free_mib": self.free_mib,
            "compute_capability": self.capability_text,
        }


@dataclass(frozen=True, slots=True)
class Hardware:
    """What `detect` found; None where it could not be measured."""

    gpus: tuple[Gpu, ...]
    ram_total_bytes: int | None
    ram_available_bytes: int | None
    disk_free_bytes: int | None
    disk_path: Path | None
    gpu_note: str = ""  # why there is no GPU list: nvidia-smi missing, failed, …

    def to_json(self) -> dict[str, Any]:
        """The `hardware` key of `check --json`."""
        return {
            "gpus": [gpu.to_json() for gpu in self.gpus],
            "gpu_note": self.gpu_note or None,
            "ram": {
                "total_bytes": self.ram_total_bytes,
                "available_bytes": self.ram_available_bytes,
            },
            "disk": {
                "path": None if self.disk_path is None else str(self.disk_path),
                "free_bytes": self.disk_free_bytes,
            },
        }


# --- nvidia-smi ---------------------------------------------------------------------------

_NA = re.compile(r"^\[?(n/?a|not supported|unknown error|insufficient permissions)\]?$", re.I)
_CAP = re.compile(r"^(\d+)\.(\d+)$")


def _number(text: str) -> int | None:
    text = text.strip()
    if _NA.match(text):
        return None
    try:
        return round(float(text))
    except ValueError:
        return None


def _capability(text: str) -> tuple[int, int] | None:
    match = _CAP.match(text.strip())
    return (int(match[1]), int(match[2])) if match else None


def parse_nvidia_smi(csv_text: str, *, with_compute_cap: bool = True) -> list[Gpu]:
    """GPUs from `nvidia-smi --query-gpu=index,name,memory.total,memory.free[,compute_cap]
    --format=csv,noheader,nounits`; lines that are not such rows (errors, garbage) are skipped.
    """
    columns = len(QUERY_FIELDS) if with_compute_cap else len(QUERY_FIELDS_OLD)
    gpus: list[Gpu] = []
    for line in csv_text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < columns or not fields[0].isdigit():
            continue
        # A name with a comma in it comes back in pieces: everything between index and memory.
        tail = fields[-(columns - 2) :]
        name = ", ".join(fields[1 : len(fields) - (columns - 2)]).strip()
        total, free = _number(tail[0]), _number(tail[1])
        if not name or (total is None and not _NA.match(tail[0])):
            continue
        cap = _capability(tail[2]) if with_compute_cap else None
        gpus.append(Gpu(int(fields[0]), name, total, free, cap))
    return gpus


def _run_smi(exe: str, fields: tuple[str, ...], timeout_s: float) -> tuple[int, str]:
    from kohya_plan.run.capture import capture

    argv = [exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
    return capture(argv, timeout_s)


def query_gpus(timeout_s: float = SMI_TIMEOUT_S) -> tuple[tuple[Gpu, ...], str]:
    """The GPUs nvidia-smi lists, and a note when it lists none (never raises)."""
    exe = shutil.which(NVIDIA_SMI)
    if exe is None:
        return (), "nvidia-smi is not on PATH (no NVIDIA driver found)"
    try:
        code, out = _run_smi(exe, QUERY_FIELDS, timeout_s)
        with_cap = True
        if code != 0 and "compute_cap" in out:
            code, out = _run_smi(exe, QUERY_FIELDS_OLD, timeout_s)
            with_cap = False
    except TimeoutError:
        return (), f"nvidia-smi did not answer within {timeout_s:g} s"
    except OSError as exc:
        return (), f"nvidia-smi could not be run ({exc.strerror or exc})"
    gpus = tuple(parse_nvidia_smi(out, with_compute_cap=with_cap))
    if gpus:
        return gpus, ""
    first = next((line.strip() for line in out.splitlines() if line.strip()), "")
    return (), f"nvidia-smi found no GPU ({first[:200] or f'exit status {code}'})"


# --- RAM and disk -------------------------------------------------------------------------


def _ram() -> tuple[int | None, int | None]:
    try:
        import psutil  # only here: the CLI starts without it
    except ImportError:
        return None, None
    try:
        memory = psutil.virtual_memory()
    except (OSError, RuntimeError):
        return None, None
    return int(memory.total), int(memory.available)


def existing_parent(path: Path) -> Path:
    """The path itself if it exists, else its nearest existing parent (where files will go)."""
    path = path.expanduser().resolve()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path  # pragma: no cover - a root always exists


def detect(path_for_disk: Path, *, timeout_s: float = SMI_TIMEOUT_S) -> Hardware:
    """Measure this machine: nvidia-smi (only if on PATH), RAM, free space where outputs go."""
    gpus, note = query_gpus(timeout_s)
    total, available = _ram()
    where = existing_parent(path_for_disk)
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return Hardware(gpus, total, available, None, None, note)
    return Hardware(gpus, total, available, free, where, note)
