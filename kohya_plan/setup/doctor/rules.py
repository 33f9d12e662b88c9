"""The doctor's rules (pure): facts about a training environment → diagnoses with fixes.

Every rule is tested with made-up probe output (tests/setup/test_doctor_rules.py).
"""

from __future__ import annotations

import json
from typing import Any

from kohya_plan.inputs.accelerate_config import changing_keys
from kohya_plan.setup.choices import MIN_TORCH, release, torchvision_for
from kohya_plan.setup.doctor.facts import (
    GIB,
    Diagnosis,
    DoctorFacts,
    Status,
)

# --- evaluation (pure) ----------------------------------------------------------------------


def evaluate(facts: DoctorFacts) -> list[Diagnosis]:
    """Every diagnosis for the facts, in the order a person fixes them."""
    found: list[Diagnosis] = []
    found += _interpreter(facts)
    found += _checkout(facts)
    if facts.probe is not None:
        found += _torch(facts)
        found += _packages(facts)
        found += _accelerate_config(facts)
    found += _gpus(facts)
    found += _plan(facts)
    found += _hub(facts)
    found += _disks(facts)
    return found


def _setup_fix(facts: DoctorFacts) -> str:
    if facts.python_source.startswith("managed"):
        return "run `kohya-plan setup` (it checks and repairs)"
    return f"run `kohya-plan setup`, or repair {facts.python}"


def _pip_fix(facts: DoctorFacts, spec: str) -> str:
    return f"`{facts.python or 'python'} -m pip install {spec}`"


def _interpreter(facts: DoctorFacts) -> list[Diagnosis]:
    if facts.python is None:
        return [
            Diagnosis(
                "python-missing",
                "error",
                "python",
                "no Python with sd-scripts' requirements was found",
                "run `kohya-plan setup`, or set launch.python (or KOHYA_SD_PYTHON)",
            )
        ]
    if facts.probe is None:
        return [
            Diagnosis(
                "python-broken",
                "error",
                "python",
                f"{facts.python} ({facts.python_source}) cannot run the probe: {facts.probe_error}",
                _setup_fix(facts),
            )
        ]
    py = facts.probe["python"]
    venv = "" if py.get("prefix") != py.get("base_prefix") else " (not a virtual environment)"
    return [
        Diagnosis(
            "python",
            "ok",
            "python",
            f"Python {py['version']} at {facts.python} ({facts.python_source}){venv}",
        )
    ]


def _checkout(facts: DoctorFacts) -> list[Diagnosis]:
    where = f"{facts.sd_scripts} ({facts.sd_scripts_source})"
    if not facts.sd_scripts_found:
        return [
            Diagnosis(
                "sd-scripts-missing",
                "error",
                "sd-scripts",
                f"no train_network.py in {where}",
                "run `kohya-plan setup`, or set launch.sd_scripts (or KOHYA_SD_SCRIPTS)",
            )
        ]
    want = facts.snapshot_commit
    if facts.checkout_commit is None:
        return [
            Diagnosis(
                "sd-scripts-commit",
                "info",
                "sd-scripts",
                f"{where} is not a git checkout: its commit is unknown (kohya-plan's options are "
                f"those of {want[:10]})",
            )
        ]
    if facts.checkout_commit != want:
        fix = f"`git -C {facts.sd_scripts} checkout {want}`"
        if facts.sd_scripts_source.startswith("managed"):
            fix = "run `kohya-plan setup` (moves the managed checkout back)"
        return [
            Diagnosis(
                "sd-scripts-commit",
                "warn",
                "sd-scripts",
                f"{where} is at commit {facts.checkout_commit[:10]}, but kohya-plan checks "
                f"plans against the options of {want[:10]}: options may differ",
                fix,
            )
        ]
    return [Diagnosis("sd-scripts", "ok", "sd-scripts", f"{where} at commit {want[:10]}")]


def _version(facts: DoctorFacts, name: str) -> str | None:
    assert facts.probe is not None
    value = facts.probe.get("packages", {}).get(name)
    return str(value) if value is not None else None


