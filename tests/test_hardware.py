"""Hardware detection (nvidia-smi, RAM, disk) and the advice it gives about a plan."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kohya_plan.checks.hardware import advise, batch_range
from kohya_plan.findings import Finding
from kohya_plan.inputs.hardware import (
    GIB,
    Gpu,
    Hardware,
    detect,
    existing_parent,
    parse_nvidia_smi,
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


def test_parse_one_gpu() -> None:
    assert parse_nvidia_smi(RTX_3060) == [
        Gpu(0, "NVIDIA GeForce RTX 3060", 12288, 11800, (8, 6)),
    ]
    gpu = parse_nvidia_smi(RTX_3060)[0]
    assert gpu.memory_gib == 12
    assert gpu.to_json() == {
        "index": 0,
        "name": "NVIDIA GeForce RTX 3060",
        "memory_mib": 12288,
        "free_mib": 11800,
        "compute_capability": "8.6",
    }


def test_parse_real_h200() -> None:
    (gpu,) = parse_nvidia_smi(H200)
    assert gpu == Gpu(0, "NVIDIA H200", 143771, 143156, (9, 0))
    found = run_advise(machine(gpu), batch_size=1, mixed_precision="no")
    assert [a.id for a in found] == ["gpu-batch-size", "gpu-precision"]
    assert "NVIDIA H200, 140 GiB" in found[0].message
    assert found[1].fix == 'set training.mixed_precision = "bf16"'


def test_parse_several_gpus_and_crlf() -> None:
    gpus = parse_nvidia_smi(TWO_A100.replace("\n", "\r\n"))
    assert [(g.index, g.free_mib, g.compute_capability) for g in gpus] == [
        (0, 81050, (8, 0)),
        (1, 1024, (8, 0)),
    ]


@pytest.mark.parametrize("na", ["[N/A]", "[Not Supported]", "N/A"])
def test_parse_not_available(na: str) -> None:
    (gpu,) = parse_nvidia_smi(f"0, NVIDIA GB10, {na}, {na}, 12.1\n")
    assert (gpu.memory_mib, gpu.free_mib, gpu.compute_capability) == (None, None, (12, 1))
    assert gpu.memory_gib is None
    (gpu,) = parse_nvidia_smi("0, Tesla K80, 11441, 11380, [N/A]\n")
    assert gpu.compute_capability is None


def test_parse_old_driver_without_compute_cap() -> None:
    text = "0, GeForce GTX 1050 Ti, 4040, 3900\n"
    assert parse_nvidia_smi(text, with_compute_cap=False) == [
        Gpu(0, "GeForce GTX 1050 Ti", 4040, 3900, None)
    ]
    assert parse_nvidia_smi(text) == []  # a 5-column query never gives 4 columns


def test_parse_name_with_a_comma() -> None:
    (gpu,) = parse_nvidia_smi("0, Some GPU, Rev 2, 8192, 8000, 7.5\n")
    assert gpu.name == "Some GPU, Rev 2"
    assert gpu.memory_mib == 8192


@pytest.mark.parametrize(
    "text",
    [
        "",
        NO_DRIVER,
        "No devices were found\n",
        'Field "compute_cap" is not a valid field to query.\n',
        "index, name, memory.total [MiB], memory.free [MiB], compute_cap\n",
        "0, NVIDIA GeForce RTX 3060, twelve, 11800, 8.6\n",
        "x, NVIDIA GeForce RTX 3060, 12288, 11800, 8.6\n",
        "0, , 12288, 11800, 8.6\n",
        "\x00\xff garbage ,,,, \n",
    ],
)
def test_parse_garbage(text: str) -> None:
    assert parse_nvidia_smi(text) == []


# --- advise -------------------------------------------------------------------------------


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
    assert ids(found) == ["no-gpu", "gpu-precision"]
    assert "extremely slow" in found[0].message
    assert "(nvidia-smi is not on PATH)" in found[0].message
    assert "8-bit optimizers need CUDA" in found[0].fix
    assert "fp16 mixed precision requires a GPU" in found[1].message
    assert 'mixed_precision = "no"' in found[1].fix


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


def test_to_json() -> None:
    hw = machine(*parse_nvidia_smi(TWO_A100), ram_gib=64, disk_gib=100)
    data = hw.to_json()
    assert [g["compute_capability"] for g in data["gpus"]] == ["8.0", "8.0"]
    assert data["gpus"][1]["free_mib"] == 1024
    assert data["ram"] == {"total_bytes": 64 * GIB, "available_bytes": int(64 * GIB * 0.8)}
    assert data["disk"] == {"path": "out", "free_bytes": 100 * GIB}
    assert data["gpu_note"] is None
    assert machine(note="nvidia-smi is not on PATH").to_json()["gpu_note"]


# --- detect -------------------------------------------------------------------------------

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="a shell script as nvidia-smi")


def fake_smi(folder: Path, code: str) -> Path:
    """An executable `nvidia-smi` in folder: a Python script (needs nothing on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!{sys.executable}\nimport sys, time\n{code}\n", "utf-8")
    script.chmod(0o755)
    return script


def only_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", str(folder))


@posix_only
def test_detect_with_fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    fake_smi(bin_dir, f"print({TWO_A100!r}, end='')")
    only_path(monkeypatch, bin_dir)
    out = tmp_path / "output" / "not" / "made" / "yet"
    hw = detect(out)
    assert [g.name for g in hw.gpus] == ["NVIDIA A100-SXM4-80GB"] * 2
    assert hw.gpu_note == ""
    assert hw.disk_path == tmp_path.resolve()
    assert hw.disk_free_bytes is not None
    assert hw.disk_free_bytes > 0
    assert hw.ram_total_bytes is not None
    assert hw.ram_total_bytes > 0
    assert hw.ram_available_bytes is not None


@posix_only
def test_detect_old_driver_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    fake_smi(
        bin_dir,
        "if 'compute_cap' in sys.argv[1]:\n"
        "    print('Field \"compute_cap\" is not a valid field to query.')\n"
        "    sys.exit(2)\n"
        "print('0, GeForce GTX 1080 Ti, 11264, 11000')",
    )
    only_path(monkeypatch, bin_dir)
    (gpu,) = detect(tmp_path).gpus
    assert gpu == Gpu(0, "GeForce GTX 1080 Ti", 11264, 11000, None)


@posix_only
@pytest.mark.parametrize(
    ("body", "note"),
    [
        (f"print({NO_DRIVER!r}); sys.exit(9)", "couldn't communicate with the NVIDIA driver"),
        ("print('No devices were found'); sys.exit(6)", "No devices were found"),
        ("sys.exit(3)", "exit status 3"),
        ("time.sleep(5)", "did not answer within 0.5 s"),
    ],
)
def test_detect_failing_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, note: str
) -> None:
    bin_dir = tmp_path / "bin"
    fake_smi(bin_dir, body)
    only_path(monkeypatch, bin_dir)
    hw = detect(tmp_path, timeout_s=0.5)
    assert hw.gpus == ()
    assert note in hw.gpu_note


def test_detect_without_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    only_path(monkeypatch, empty)
    hw = detect(tmp_path)
    assert hw.gpus == ()
    assert "not on PATH" in hw.gpu_note
    assert hw.disk_free_bytes is not None
    found = run_advise(hw)
    assert "no-gpu" in ids(found)


@posix_only
def test_detect_not_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    script = fake_smi(bin_dir, "print(1)")
    script.chmod(0o644)  # which() skips it: as if absent
    only_path(monkeypatch, bin_dir)
    assert "not on PATH" in detect(tmp_path).gpu_note


def test_detect_without_psutil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import fails
    only_path(monkeypatch, tmp_path)
    hw = detect(tmp_path)
    assert (hw.ram_total_bytes, hw.ram_available_bytes) == (None, None)


def test_existing_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert existing_parent(tmp_path / "a" / "b") == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    assert existing_parent(Path("x/y")) == tmp_path.resolve()
    assert existing_parent(Path(os.sep)) == Path(os.sep).resolve()
