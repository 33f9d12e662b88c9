"""Hardware detection: nvidia-smi's output parsed, a fake nvidia-smi run, RAM and disk."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hardware_helpers import ids, machine, run_advise

from kohya_plan.inputs.hardware import (
    GIB,
    Gpu,
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
@pytest.mark.integration
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
@pytest.mark.integration
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
@pytest.mark.integration
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
