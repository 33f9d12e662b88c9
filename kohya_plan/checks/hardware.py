"""Advice for a plan on this machine (the one `check` runs on): GPU memory (T9), precision,
RAM, disk. Advice never blocks: the machine that checks a plan need not be the one that trains it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.families import FAMILIES
from kohya_plan.inputs.hardware import GIB, MIB
from kohya_plan.lora import lora_file_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kohya_plan.findings import Finding
    from kohya_plan.inputs.facts import Facts
    from kohya_plan.inputs.hardware import Gpu, Hardware
    from kohya_plan.plan import Plan

# T9 in GiB for SD1.5: at most 6 → batch 1; 12 or more → 2 to 6; between → 1 to 2. A little
# slack, because nvidia-smi shows what the driver can use (a "12 GB" card may show 11.8 GiB).
_T9_LOW_GIB = 6.5
_T9_HIGH_GIB = 11.5
# SDXL and FLUX.1 (1024²) need about twice the memory: the bands scale by Family.t9_factor.
# A card with this many times T9's upper band has room for batches above 6 (T9: larger = faster).
_ROOMY_FACTOR = 2.0
# Host RAM per family: Family.ram_gib ("16 GB"/"32 GB" machines show a little less).
# A saved state holds the LoRA weights in fp32 and the optimizer's moments: ~3× a LoRA file.
STATE_FACTOR = 3
# Room left free besides the run's files (logs, samples, the file being written).
_DISK_MARGIN = 1 * GIB


def check_hardware(plan: Plan, facts: Facts) -> Iterator[Finding]:
    if facts.hardware is None:
        return
    t = plan.training
    epochs = facts.steps.epochs if facts.steps else (t.epochs or 1)
    every = t.save_every_n_epochs or 0
    files = 1 + (max(0, (epochs - 1) // every) if every else 0)
    yield from advise(
        facts.hardware,
        batch_size=t.batch_size,
        mixed_precision=t.mixed_precision,
        save_precision=plan.output.save_precision,
        lora_file_bytes=lora_file_bytes(plan, facts.model_shape),
        files_per_run=files,
        family=plan.model.family,
        save_state=t.save_state,
        optimizer=plan.optimizer.type,
        full_fp16=t.full_fp16,
    )


def _gib(value_bytes: float) -> str:
    gib = value_bytes / GIB
    return f"{gib:.0f} GiB" if gib >= 10 or math.isclose(gib, round(gib)) else f"{gib:.1f} GiB"


def _size(value_bytes: float) -> str:
    return _gib(value_bytes) if value_bytes >= GIB else f"{value_bytes / MIB:.0f} MiB"


def batch_range(memory_gib: float, family: str) -> tuple[int, int | None]:
    """T9's batch sizes for a card (upper bound None: more than 6 is fine on this card)."""
    factor = FAMILIES[family].t9_factor
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


def _batch_advice(gpu: Gpu, batch_size: int, family: str) -> list[Finding]:
    if gpu.memory_mib is None:
        return []
    gib = gpu.memory_mib / 1024
    low, high = batch_range(gib, family)
    fam = FAMILIES[family]
    basis = (
        f"T9, doubled for {fam.label}, which needs about twice the memory at 1024²: "
        "12 GB or less → 1, 24 GB or more → 2 to 6"
        if fam.t9_factor == 2.0
        else "T9: 6 GB or less → 1, 12 GB or more → 2 to 6"
    )
    wanted = f"{low}" if low == high else f"{low} to {high}" if high else f"{low} or more"
    free = ""
    if gpu.free_mib is not None and gpu.memory_mib - gpu.free_mib > 1024:
        free = f"; {_gib(gpu.free_mib * MIB)} of it is free now"
    found: list[Finding] = []
    if high is not None and batch_size > high:
        found.append(
            rules.GPU_BATCH_SIZE.finding(
                "training.batch_size",
                f"batch_size {batch_size} on {_card(gpu)} is likely to run out of memory "
                f"({basis}){free}",
                f"set training.batch_size = {high}"
                + (" and training.gradient_checkpointing = true" if gib <= _T9_LOW_GIB else ""),
            )
        )
    elif batch_size < low:
        found.append(
            rules.GPU_BATCH_SIZE.finding(
                "training.batch_size",
                f"{_card(gpu)} has room for batch_size {wanted} ({basis}); "
                "a larger batch trains faster",
                f"try training.batch_size = {low} (T6: fewer steps per epoch, so check the "
                "step count again)",
            )
        )
    if fam.small_card_tip and gib < _T9_HIGH_GIB:
        found.append(
            rules.GPU_BATCH_SIZE.finding(
                "training.gradient_checkpointing",
                f"{fam.label} LoRA training on {_card(gpu)} is tight even at batch 1",
                fam.small_card_tip,
            )
        )
    return found


