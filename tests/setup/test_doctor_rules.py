"""The doctor's rules on made-up probe output: each broken piece is named with its fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from kohya_plan.inputs.accelerate_config import changing_keys
from kohya_plan.setup.doctor import (
    Diagnosis,
    DoctorFacts,
    PlanNeeds,
    evaluate,
    optimizer_packages,
    worst,
)

SNAPSHOT = "48d368fa557731ad0488c07304dfeba8c07910eb"
PINS: dict[str, str | None] = {
    "accelerate": "1.6.0",
    "transformers": "4.54.1",
    "diffusers": "0.32.1",
    "bitsandbytes": None,
    "prodigyopt": "1.1.2",
}
# What the probe printed for this machine's working sd-scripts venv (CPU only).
HEALTHY: dict[str, Any] = {
    "probe_version": 1,
    "python": {
        "executable": "/sd/venv/bin/python",
        "version": "3.11.7",
        "prefix": "/sd/venv",
        "base_prefix": "/usr",
        "system": "Linux",
        "machine": "x86_64",
    },
    "packages": {
        "torch": "2.14.1",
        "torchvision": "0.29.1",
        "accelerate": "1.6.0",
        "transformers": "4.54.1",
        "diffusers": "0.32.1",
        "safetensors": "0.4.5",
        "bitsandbytes": "0.50.2",
        "library": "0.0.0",
        "dadaptation": "3.2",
        "prodigyopt": "1.1.2",
        "lion-pytorch": "0.2.3",
        "schedulefree": "1.4",
    },
    "torch": {
        "version": "2.14.1+cu130",
        "cuda_build": "13.0",
        "hip_build": None,
        "cuda_available": False,
        "cuda_error": None,
        "devices": [],
        "mps_available": False,
    },
    "imports": {"torchvision": None, "accelerate": None},
    "accelerate_config": {
        "path": "/home/u/.cache/huggingface/accelerate/default_config.yaml",
        "exists": False,
    },
    "sd_scripts": {"path": "/sd/sd-scripts", "library": "/sd/sd-scripts/library"},
}


def _facts(probe: dict[str, Any] | None = HEALTHY, **more: Any) -> DoctorFacts:
    fields: dict[str, Any] = {
        "python": "/sd/venv/bin/python",
        "python_source": "managed installation in /sd",
        "sd_scripts": Path("/sd/sd-scripts"),
        "sd_scripts_source": "managed installation in /sd",
        "snapshot_commit": SNAPSHOT,
        "sd_scripts_found": True,
        "probe": copy.deepcopy(probe),
        "checkout_commit": SNAPSHOT,
        "requirements": PINS,
        "hf_token": None,
        "tokenizer_cache": Path("/hf/kohya-plan/tokenizers"),
        "tokenizers": {"openai/clip-vit-large-patch14": True},
        "disks": (("Hugging Face cache", Path("/hf/hub"), 50 << 30),),
        **more,
    }
    return DoctorFacts(**fields)


def _by_id(found: list[Diagnosis]) -> dict[str, Diagnosis]:
    return {d.id: d for d in found}


def _broken(**changes: Any) -> dict[str, Any]:
    probe = copy.deepcopy(HEALTHY)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        target = probe
        for key in path:
            target = target[key]
        target[last] = value
    return probe


def test_a_healthy_cpu_environment_has_only_the_no_gpu_warning() -> None:
    found = evaluate(_facts())
    problems = [d for d in found if d.status in ("warn", "error")]
    assert [d.id for d in problems] == ["no-gpu"]
    ids = _by_id(found)
    assert "Python 3.11.7" in ids["python"].message
    assert "2.14.1+cu130 (CUDA 13.0 build)" in ids["torch"].message
    assert "5 of sd-scripts' requirements as pinned" in ids["requirements"].message
    assert SNAPSHOT[:10] in ids["sd-scripts"].message
    assert worst(found) == "warn"


def test_missing_accelerate_is_an_error_with_setup_and_pip_fixes() -> None:
    found = _by_id(evaluate(_facts(_broken(packages__accelerate=None))))
    item = found["accelerate-missing"]
    assert item.status == "error"
    assert "kohya-plan setup" in item.fix
    assert "/sd/venv/bin/python -m pip install accelerate==1.6.0" in item.fix


def test_a_torch_older_than_sd_scripts_needs_is_named() -> None:
    probe = _broken(torch__version="2.4.1+cu121", packages__torch="2.4.1")
    item = _by_id(evaluate(_facts(probe)))["torch-version"]
    assert item.status == "error"
    assert "2.4.1+cu121 is too old" in item.message
    assert "2.6 or later" in item.message
    assert "kohya-plan setup" in item.fix


def test_a_torchvision_for_another_torch_is_named_with_the_right_release() -> None:
    probe = _broken(
        torch__version="2.13.0+cpu",
        packages__torch="2.13.0",
        imports__torchvision="RuntimeError: operator torchvision::nms does not exist",
    )
    item = _by_id(evaluate(_facts(probe)))["torchvision-mismatch"]
    assert "0.29.1 is not the release made for torch 2.13.0+cpu (that is 0.28.0)" in item.message
    assert "torchvision==0.28.0" in item.fix


def test_a_torch_that_does_not_import_is_an_error() -> None:
    probe = _broken(torch={"error": "ImportError: libcudnn.so.9: cannot open shared object file"})
    item = _by_id(evaluate(_facts(probe)))["torch-broken"]
    assert "libcudnn" in item.message


def test_a_stale_accelerate_config_names_its_path_and_what_it_changes() -> None:
    path = "/home/u/.cache/huggingface/accelerate/default_config.yaml"
    values = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_processes": 2,
        "mixed_precision": "fp16",
        "gpu_ids": "0,1",
        "use_cpu": False,
        "dynamo_config": {"dynamo_backend": "INDUCTOR"},
    }
    probe = _broken(accelerate_config={"path": path, "exists": True, "values": values})
    item = _by_id(evaluate(_facts(probe)))["accelerate-config"]
    assert item.status == "warn"
    assert path in item.message
    assert 'distributed_type="MULTI_GPU"' in item.message
    assert "kohya-plan's launches do not read it" in item.message
    # what kohya-plan passes itself on the command line is not blamed
    assert "gpu_ids" not in item.message
    assert "num_processes" not in item.message
    assert "mixed_precision" not in item.message
    assert f"mv {path} {path}.bak" in item.fix


def test_an_accelerate_config_at_defaults_is_fine() -> None:
    assert changing_keys({"distributed_type": "NO", "num_processes": 1, "debug": False}) == {}
    assert changing_keys({"use_cpu": True, "deepspeed_config": {}}) == {"use_cpu": True}


def test_sd_scripts_at_another_commit_is_named_with_the_checkout_fix() -> None:
    other = "1" * 40
    found = _by_id(evaluate(_facts(checkout_commit=other, sd_scripts_source="--sd-scripts")))
    item = found["sd-scripts-commit"]
    assert item.status == "warn"
    assert f"at commit {other[:10]}" in item.message
    assert item.fix == f"`git -C /sd/sd-scripts checkout {SNAPSHOT}`"
    managed = _by_id(evaluate(_facts(checkout_commit=other)))["sd-scripts-commit"]
    assert "kohya-plan setup" in managed.fix


def test_no_checkout_and_no_python_are_errors_pointing_at_setup() -> None:
    found = _by_id(evaluate(_facts(None, python=None, sd_scripts_found=False)))
    assert "kohya-plan setup" in found["python-missing"].fix
    assert "kohya-plan setup" in found["sd-scripts-missing"].fix
    broken = _by_id(evaluate(_facts(None, probe_error="exit status 1: Segmentation fault")))
    assert "Segmentation fault" in broken["python-broken"].message


def test_a_cpu_build_on_a_gpu_machine_and_a_too_new_cuda_build() -> None:
    cpu_build = _broken(torch__cuda_build=None, torch__version="2.14.1+cpu")
    found = _by_id(evaluate(_facts(cpu_build, smi_gpus=("NVIDIA GeForce RTX 3060",))))
    assert "--cuda" in found["torch-cpu-build"].fix
    too_new = _by_id(evaluate(_facts(driver_cuda=(12, 4))))
    item = too_new["torch-cuda-driver"]
    assert "CUDA 13.0 build" in item.message
    assert "up to 12.4" in item.message
    assert "whl/cu124" in item.fix


def test_gpus_are_listed_with_bf16_and_fp8_support() -> None:
    devices = [
        {"index": 0, "name": "NVIDIA RTX 4090", "memory_bytes": 24 << 30, "capability": [8, 9]},
        {"index": 1, "name": "Tesla T4", "memory_bytes": 15 << 30, "capability": [7, 5]},
    ]
    probe = _broken(torch__cuda_available=True, torch__devices=devices)
    lines = [d.message for d in evaluate(_facts(probe)) if d.id == "gpu"]
    assert lines == [
        "NVIDIA RTX 4090, 24.0 GiB, compute capability 8.9: bf16 yes, fp8 yes",
        "Tesla T4, 15.0 GiB, compute capability 7.5: bf16 no, fp8 no",
    ]


def _needs(**more: Any) -> PlanNeeds:
    fields: dict[str, Any] = {
        "plan": "plan.toml",
        "family": "sd15",
        "optimizer": "AdamW",
        "packages": (),
        "attention": "sdpa",
        "mixed_precision": "no",
        "fp8": False,
        "num_processes": 1,
        "output_dir": Path("/out"),
        "output_bytes": 10 << 20,
        **more,
    }
    return PlanNeeds(**fields)


def test_what_a_plan_needs_is_checked() -> None:
    probe = _broken(packages__prodigyopt=None)
    needs = _needs(optimizer="Prodigy", packages=("prodigyopt", "xformers"), mixed_precision="fp16")
    found = _by_id(evaluate(_facts(probe, needs=needs)))
    assert "optimizer.type = 'Prodigy'" in found["prodigyopt-missing"].message
    assert "pip install prodigyopt" in found["prodigyopt-missing"].fix
    assert 'training.attention = "sdpa"' in found["xformers-missing"].fix
    assert 'training.mixed_precision = "no"' in found["plan-fp16-cpu"].fix
    ok = _by_id(evaluate(_facts(needs=_needs())))
    assert ok["plan"].status == "ok"


@pytest.mark.parametrize(
    ("optimizer", "packages"),
    [
        ("DAdaptAdam", ("dadaptation",)),
        ("Prodigy", ("prodigyopt",)),
        ("AdamW8bit", ("bitsandbytes",)),
        ("PagedAdamW", ("bitsandbytes",)),
        ("Lion", ("lion-pytorch",)),
        ("Lion8bit", ("bitsandbytes",)),
        ("AdamWScheduleFree", ("schedulefree",)),
        ("AdamW", ()),
    ],
)
def test_optimizer_packages(optimizer: str, packages: tuple[str, ...]) -> None:
    assert optimizer_packages(optimizer) == packages


def test_hub_login_shows_where_the_token_is_never_the_token_and_disks_are_judged() -> None:
    found = _by_id(evaluate(_facts(hf_token="$HF_TOKEN")))
    assert found["hf-login"].message == "logged in (token from $HF_TOKEN)"
    low = (("Hugging Face cache", Path("/hf/hub"), 1 << 30),)
    disk = _by_id(evaluate(_facts(disks=low)))["disk"]
    assert disk.status == "error"
    assert "1.0 GiB free at /hf/hub" in disk.message
    assert "HF_HOME" in disk.fix
    missing = {"openai/clip-vit-large-patch14": False}
    tok = _by_id(evaluate(_facts(tokenizers=missing)))["tokenizer-cache"]
    assert tok.status == "info"
    assert "kohya-plan make" in tok.fix


def test_token_source_names_the_variable_not_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from kohya_plan.setup.doctor.gather import _hf_token_source

    monkeypatch.setenv("HF_TOKEN", "hf_SECRETsecretSECRETsecret")
    assert _hf_token_source() == "$HF_TOKEN"


def test_a_torch_other_than_the_one_setup_installed_is_a_warning() -> None:
    probe = _broken(torch__version="2.13.0+cpu", packages__torch="2.13.0")
    found = _by_id(evaluate(_facts(probe, expected_torch="2.14.1")))
    item = found["torch-changed"]
    assert item.status == "warn"
    assert "2.13.0+cpu is not the 2.14.1 that `kohya-plan setup` installed" in item.message
    assert "kohya-plan setup" in item.fix
    assert "torch-changed" not in _by_id(evaluate(_facts(expected_torch="2.14.1")))


def test_a_deepspeed_plan_needs_deepspeed_in_the_trainers_python(tmp_path: Path) -> None:
    from helpers import base_plan

    from kohya_plan.loading import validate_plan
    from kohya_plan.setup.doctor import plan_needs

    data = base_plan(launch={"num_processes": 2, "deepspeed": {"zero_stage": 2}})
    needs = plan_needs(validate_plan(data, tmp_path), tmp_path / "plan.toml")
    assert "deepspeed" in needs.packages
    found = _by_id(evaluate(_facts(needs=needs)))  # the healthy probe has no deepspeed
    item = found["deepspeed-missing"]
    assert item.status == "error"
    assert "needs it ([launch.deepspeed])" in item.message
    assert "pip install deepspeed" in item.fix
    probe = _broken(packages__deepspeed="0.16.7")
    assert "deepspeed-missing" not in _by_id(evaluate(_facts(probe, needs=needs)))