def _torch(facts: DoctorFacts) -> list[Diagnosis]:
    assert facts.probe is not None
    info = facts.probe.get("torch") or {}
    found: list[Diagnosis] = []
    if "error" in info:
        missing = _version(facts, "torch") is None
        return [
            Diagnosis(
                "torch-missing" if missing else "torch-broken",
                "error",
                "torch",
                "not installed" if missing else f"does not import: {info['error']}",
                _setup_fix(facts),
            )
        ]
    version = str(info["version"])
    parts = release(version)
    build = f"CUDA {info['cuda_build']} build" if info.get("cuda_build") else "CPU-only build"
    if info.get("hip_build"):
        build = f"ROCm {info['hip_build']} build"
    if len(parts) >= 2 and parts[:2] < MIN_TORCH:
        found.append(
            Diagnosis(
                "torch-version",
                "error",
                "torch",
                f"{version} is too old: sd-scripts needs {MIN_TORCH[0]}.{MIN_TORCH[1]} or later",
                _setup_fix(facts) + " to install the tested torch",
            )
        )
    vision = _version(facts, "torchvision")
    vision_error = facts.probe.get("imports", {}).get("torchvision")
    if vision is None:
        found.append(
            Diagnosis(
                "torchvision-missing", "error", "torchvision", "not installed", _setup_fix(facts)
            )
        )
    else:
        try:
            wanted = torchvision_for(version)
        except ValueError:
            wanted = None
        if wanted is not None and release(vision)[:2] != release(wanted)[:2]:
            found.append(
                Diagnosis(
                    "torchvision-mismatch",
                    "error",
                    "torchvision",
                    f"{vision} is not the release made for torch {version} (that is {wanted})",
                    _pip_fix(facts, f"torchvision=={wanted}") + " or " + _setup_fix(facts),
                )
            )
        elif vision_error:
            found.append(
                Diagnosis(
                    "torchvision-broken",
                    "error",
                    "torchvision",
                    f"{vision} does not import: {vision_error}",
                    _pip_fix(facts, f"torchvision=={wanted}") + " or " + _setup_fix(facts),
                )
            )
    expected = facts.expected_torch
    if expected and release(version)[:3] != release(expected)[:3]:
        found.append(
            Diagnosis(
                "torch-changed",
                "warn",
                "torch",
                f"{version} is not the {expected} that `kohya-plan setup` installed here",
                "run `kohya-plan setup` (puts it back)",
            )
        )
    cuda_build = info.get("cuda_build")
    driver = facts.driver_cuda
    if cuda_build and driver is not None and release(str(cuda_build))[:2] > driver:
        found.append(
            Diagnosis(
                "torch-cuda-driver",
                "error",
                "torch",
                f"{version} is a CUDA {cuda_build} build; the NVIDIA driver runs CUDA up to "
                f"{driver[0]}.{driver[1]}",
                "update the NVIDIA driver, or `kohya-plan setup --torch-index "
                f"https://download.pytorch.org/whl/cu{driver[0]}{driver[1]}`",
            )
        )
    if not found:
        found.append(
            Diagnosis("torch", "ok", "torch", f"{version} ({build}), torchvision {vision}")
        )
    return found


def _packages(facts: DoctorFacts) -> list[Diagnosis]:
    assert facts.probe is not None
    packages = facts.probe.get("packages", {})
    imports = facts.probe.get("imports", {})
    pins = dict(facts.requirements or {})
    if not pins:
        pins = {"accelerate": None, "transformers": None, "diffusers": None}
    found: list[Diagnosis] = []
    matched = 0
    for name, want in pins.items():
        if name not in packages:
            continue  # not asked of the probe (e.g. a requirement kohya-plan does not track)
        got = packages.get(name)
        if got is None:
            spec = f"{name}=={want}" if want else name
            found.append(
                Diagnosis(
                    f"{name}-missing",
                    "error",
                    name,
                    "not installed (sd-scripts needs it)",
                    _setup_fix(facts) + ", or " + _pip_fix(facts, spec),
                )
            )
        elif want is not None and str(got).split("+")[0] != want:
            found.append(
                Diagnosis(
                    f"{name}-version",
                    "warn",
                    name,
                    f"{got} installed; sd-scripts pins {want} (other versions may break it)",
                    _pip_fix(facts, f"{name}=={want}"),
                )
            )
        elif imports.get(name):
            found.append(
                Diagnosis(
                    f"{name}-broken",
                    "error",
                    name,
                    f"{got} does not import: {imports[name]}",
                    _setup_fix(facts),
                )
            )
        else:
            matched += 1
    shown = ", ".join(
        f"{n} {packages[n]}"
        for n in ("accelerate", "transformers", "diffusers", "bitsandbytes")
        if packages.get(n)
    )
    if matched:
        found.append(
            Diagnosis(
                "requirements",
                "ok",
                "packages",
                f"{matched} of sd-scripts' requirements as pinned ({shown})",
            )
        )
    if packages.get("library") is None and facts.probe.get("sd_scripts", {}).get("library_error"):
        found.append(
            Diagnosis(
                "library-missing",
                "error",
                "sd-scripts",
                "its package `library` is not installed in this Python: "
                + str(facts.probe["sd_scripts"]["library_error"]),
                _setup_fix(facts) + f", or {_pip_fix(facts, '-e ' + str(facts.sd_scripts))}",
            )
        )
    return found


