"""Builders for hardware tests: fake GPUs and machines, and the advice for a plan on them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan.checks.hardware import advise
from kohya_plan.inputs.hardware import GIB, Gpu, Hardware

if TYPE_CHECKING:
    from kohya_plan.findings import Finding


def card(
    memory_gib: float, cap: tuple[int, int] | None = (8, 6), free_gib: float | None = None
) -> Gpu:
    mib = int(memory_gib * 1024)
    free = mib - 300 if free_gib is None else int(free_gib * 1024)
    return Gpu(0, "Test GPU", mib, free, cap)


def machine(*gpus: Gpu, ram_gib: float = 32, disk_gib: float = 500, note: str = "") -> Hardware:
    return Hardware(
        gpus=gpus,
        ram_total_bytes=int(ram_gib * GIB),
        ram_available_bytes=int(ram_gib * GIB * 0.8),
        disk_free_bytes=int(disk_gib * GIB),
        disk_path=Path("out"),
        gpu_note=note,
    )


def run_advise(hw: Hardware, **overrides: Any) -> list[Finding]:
    args: dict[str, Any] = {
        "batch_size": 2,
        "mixed_precision": "fp16",
        "save_precision": "fp16",
        "lora_file_bytes": 589_824 * 32 * 2,
        "files_per_run": 10,
        "family": "sd15",
    }
    args.update(overrides)
    return advise(hw, **args)


def ids(found: list[Finding]) -> list[str]:
    return [a.id for a in found]
