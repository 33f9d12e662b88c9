"""The advice `check` gives about a plan on this machine: batch size (T9), precision, RAM, disk."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hardware_helpers import card, ids, machine, run_advise

from kohya_plan.checks.hardware import batch_range
from kohya_plan.findings import Finding
from kohya_plan.inputs.hardware import (
    GIB,
    Gpu,
)

# Rows as `nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap
# --format=csv,noheader,nounits` prints them: ", " between fields, MiB without units.
RTX_3060 = "0, NVIDIA GeForce RTX 3060, 12288, 11800, 8.6\n"
TWO_A100 = (
    "0, NVIDIA A100-SXM4-80GB, 81920, 81050, 8.0\n1, NVIDIA A100-SXM4-80GB, 81920, 1024, 8.0\n"
)
GB10 = "0, NVIDIA GB10, [N/A], [N/A], 12.1\n"
# Captured from a real machine (driver with compute_cap), byte for byte.
H200 = "0, NVIDIA H200, 143771, 143156, 9.0\n"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
    "that the latest NVIDIA driver is installed and running.\n"
)


@pytest.mark.parametrize(
    ("memory_gib", "family", "expected"),
    [
        (4, "sd15", (1, 1)),
        (6, "sd15", (1, 1)),
        (5.8, "sd15", (1, 1)),
        (8, "sd15", (1, 2)),
        (11, "sd15", (1, 2)),
        (11.8, "sd15", (2, 6)),  # a "12 GB" card as the driver shows it
        (12, "sd15", (2, 6)),
        (24, "sd15", (2, None)),
        (80, "sd15", (2, None)),
        (12, "sdxl", (1, 1)),
        (16, "sdxl", (1, 2)),
        (24, "sdxl", (2, 6)),
        (80, "sdxl", (2, None)),
    ],
)
def test_batch_range(memory_gib: float, family: str, expected: tuple[int, int | None]) -> None:
    assert batch_range(memory_gib, family) == expected


@pytest.mark.parametrize(
    ("memory_gib", "batch", "family", "advice"),
    [
        (6, 1, "sd15", None),
        (6, 2, "sd15", "likely to run out of memory"),
        (8, 2, "sd15", None),
        (8, 3, "sd15", "likely to run out of memory"),
        (12, 1, "sd15", "has room for batch_size 2 to 6"),
        (12, 4, "sd15", None),
        (16, 8, "sd15", "likely to run out of memory"),
        (24, 1, "sd15", "has room for batch_size 2 or more"),
        (24, 2, "sd15", None),
        (24, 6, "sd15", None),
        (24, 12, "sd15", None),  # T9: larger is faster, and a 24 GB card has the room
        (16, 2, "sdxl", None),
        (16, 4, "sdxl", "doubled for SDXL"),
        (24, 1, "sdxl", "has room for batch_size 2 to 6"),
    ],
)
def test_gpu_batch_size(memory_gib: float, batch: int, family: str, advice: str | None) -> None:
    found = list(run_advise(machine(card(memory_gib)), batch_size=batch, family=family))
    if advice is None:
        assert found == []
    else:
        assert ids(found) == ["gpu-batch-size"]
        assert found[0].field == "training.batch_size"
        assert advice in found[0].message
        assert "T9" in found[0].message


def test_six_gb_card_wants_batch_one_and_checkpointing() -> None:
    (found,) = run_advise(machine(card(6)), batch_size=4)
    assert found.fix == "set training.batch_size = 1 and training.gradient_checkpointing = true"
    assert "GPU 0 (Test GPU, 6 GiB)" in found.message


def test_busy_card_mentions_free_memory() -> None:
    (found,) = run_advise(machine(card(8, free_gib=3)), batch_size=4)
    assert "3 GiB of it is free now" in found.message


def test_sdxl_on_a_small_card() -> None:
    found = run_advise(machine(card(8)), batch_size=1, family="sdxl")
    assert ids(found) == ["gpu-batch-size"]
    assert found[0].field == "training.gradient_checkpointing"


def test_unknown_memory_gives_no_batch_advice() -> None:
    gpu = Gpu(0, "NVIDIA GB10", None, None, (12, 1))
    assert run_advise(machine(gpu), batch_size=64, mixed_precision="bf16") == []


@pytest.mark.parametrize(
    ("cap", "precision", "advice"),
    [
        ((8, 6), "bf16", None),
        ((9, 0), "bf16", None),
        ((7, 5), "bf16", "bf16 needs 8.0 or later"),
        ((7, 5), "fp16", None),
        ((6, 1), "fp16", None),
        ((5, 2), "fp16", "fp16 is slow before 6.0"),
        (None, "bf16", None),  # old driver: capability unknown, say nothing
        ((8, 6), "no", 'set training.mixed_precision = "bf16"'),
        ((7, 5), "no", 'set training.mixed_precision = "fp16"'),
    ],
)
def test_gpu_precision(cap: tuple[int, int] | None, precision: str, advice: str | None) -> None:
    found = run_advise(machine(card(12, cap)), mixed_precision=precision)
    if advice is None:
        assert found == []
    else:
        assert ids(found) == ["gpu-precision"]
        assert found[0].field == "training.mixed_precision"
        assert advice in str(found[0])


def test_no_gpu_with_fp16() -> None:
    found = run_advise(
        machine(note="nvidia-smi is not on PATH"), mixed_precision="fp16", optimizer="AdamW8bit"
    )
    assert ids(found) == ["no-gpu", "cpu-fp16"]
    assert "extremely slow" in found[0].message
    assert "(nvidia-smi is not on PATH)" in found[0].message
    assert "8-bit optimizers need CUDA" in found[0].fix
    # what the CPU lab's fp16 run printed (sd-families-cpu.md, run sdxl5)
    assert "expected m1 and m2 to have the same dtype" in found[1].message
    assert 'mixed_precision = "no"' in found[1].fix


def test_no_gpu_with_full_fp16_and_flux() -> None:
    found = run_advise(machine(), mixed_precision="fp16", family="flux", full_fp16=True)
    assert ids(found) == ["no-gpu", "cpu-fp16", "cpu-fp16"]
    # FLUX.1 on a CPU: bf16 (fp32 would load T5-XXL as ~19 GB)
    assert 'mixed_precision = "bf16"' in found[0].fix
    assert found[2].field == "training.full_fp16"
    assert "_unscale_grads_" in found[2].message  # what the CPU lab's run sdxl4 printed


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_no_gpu_without_fp16(precision: str) -> None:
    found = run_advise(machine(), mixed_precision=precision, optimizer="AdamW")
    assert ids(found) == ["no-gpu"]
    assert "8-bit" not in found[0].fix


def test_disk_space() -> None:
    rank_128_fp16 = 589_824 * 128 * 2  # 144 MiB (contract §12.3)
    roomy = machine(card(12), disk_gib=20)
    assert run_advise(roomy, lora_file_bytes=rank_128_fp16, batch_size=2) == []
    small = machine(card(12), disk_gib=2)
    (found,) = run_advise(small, lora_file_bytes=rank_128_fp16, files_per_run=10)
    assert found.id == "disk-space"
    assert found.field == "output.dir"
    assert "1.4 GiB (10 LoRA files × 144 MiB (fp16))" in found.message
    assert "only 2 GiB is free on out" in found.message
    assert "save_state" not in found.fix


def test_disk_space_with_states_and_fp32() -> None:
    fp32 = 589_824 * 32 * 4  # 72 MiB
    hw = machine(card(12), disk_gib=3)
    assert run_advise(hw, lora_file_bytes=fp32, save_precision="float") == []
    (found,) = run_advise(hw, lora_file_bytes=fp32, save_precision="float", save_state=True)
    assert "10 state folders × ~216 MiB" in found.message
    assert "training.save_state off" in found.fix
    assert 'output.save_precision = "fp16"' in found.fix


def test_disk_unknown_gives_no_advice() -> None:
    hw = replace(machine(card(12)), disk_free_bytes=None, disk_path=None)
    assert run_advise(hw, files_per_run=1000) == []


@pytest.mark.parametrize(
    ("ram_gib", "available_gib", "family", "advice"),
    [
        (32, 20, "sd15", None),
        (16, 12, "sd15", None),
        (15.6, 10, "sd15", None),  # a "16 GB" machine
        (8, 6, "sd15", "has 8 GiB of RAM; SD1.5 LoRA training needs about 8 GB"),
        (32, 4, "sd15", "only 4 GiB of RAM is free now"),
        (16, 12, "sdxl", "SDXL LoRA training needs about 16 GB"),
        (64, 40, "sdxl", None),
    ],
)
def test_ram(ram_gib: float, available_gib: float, family: str, advice: str | None) -> None:
    hw = replace(
        machine(card(24)),
        ram_total_bytes=int(ram_gib * GIB),
        ram_available_bytes=int(available_gib * GIB),
    )
    found = run_advise(hw, family=family, batch_size=2)
    if advice is None:
        assert found == []
    else:
        assert ids(found) == ["ram"]
        assert advice in found[0].message


def test_ram_unknown() -> None:
    hw = replace(machine(card(12)), ram_total_bytes=None, ram_available_bytes=None)
    assert run_advise(hw) == []


def test_advice_str() -> None:
    assert str(Finding("ram", "", "low", "close things")) == "low — close things"
    assert str(Finding("x", "a.b", "m")) == "a.b: m"
