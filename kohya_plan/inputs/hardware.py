"""This machine's GPUs, RAM and disk, and advice about a plan on them (T9, precision, space).

`parse_nvidia_smi` and `advise` are pure; `detect` is the I/O edge (nvidia-smi, psutil,
the output folder's disk). Advice never blocks: the machine that checks a plan need not be the
one that trains it.
"""

from __future__ import annotations

import math
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

# T9 in GiB for SD1.5: at most 6 → batch 1; 12 or more → 2 to 6; between → 1 to 2. A little
# slack, because nvidia-smi shows what the driver can use (a "12 GB" card may show 11.8 GiB).
_T9_LOW_GIB = 6.5
_T9_HIGH_GIB = 11.5
# SDXL (1024², a 2.6-billion-parameter U-Net) needs about twice the memory: double the bands.
_SDXL_FACTOR = 2.0
# A card with this many times T9's upper band has room for batches above 6 (T9: larger = faster).
_ROOMY_FACTOR = 2.0
# Host RAM: SD1.5 training holds the model (~4 GB fp32) and caches; SDXL about twice that.
_RAM_MIN_GIB = {"sd15": 15.0, "sdxl": 30.0}  # "16 GB"/"32 GB" machines show a little less
_RAM_NEED_GIB = {"sd15": 8.0, "sdxl": 16.0}
# A saved state holds the LoRA weights in fp32 and the optimizer's moments: ~3× a LoRA file.
STATE_FACTOR = 3
# Room left free besides the run's files (logs, samples, the file being written).
_DISK_MARGIN = 1 * GIB


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


@dataclass(frozen=True, slots=True)
class Advice:
    """One piece of hardware advice, shaped like `checks.Finding` (id, field, message, fix)."""

    id: str
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} — {self.fix}" if self.fix else text


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


# --- advice -------------------------------------------------------------------------------


def _gib(value_bytes: float) -> str:
    gib = value_bytes / GIB
    return f"{gib:.0f} GiB" if gib >= 10 or math.isclose(gib, round(gib)) else f"{gib:.1f} GiB"


def _size(value_bytes: float) -> str:
    return _gib(value_bytes) if value_bytes >= GIB else f"{value_bytes / MIB:.0f} MiB"


def batch_range(memory_gib: float, family: str) -> tuple[int, int | None]:
    """T9's batch sizes for a card (upper bound None: more than 6 is fine on this card)."""
    factor = _SDXL_FACTOR if family == "sdxl" else 1.0
    if memory_gib <= _T9_LOW_GIB * factor:
        return 1, 1
    if memory_gib < _T9_HIGH_GIB * factor:
        return 1, 2
    if memory_gib >= _T9_HIGH_GIB * factor * _ROOMY_FACTOR:
        return 2, None
    return 2, 6


def _card(gpu: Gpu) -> str:
    memory = "" if gpu.memory_mib is None else f", {_gib(gpu.memory_mib * MIB)}"
    return f"GPU {gpu.index} ({gpu.name}{memory})"


def _batch_advice(gpu: Gpu, batch_size: int, family: str) -> list[Advice]:
    if gpu.memory_mib is None:
        return []
    gib = gpu.memory_mib / 1024
    low, high = batch_range(gib, family)
    sdxl = family == "sdxl"
    basis = (
        "T9, doubled for SDXL, which needs about twice the memory at 1024²: "
        "12 GB or less → 1, 24 GB or more → 2 to 6"
        if sdxl
        else "T9: 6 GB or less → 1, 12 GB or more → 2 to 6"
    )
    wanted = f"{low}" if low == high else f"{low} to {high}" if high else f"{low} or more"
    free = ""
    if gpu.free_mib is not None and gpu.memory_mib - gpu.free_mib > 1024:
        free = f"; {_gib(gpu.free_mib * MIB)} of it is free now"
    found: list[Advice] = []
    if high is not None and batch_size > high:
        found.append(
            Advice(
                "gpu-batch-size",
                "training.batch_size",
                f"batch_size {batch_size} on {_card(gpu)} is likely to run out of memory "
                f"({basis}){free}",
                f"set training.batch_size = {high}"
                + (" and training.gradient_checkpointing = true" if gib <= _T9_LOW_GIB else ""),
            )
        )
    elif batch_size < low:
        found.append(
            Advice(
                "gpu-batch-size",
                "training.batch_size",
                f"{_card(gpu)} has room for batch_size {wanted} ({basis}); "
                "a larger batch trains faster",
                f"try training.batch_size = {low} (T6: fewer steps per epoch, so check the "
                "step count again)",
            )
        )
    if sdxl and gib < _T9_HIGH_GIB:
        found.append(
            Advice(
                "gpu-batch-size",
                "training.gradient_checkpointing",
                f"SDXL LoRA training on {_card(gpu)} is tight even at batch 1",
                "keep batch_size = 1, set training.gradient_checkpointing = true and "
                "training.cache_latents = true, and launch.extra.cache_text_encoder_outputs "
                "= true",
            )
        )
    return found