def _precision_advice(gpu: Gpu, mixed_precision: str) -> list[Finding]:
    cap = gpu.compute_capability
    field = "training.mixed_precision"
    if mixed_precision == "no":
        better = "bf16" if cap is not None and cap >= (8, 0) else "fp16"
        return [
            rules.GPU_PRECISION.finding(
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
            rules.GPU_PRECISION.finding(
                field,
                f"{_card(gpu)} has compute capability {gpu.capability_text}; bf16 needs 8.0 or "
                "later (Ampere: RTX 30xx, A100 and newer) and fails or runs emulated and slow",
                'set training.mixed_precision = "fp16"',
            )
        ]
    if mixed_precision == "fp16" and cap < (6, 0):
        return [
            rules.GPU_PRECISION.finding(
                field,
                f"{_card(gpu)} has compute capability {gpu.capability_text}; fp16 is slow "
                "before 6.0 (Pascal) and current PyTorch builds may not support the card",
                "train on a newer GPU if you can",
            )
        ]
    return []


def _no_gpu_advice(
    hw: Hardware, mixed_precision: str, optimizer: str | None, family: str, full_fp16: bool
) -> list[Finding]:
    why = f" ({hw.gpu_note})" if hw.gpu_note else ""
    cpu = FAMILIES[family].cpu_precision
    found = [
        rules.NO_GPU.finding(
            "",
            f"no NVIDIA GPU found on this machine{why}: sd-scripts would train on the CPU, "
            "which is extremely slow (seconds to minutes per step)",
            "train on a machine with an NVIDIA GPU; for a CPU run set "
            f'training.mixed_precision = "{cpu}"'
            + (
                ' and optimizer.type = "AdamW" (8-bit optimizers need CUDA)'
                if optimizer and "8bit" in optimizer.lower()
                else ""
            ),
        )
    ]
    if mixed_precision == "fp16":
        found.append(
            rules.CPU_FP16.finding(
                "training.mixed_precision",
                'fp16 needs a GPU: on the CPU the first step stops with "expected m1 and m2 '
                'to have the same dtype … Half != float" (older accelerate: "fp16 mixed '
                'precision requires a GPU")',
                f'set training.mixed_precision = "{cpu}" for a CPU run (or "bf16")',
            )
        )
    if full_fp16:
        found.append(
            rules.CPU_FP16.finding(
                "training.full_fp16",
                "full_fp16 needs a GPU's gradient scaler: on the CPU accelerate has none and "
                "sd-scripts stops with \"'NoneType' object has no attribute '_unscale_grads_'\"",
                'set full_fp16 = false (full_bf16 with mixed_precision = "bf16" works on a CPU)',
            )
        )
    return found


def _disk_advice(
    hw: Hardware, lora_file_bytes: int, files_per_run: int, save_state: bool, save_precision: str
) -> list[Finding]:
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
        rules.DISK_SPACE.finding(
            "output.dir",
            f"the run writes about {_size(need)} ({parts}) but only "
            f"{_size(hw.disk_free_bytes)} is free{where}",
            "; ".join(fixes),
        )
    ]


def _ram_advice(hw: Hardware, family: str) -> list[Finding]:
    fam = FAMILIES[family]
    label = fam.label
    minimum, need = fam.ram_gib
    fix = (
        "close other programs; set training.max_data_loader_n_workers = 1 and "
        "training.cache_latents_to_disk = true; launch.extra.lowram = true loads the model "
        "straight to the GPU"
    )
    total, available = hw.ram_total_bytes, hw.ram_available_bytes
    if total is not None and total < minimum * GIB:
        return [
            rules.RAM.finding(
                "",
                f"this machine has {_gib(total)} of RAM; {label} LoRA training needs about "
                f"{need:.0f} GB for the model plus caching ({minimum + 1:.0f} GB or more is "
                "comfortable)",
                fix,
            )
        ]
    if available is not None and available < need * GIB:
        return [
            rules.RAM.finding(
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
    full_fp16: bool = False,
) -> list[Finding]:
    """Advice for a plan on this machine (first GPU: the one sd-scripts uses by default)."""
    found: list[Finding] = []
    if hw.gpus:
        gpu = hw.gpus[0]
        found += _batch_advice(gpu, batch_size, family)
        found += _precision_advice(gpu, mixed_precision)
    else:
        found += _no_gpu_advice(hw, mixed_precision, optimizer, family, full_fp16)
    found += _disk_advice(hw, lora_file_bytes, files_per_run, save_state, save_precision)
    found += _ram_advice(hw, family)
    return found