def _accelerate_config(facts: DoctorFacts) -> list[Diagnosis]:
    assert facts.probe is not None
    info = facts.probe.get("accelerate_config") or {}
    path = info.get("path")
    if not path or not info.get("exists"):
        return []
    if info.get("error"):
        return [
            Diagnosis(
                "accelerate-config",
                "error",
                "accelerate config",
                f"{path} cannot be read ({info['error']}); `accelerate launch` reads it on every "
                "start and fails",
                f"move it away: `mv {path} {path}.bak`",
            )
        ]
    values = info.get("values")
    changing = changing_keys(values if isinstance(values, dict) else {})
    if not changing:
        return [
            Diagnosis(
                "accelerate-config",
                "ok",
                "accelerate config",
                f"{path} sets nothing that kohya-plan does not pass itself",
            )
        ]
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(changing.items()))
    return [
        Diagnosis(
            "accelerate-config",
            "warn",
            "accelerate config",
            f"{path} would change every `accelerate launch` started by hand: {shown} "
            "(kohya-plan's launches do not read it: they pass their own --config_file)",
            f"move it away (`mv {path} {path}.bak`); kohya-plan passes the launcher flags it "
            "needs, and launch.gpu_ids / launch.num_processes choose GPUs",
        )
    ]


def _devices(facts: DoctorFacts) -> list[dict[str, Any]]:
    if facts.probe is None:
        return []
    info = facts.probe.get("torch") or {}
    return list(info.get("devices") or [])


def _gpus(facts: DoctorFacts) -> list[Diagnosis]:
    info = (facts.probe or {}).get("torch") or {}
    if facts.probe is None or "error" in info:
        return []
    devices = _devices(facts)
    seen = facts.smi_gpus or ()
    if not info.get("cuda_available"):
        if seen:
            if not info.get("cuda_build"):
                return [
                    Diagnosis(
                        "torch-cpu-build",
                        "error",
                        "GPU",
                        f"nvidia-smi lists {len(seen)} GPU(s) ({seen[0]}) but torch "
                        f"{info.get('version')} is a CPU-only build",
                        "`kohya-plan setup --cuda` (installs a CUDA build)",
                    )
                ]
            why = info.get("cuda_error") or "torch.cuda.is_available() is False"
            return [
                Diagnosis(
                    "cuda-unavailable",
                    "error",
                    "GPU",
                    f"nvidia-smi lists {len(seen)} GPU(s) but torch cannot use them: {why}",
                    "check the driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES",
                )
            ]
        mps = " (Apple MPS is available)" if info.get("mps_available") else ""
        return [
            Diagnosis(
                "no-gpu",
                "warn",
                "GPU",
                "no CUDA GPU: sd-scripts trains on the CPU, seconds to minutes per step" + mps,
                'fine for `kohya-plan selftest`; for a CPU run set training.mixed_precision = "no"',
            )
        ]
    found = []
    for device in devices:
        cap = tuple(device.get("capability") or (0, 0))
        memory = device.get("memory_bytes", 0) / GIB
        bf16 = "yes" if cap >= (8, 0) else "no"
        fp8 = "yes" if cap >= (8, 9) else "no"
        found.append(
            Diagnosis(
                "gpu",
                "ok",
                f"GPU {device.get('index')}",
                f"{device.get('name')}, {memory:.1f} GiB, compute capability "
                f"{cap[0]}.{cap[1]}: bf16 {bf16}, fp8 {fp8}",
            )
        )
    return found