def _precision_advice(gpu: Gpu, mixed_precision: str) -> list[Advice]:
    cap = gpu.compute_capability
    field = "training.mixed_precision"
    if mixed_precision == "no":
        better = "bf16" if cap is not None and cap >= (8, 0) else "fp16"
        return [
            Advice(
                "gpu-precision",
                field,
                f'mixed_precision "no" trains in fp32 on {_card(gpu)}: about twice the memory '
                "and much slower",
                f'set training.mixed_precision = "{better}"',
            )
        ]
    if cap is None:
        return []
    if mixed_precision == "bf16" and cap < (8, 0):
        return [
            Advice(
                "gpu-precision",
                field,
                f"{_card(gpu)} has compute capability {gpu.capability_text}; bf16 needs 8.0 or "
                "later (Ampere: RTX 30xx, A100 and newer) and fails or runs emulated and slow",
                'set training.mixed_precision = "fp16"',
            )
        ]
    if mixed_precision == "fp16" and cap < (6, 0):
        return [
            Advice(
                "gpu-precision",
                field,
                f"{_card(gpu)} has compute capability {gpu.capability_text}; fp16 is slow "
                "before 6.0 (Pascal) and current PyTorch builds may not support the card",
                "train on a newer GPU if you can",
            )
        ]
    return []


def _no_gpu_advice(hw: Hardware, mixed_precision: str, optimizer: str | None) -> list[Advice]:
    why = f" ({hw.gpu_note})" if hw.gpu_note else ""
    found = [
        Advice(
            "no-gpu",
            "",
            f"no NVIDIA GPU found on this machine{why}: sd-scripts would train on the CPU, "
            "which is extremely slow (seconds to minutes per step)",
            "train on a machine with an NVIDIA GPU; for a CPU run set "
            'training.mixed_precision = "no"'
            + (
                ' and optimizer.type = "AdamW" (8-bit optimizers need CUDA)'
                if optimizer and "8bit" in optimizer.lower()
                else ""
            ),
        )
    ]
    if mixed_precision == "fp16":
        found.append(
            Advice(
                "gpu-precision",
                "training.mixed_precision",
                "fp16 needs a GPU: on the CPU accelerate stops with "
                "\"fp16 mixed precision requires a GPU (not 'cpu')\"",
                'set training.mixed_precision = "no" for a CPU run (or "bf16")',
            )
        )
    return found


def _disk_advice(
    hw: Hardware, lora_file_bytes: int, files_per_run: int, save_state: bool, save_precision: str
) -> list[Advice]:
    if hw.disk_free_bytes is None or files_per_run <= 0 or lora_file_bytes <= 0:
        return []
    files = files_per_run * lora_file_bytes
    states = files_per_run * STATE_FACTOR * lora_file_bytes if save_state else 0
    need = files + states
    if need + _DISK_MARGIN <= hw.disk_free_bytes:
        return []
    parts = f"{files_per_run} LoRA files × {_size(lora_file_bytes)} ({save_precision})"
    if save_state:
        parts += f" + {files_per_run} state folders × ~{_size(STATE_FACTOR * lora_file_bytes)}"
    fixes = []
    if save_state:
        fixes.append(
            "turn training.save_state off, or keep fewer with launch.extra.save_last_n_epochs_state"
        )
    if save_precision == "float":
        fixes.append('save as output.save_precision = "fp16" (half the size)')
    fixes += ["save less often (training.save_every_n_epochs)", "free space or change output.dir"]
    where = f" on {hw.disk_path}" if hw.disk_path is not None else ""
    return [
        Advice(
            "disk-space",
            "output.dir",
            f"the run writes about {_size(need)} ({parts}) but only "
            f"{_size(hw.disk_free_bytes)} is free{where}",
            "; ".join(fixes),
        )
    ]


def _ram_advice(hw: Hardware, family: str) -> list[Advice]:
    key = "sdxl" if family == "sdxl" else "sd15"
    label = "SDXL" if key == "sdxl" else "SD1.5"
    minimum, need = _RAM_MIN_GIB[key], _RAM_NEED_GIB[key]
    fix = (
        "close other programs; set training.max_data_loader_n_workers = 1 and "
        "training.cache_latents_to_disk = true; launch.extra.lowram = true loads the model "
        "straight to the GPU"
    )
    total, available = hw.ram_total_bytes, hw.ram_available_bytes
    if total is not None and total < minimum * GIB:
        return [
            Advice(
                "ram",
                "",
                f"this machine has {_gib(total)} of RAM; {label} LoRA training needs about "
                f"{need:.0f} GB for the model plus caching ({minimum + 1:.0f} GB or more is "
                "comfortable)",
                fix,
            )
        ]
    if available is not None and available < need * GIB:
        return [
            Advice(
                "ram",
                "",
                f"only {_gib(available)} of RAM is free now; {label} LoRA training needs about "
                f"{need:.0f} GB",
                fix,
            )
        ]
    return []


def advise(
    hw: Hardware,
    *,
    batch_size: int,
    mixed_precision: str,
    save_precision: str,
    lora_file_bytes: int,
    files_per_run: int,
    family: str,
    save_state: bool = False,
    optimizer: str | None = None,
) -> list[Advice]:
    """Advice for a plan on this machine (first GPU: the one sd-scripts uses by default)."""
    found: list[Advice] = []
    if hw.gpus:
        gpu = hw.gpus[0]
        found += _batch_advice(gpu, batch_size, family)
        found += _precision_advice(gpu, mixed_precision)
    else:
        found += _no_gpu_advice(hw, mixed_precision, optimizer)
    found += _disk_advice(hw, lora_file_bytes, files_per_run, save_state, save_precision)
    found += _ram_advice(hw, family)
    return found