def _plan(facts: DoctorFacts) -> list[Diagnosis]:
    needs = facts.needs
    if needs is None or facts.probe is None:
        return []
    found = []
    packages = facts.probe.get("packages", {})
    for name in needs.packages:
        if packages.get(name) is None:
            fix = _pip_fix(facts, name)
            why = f"optimizer.type = {needs.optimizer!r}"
            if name == "xformers":
                fix += ' (a build matching torch), or set training.attention = "sdpa"'
                why += ", training.attention = 'xformers'"
            elif name == "deepspeed":
                fix += (
                    " (DS_BUILD_OPS=0 builds its ops when first used), or remove [launch.deepspeed]"
                )
                why = "[launch.deepspeed]"
            found.append(
                Diagnosis(
                    f"{name}-missing",
                    "error",
                    name,
                    f"{needs.plan} needs it ({why}) and it is not installed",
                    fix,
                )
            )
    devices = _devices(facts)
    cuda = bool((facts.probe.get("torch") or {}).get("cuda_available"))
    if needs.mixed_precision == "fp16" and not cuda:
        found.append(
            Diagnosis(
                "plan-fp16-cpu",
                "error",
                "training.mixed_precision",
                f'{needs.plan} asks for "fp16", which needs a CUDA GPU (accelerate stops on '
                "the CPU)",
                'set training.mixed_precision = "no" for a CPU run',
            )
        )
    caps = [tuple(d.get("capability") or (0, 0)) for d in devices]
    if needs.mixed_precision == "bf16" and caps and min(caps) < (8, 0):
        found.append(
            Diagnosis(
                "plan-bf16",
                "error",
                "training.mixed_precision",
                f'{needs.plan} asks for "bf16"; this GPU (compute {caps[0][0]}.{caps[0][1]}) has '
                "no bf16 (it needs 8.0, Ampere, or newer)",
                'set training.mixed_precision = "fp16"',
            )
        )
    if needs.fp8 and (not caps or min(caps) < (8, 9)):
        found.append(
            Diagnosis(
                "plan-fp8",
                "error",
                "launch.extra.fp8_base",
                f"{needs.plan} asks for fp8, which needs compute capability 8.9 (Ada) or newer",
                "remove fp8_base from launch.extra",
            )
        )
    if cuda and needs.num_processes > len(devices):
        found.append(
            Diagnosis(
                "plan-gpus",
                "error",
                "launch.num_processes",
                f"{needs.plan} starts {needs.num_processes} processes; torch sees "
                f"{len(devices)} GPU(s)",
                f"set launch.num_processes = {max(1, len(devices))}",
            )
        )
    if not found:
        found.append(
            Diagnosis("plan", "ok", "plan", f"{needs.plan}: everything it needs is installed")
        )
    return found


def _hub(facts: DoctorFacts) -> list[Diagnosis]:
    found = []
    if facts.tokenizer_cache is not None:
        missing = [name for name, ready in facts.tokenizers.items() if not ready]
        if missing:
            found.append(
                Diagnosis(
                    "tokenizer-cache",
                    "info",
                    "tokenizer",
                    f"{', '.join(missing)} not in {facts.tokenizer_cache}: `kohya-plan make` "
                    "fetches it from the Hugging Face Hub (needs the network once)",
                    "run `kohya-plan make PLAN` once while online",
                )
            )
        else:
            found.append(
                Diagnosis(
                    "tokenizer-cache",
                    "ok",
                    "tokenizer",
                    f"{', '.join(facts.tokenizers)} cached in {facts.tokenizer_cache}",
                )
            )
    if facts.hf_token:
        found.append(
            Diagnosis("hf-login", "ok", "Hugging Face", f"logged in (token from {facts.hf_token})")
        )
    else:
        found.append(
            Diagnosis(
                "hf-login",
                "info",
                "Hugging Face",
                "not logged in: only gated or private models need it",
                "`hf auth login` (or set HF_TOKEN)",
            )
        )
    return found


def _disks(facts: DoctorFacts) -> list[Diagnosis]:
    found = []
    needs = facts.needs
    for what, path, free in facts.disks:
        if free is None:
            continue
        want = 10 * GIB if what == "Hugging Face cache" else 2 * GIB
        if needs is not None and what == "outputs":
            want = needs.output_bytes + GIB
        text = f"{free / GIB:.1f} GiB free at {path}"
        if free < want:
            found.append(
                Diagnosis(
                    "disk",
                    "error" if free < want / 4 else "warn",
                    f"disk ({what})",
                    f"{text}; about {want / GIB:.1f} GiB is wanted there",
                    "free some space, or point it elsewhere"
                    + (" (HF_HOME)" if what == "Hugging Face cache" else ""),
                )
            )
        else:
            found.append(Diagnosis("disk", "ok", f"disk ({what})", text))
    return found


def worst(diagnoses: list[Diagnosis]) -> Status:
    """The most serious status among the diagnoses."""
    order: list[Status] = ["ok", "info", "warn", "error"]
    return max((d.status for d in diagnoses), key=order.index, default="ok")
